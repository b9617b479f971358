package erpnettest

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

const refTokenPrefix = "enrt_"

// refRecord is an issued reference token, stored under sha256(token).
type refRecord struct {
	kind, subject, clientID string // kind "pat" or "sat"; subject: user name or System User
	scopes                  []string
	issued, expires         time.Time
	revoked                 bool
}

// refTokens is the reference tokens' state.
type refTokens struct {
	mu sync.Mutex
	m  map[string]*refRecord
}

// MintPAT issues a personal access token (a reference token, "enrt_" and 64 upper-case hex
// digits) that acts as the named user at the Domain API, valid for a year of server time.
// Scopes are chosen from read, update and DomainApi; none means read and update. An unknown
// user or scope fails the test (or panics for a Server made by Start).
func (s *Server) MintPAT(username string, scopes ...string) string {
	s.tb.Helper()
	bad := ""
	if s.user(username) == nil {
		bad = fmt.Sprintf("unknown user %q", username)
	}
	return s.mint("PAT", &refRecord{kind: "pat", subject: username}, bad, allScopes, scopes)
}

// MintSAT issues a service access token (a reference token) that acts as the System User of
// the Trusted Application appID, valid for a year of server time. Scopes are chosen from
// those the application allows among read, update and DomainApi; none means read and update
// where allowed. An application without a System User fails the test (or panics for a
// Server made by Start).
func (s *Server) MintSAT(appID string, scopes ...string) string {
	s.tb.Helper()
	app, bad := s.apps[appID], ""
	switch {
	case app == nil || app.Disabled:
		bad = fmt.Sprintf("unknown or disabled application %q", appID)
	case app.SystemUser == "":
		bad = fmt.Sprintf("application %q does not allow a System User (SystemUserAllowed)", appID)
	default:
		return s.mint("SAT", &refRecord{kind: "sat", subject: app.SystemUser, clientID: appID}, "", allowedScopes(app), scopes)
	}
	return s.mint("SAT", nil, bad, nil, nil)
}

// mint stores rec with scopes (read and update when none), which allowed must hold, and
// returns the new token; with bad it fails the test instead.
func (s *Server) mint(kind string, rec *refRecord, bad string, allowed, scopes []string) string {
	s.tb.Helper()
	if len(scopes) == 0 {
		scopes = intersect([]string{"read", "update"}, allowed)
	}
	for _, sc := range scopes {
		switch {
		case bad != "":
		case !slices.Contains(apiScopes, sc):
			bad = fmt.Sprintf("scope %q is not allowed in a reference token (use read, update, DomainApi)", sc)
		case !slices.Contains(allowed, sc):
			bad = fmt.Sprintf("application %q does not allow scope %q", rec.clientID, sc)
		}
	}
	if bad == "" && len(scopes) == 0 {
		bad = fmt.Sprintf("application %q allows neither read nor update", rec.clientID)
	}
	if bad != "" {
		s.fail("Mint%s: %s", kind, bad)
		return ""
	}
	rec.scopes, rec.issued = slices.Clone(scopes), s.now()
	rec.expires = rec.issued.AddDate(1, 0, 0)
	tok := refTokenPrefix + randomHex(32)
	s.refs.mu.Lock()
	s.refs.m[hashKey(tok)] = rec
	s.refs.mu.Unlock()
	s.log.Info("erpnettest: reference token issued", "kind", kind, "subject", rec.subject, "expires", rec.expires)
	return tok
}

// RevokeToken revokes a reference token (PAT or SAT) with immediate effect: the Domain API
// answers 401 to it from now on, and its ERP.net API session ends. An unknown token is ignored.
func (s *Server) RevokeToken(token string) {
	h := hashKey(token)
	s.refs.mu.Lock()
	rec := s.refs.m[h]
	if rec != nil {
		rec.revoked = true
	}
	s.refs.mu.Unlock()
	if rec != nil {
		s.api.endSession("ref:" + h)
		s.log.Info("erpnettest: reference token revoked", "kind", rec.kind, "subject", rec.subject)
	}
}

// validRefToken reports the form "enrt_" and 64 upper-case hex digits.
func validRefToken(tok string) bool {
	hex, ok := strings.CutPrefix(tok, refTokenPrefix)
	return ok && len(hex) == 64 && strings.Trim(hex, "0123456789ABCDEF") == ""
}

func (f *refTokens) validate(tok string, now time.Time) (*principal, error) {
	if !validRefToken(tok) {
		return nil, errMalformed
	}
	h := hashKey(tok)
	f.mu.Lock()
	defer f.mu.Unlock()
	rec := f.m[h]
	switch {
	case rec == nil:
		return nil, errUnknownToken
	case rec.revoked:
		return nil, errRevoked
	case !now.Before(rec.expires):
		return nil, errExpired
	}
	return &principal{kind: rec.kind, subject: rec.subject, clientID: rec.clientID, scopes: slices.Clone(rec.scopes),
		sessionKey: "ref:" + h, issuedAt: rec.issued, expiresAt: rec.expires, tokenType: "reference_token"}, nil
}
