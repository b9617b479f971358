package erpnettest

import (
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
	if s.tb != nil {
		s.tb.Helper()
	}
	if s.user(username) == nil {
		s.fail("MintPAT: unknown user %q", username)
		return ""
	}
	return s.mint("PAT", &refRecord{kind: "pat", subject: username}, []string{"read", "update"}, scopes)
}

// MintSAT issues a service access token (a reference token) that acts as the System User of
// the Trusted Application appID, valid for a year of server time. Scopes are chosen from
// those the application allows among read, update and DomainApi; none means read and update
// where allowed. An application without a System User fails the test (or panics for a
// Server made by Start).
func (s *Server) MintSAT(appID string, scopes ...string) string {
	if s.tb != nil {
		s.tb.Helper()
	}
	app := s.apps[appID]
	switch {
	case app == nil || app.Disabled:
		s.fail("MintSAT: unknown or disabled application %q", appID)
		return ""
	case app.SystemUser == "":
		s.fail("MintSAT: application %q does not allow a System User (SystemUserAllowed)", appID)
		return ""
	}
	allowed := allowedScopes(app)
	for _, sc := range scopes {
		if slices.Contains(apiScopes, sc) && !slices.Contains(allowed, sc) {
			s.fail("MintSAT: application %q does not allow scope %q", appID, sc)
			return ""
		}
	}
	def := slices.DeleteFunc([]string{"read", "update"}, func(sc string) bool { return !slices.Contains(allowed, sc) })
	if len(def) == 0 && len(scopes) == 0 {
		s.fail("MintSAT: application %q allows neither read nor update", appID)
		return ""
	}
	return s.mint("SAT", &refRecord{kind: "sat", subject: app.SystemUser, clientID: appID}, def, scopes)
}

// mint stores rec with scopes (def when none) and returns the new token.
func (s *Server) mint(kind string, rec *refRecord, def, scopes []string) string {
	if s.tb != nil {
		s.tb.Helper()
	}
	for _, sc := range scopes {
		if !slices.Contains(apiScopes, sc) {
			s.fail("Mint%s: scope %q is not allowed in a reference token (use read, update, DomainApi)", kind, sc)
			return ""
		}
	}
	rec.scopes = slices.Clone(scopes)
	if len(scopes) == 0 {
		rec.scopes = def
	}
	rec.issued = s.now()
	rec.expires = rec.issued.AddDate(1, 0, 0)
	tok := refTokenPrefix + randomHex(32)
	s.refs.mu.Lock()
	if s.refs.m == nil {
		s.refs.m = map[string]*refRecord{}
	}
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
