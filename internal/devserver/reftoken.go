package devserver

import (
	"errors"
	"fmt"
	"time"
)

// RefTokenKind is the kind of a reference token.
type RefTokenKind int

const (
	// PAT is a personal access token: it acts as a user.
	PAT RefTokenKind = iota + 1
	// SAT is a service access token: it acts as a Trusted Application's System User.
	SAT
)

// String returns "PAT" or "SAT".
func (k RefTokenKind) String() string {
	switch k {
	case PAT:
		return "PAT"
	case SAT:
		return "SAT"
	default:
		return fmt.Sprintf("RefTokenKind(%d)", int(k))
	}
}

// RefTokenRequest asks IssueReferenceToken for a reference token.
type RefTokenRequest struct {
	// Kind is PAT or SAT.
	Kind RefTokenKind
	// Subject is a user name for a PAT, or an ApplicationURI for a SAT (which then acts as that
	// application's SystemUser).
	Subject string
	// Scopes are the granted scopes, from read, update and DomainApi; empty means read and
	// update (for a SAT: those the application allows).
	Scopes []string
	// ExpiresAt is the expiry; zero means one year from now (server clock).
	ExpiresAt time.Time
	// ClientID optionally names the Trusted Application a PAT is issued through; its
	// AccessTokens policy then applies to the PAT's user. Ignored for a SAT.
	ClientID string
	// IssuedBy optionally names the user issuing a SAT; the application's AccessTokens policy
	// then applies to that user. Empty means the server operator (no policy check).
	IssuedBy string
}

const (
	refTokenPrefix = "enrt_"
	refTokenLen    = len(refTokenPrefix) + 64
)

// refRecord is an issued reference token, stored under sha256(token).
type refRecord struct {
	hash     string
	kind     RefTokenKind
	subject  string // user name, or the System User for a SAT
	clientID string // the app for a SAT; RefTokenRequest.ClientID for a PAT
	scopes   []string
	issued   time.Time
	expires  time.Time
	revoked  bool
}

// IssueReferenceToken mints a reference token: "enrt_" followed by 64 upper-case hex digits
// from crypto/rand. Only its hash is stored. It refuses a SAT for an application without
// SystemUserAllowed (or without a SystemUser) and applies the AccessTokens policy where an
// issuing application (PAT) or issuing user (SAT) is named.
func (s *Server) IssueReferenceToken(req RefTokenRequest) (string, error) {
	now := s.now()
	rec := &refRecord{kind: req.Kind, issued: now, expires: req.ExpiresAt}
	if rec.expires.IsZero() {
		rec.expires = now.AddDate(defaultReferenceTokenLifetimeYr, 0, 0)
	}
	if !rec.expires.After(now) {
		return "", errors.New("devserver: reference token ExpiresAt is in the past")
	}
	for _, sc := range req.Scopes {
		if !contains(apiScopes, sc) {
			return "", fmt.Errorf("devserver: scope %q is not allowed in a reference token (use read, update, DomainApi)", sc)
		}
	}
	switch req.Kind {
	case PAT:
		u := s.users[req.Subject]
		if u == nil {
			return "", fmt.Errorf("devserver: unknown user %q", req.Subject)
		}
		if req.ClientID != "" {
			app := s.apps[req.ClientID]
			if app == nil || app.Disabled {
				return "", fmt.Errorf("devserver: unknown or disabled application %q", req.ClientID)
			}
			if err := checkAccessTokensPolicy(app, u); err != nil {
				return "", err
			}
			rec.clientID = app.ApplicationURI
		}
		rec.subject = u.Username
		rec.scopes = req.Scopes
		if len(rec.scopes) == 0 {
			rec.scopes = []string{ScopeRead, ScopeUpdate}
		}
	case SAT:
		app := s.apps[req.Subject]
		if app == nil || app.Disabled {
			return "", fmt.Errorf("devserver: unknown or disabled application %q", req.Subject)
		}
		if !app.SystemUserAllowed || app.SystemUser == "" {
			return "", fmt.Errorf("devserver: application %q does not allow a System User (SystemUserAllowed)", app.ApplicationURI)
		}
		if req.IssuedBy != "" {
			u := s.users[req.IssuedBy]
			if u == nil {
				return "", fmt.Errorf("devserver: unknown user %q", req.IssuedBy)
			}
			if err := checkAccessTokensPolicy(app, u); err != nil {
				return "", err
			}
		}
		allowed := app.allowedScopes()
		if len(req.Scopes) == 0 {
			for _, sc := range []string{ScopeRead, ScopeUpdate} {
				if contains(allowed, sc) {
					rec.scopes = append(rec.scopes, sc)
				}
			}
			if len(rec.scopes) == 0 {
				return "", fmt.Errorf("devserver: application %q allows neither read nor update", app.ApplicationURI)
			}
		} else {
			for _, sc := range req.Scopes {
				if !contains(allowed, sc) {
					return "", fmt.Errorf("devserver: application %q does not allow scope %q", app.ApplicationURI, sc)
				}
			}
			rec.scopes = req.Scopes
		}
		rec.subject = app.SystemUser
		rec.clientID = app.ApplicationURI
	default:
		return "", errors.New("devserver: reference token Kind must be PAT or SAT")
	}
	rec.scopes = clone(rec.scopes)
	tok := refTokenPrefix + randomHex(32)
	rec.hash = hashKey(tok)
	s.mu.Lock()
	s.sweepLocked(now)
	s.reftokens[rec.hash] = rec
	s.mu.Unlock()
	s.log.Info("devserver: reference token issued", "kind", rec.kind.String(), "subject", rec.subject, "expires", rec.expires)
	return tok, nil
}

func checkAccessTokensPolicy(app *App, u *User) error {
	switch app.AccessTokens {
	case AccessTokensAuthenticatedUsers:
		return nil
	case AccessTokensAdministratorsOnly:
		if u.Administrator {
			return nil
		}
		return fmt.Errorf("devserver: application %q lets only administrators issue access tokens; %q is not one", app.ApplicationURI, u.Username)
	default:
		return fmt.Errorf("devserver: application %q does not allow access tokens (AccessTokens = None)", app.ApplicationURI)
	}
}

// RevokeReferenceToken revokes a reference token with immediate effect (and closes its ERP.net
// session). Unknown tokens are ignored.
func (s *Server) RevokeReferenceToken(token string) {
	h := hashKey(token)
	s.mu.Lock()
	defer s.mu.Unlock()
	if rec := s.reftokens[h]; rec != nil {
		rec.revoked = true
		delete(s.sessions, "ref:"+h)
		s.log.Info("devserver: reference token revoked", "kind", rec.kind.String(), "subject", rec.subject)
	}
}

func validRefTokenFormat(tok string) bool {
	if len(tok) != refTokenLen || tok[:len(refTokenPrefix)] != refTokenPrefix {
		return false
	}
	for i := len(refTokenPrefix); i < len(tok); i++ {
		c := tok[i]
		if !(c >= '0' && c <= '9' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

func (s *Server) validateReferenceToken(tok string, now time.Time) (*principal, error) {
	if !validRefTokenFormat(tok) {
		return nil, errMalformedJWT
	}
	h := hashKey(tok)
	s.mu.Lock()
	defer s.mu.Unlock()
	rec := s.reftokens[h]
	switch {
	case rec == nil:
		return nil, errUnknownToken
	case rec.revoked:
		return nil, errRevoked
	case !now.Before(rec.expires):
		return nil, errExpired
	}
	kind := "pat"
	if rec.kind == SAT {
		kind = "sat"
	}
	return &principal{
		kind: kind, subject: rec.subject, clientID: rec.clientID, scopes: clone(rec.scopes),
		sessionKey: "ref:" + h, issuedAt: rec.issued, expiresAt: rec.expires, tokenType: "reference_token",
	}, nil
}
