package devserver

import (
	"sort"
	"strings"
	"time"
)

// signin is a browser sign-in session (the sid claim).
type signin struct {
	sid        string
	username   string
	authTime   time.Time
	ended      bool
	cookieHash string
}

// codeRecord is an issued authorization code, stored under sha256(code).
type codeRecord struct {
	clientID    string
	redirectURI string
	challenge   string
	nonce       string
	username    string
	sid         string
	authTime    time.Time
	scopes      []string
	expires     time.Time
	used        bool
	jtis        []string // access tokens issued from this code
	family      string   // refresh token family started by this code
}

// family is the lineage of refresh tokens descended from one code exchange.
type family struct {
	id       string
	clientID string
	username string
	sid      string
	authTime time.Time
	scopes   []string
	created  time.Time
	expires  time.Time
	revoked  bool
	jtis     []string
}

const (
	rtActive = iota
	rtRotated
	rtRevoked
)

// refreshRecord is one refresh token, stored under sha256(token).
type refreshRecord struct {
	family string
	issued time.Time
	status int
}

// accessRecord is the metadata of one issued JWT access token.
type accessRecord struct {
	jti      string
	userType string // "user" or "system"
	clientID string
	subject  string
	sid      string
	family   string
	scopes   []string
	issued   time.Time
	expires  time.Time
	revoked  bool
}

// TokenRecord describes an issued token without its value (for tests and diagnostics).
type TokenRecord struct {
	// Kind is "access_token", "refresh_token" or "reference_token".
	Kind string
	// ClientID is the Trusted Application the token was issued to ("" for a PAT without one).
	ClientID string
	// Subject is the user name or System User the token acts as.
	Subject string
	// SID is the sign-in session id (user tokens only).
	SID string
	// Family is the refresh token family (refresh tokens and access tokens of a code exchange).
	Family string
	// JTI is the access token's jti claim (access tokens only).
	JTI string
	// Scopes are the granted scopes.
	Scopes []string
	// IssuedAt is when the token was issued, by the server's clock.
	IssuedAt time.Time
	// ExpiresAt is when the token expires, by the server's clock.
	ExpiresAt time.Time
	// Revoked reports revocation (rotation of a refresh token counts as revocation).
	Revoked bool
}

// TokenRecords lists metadata of every token the server still remembers, oldest first. Token
// values are never exposed; the server only stores their hashes.
func (s *Server) TokenRecords() []TokenRecord {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []TokenRecord
	for _, a := range s.access {
		out = append(out, TokenRecord{Kind: "access_token", ClientID: a.clientID, Subject: a.subject, SID: a.sid,
			Family: a.family, JTI: a.jti, Scopes: clone(a.scopes), IssuedAt: a.issued, ExpiresAt: a.expires, Revoked: a.revoked})
	}
	for _, r := range s.refresh {
		f := s.families[r.family]
		if f == nil {
			continue
		}
		out = append(out, TokenRecord{Kind: "refresh_token", ClientID: f.clientID, Subject: f.username, SID: f.sid,
			Family: f.id, Scopes: clone(f.scopes), IssuedAt: r.issued, ExpiresAt: f.expires,
			Revoked: r.status != rtActive || f.revoked})
	}
	for _, t := range s.reftokens {
		out = append(out, TokenRecord{Kind: "reference_token", ClientID: t.clientID, Subject: t.subject,
			Scopes: clone(t.scopes), IssuedAt: t.issued, ExpiresAt: t.expires, Revoked: t.revoked})
	}
	sort.SliceStable(out, func(i, j int) bool {
		if !out[i].IssuedAt.Equal(out[j].IssuedAt) {
			return out[i].IssuedAt.Before(out[j].IssuedAt)
		}
		return out[i].Kind < out[j].Kind
	})
	return out
}

func clone(v []string) []string { return append([]string(nil), v...) }

// RevokeUser does what an ERP.net password change does: every sign-in session and every
// refresh token of the user dies (and with them the user's open Domain API sessions and the
// access tokens bound to those sign-ins). Reference tokens (PATs) are not affected.
func (s *Server) RevokeUser(username string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, si := range s.signins {
		if si.username == username && !si.ended {
			s.endSigninLocked(si)
			n++
		}
	}
	for _, f := range s.families {
		if f.username == username {
			s.revokeFamilyLocked(f)
		}
	}
	s.log.Info("devserver: user revoked", "user", username, "signins", n)
}

// endSigninLocked ends a sign-in: its cookie stops working, its refresh tokens and its ERP.net
// session die. Caller holds s.mu.
func (s *Server) endSigninLocked(si *signin) {
	si.ended = true
	delete(s.cookies, si.cookieHash)
	delete(s.sessions, "sid:"+si.sid)
	for _, f := range s.families {
		if f.sid == si.sid {
			s.revokeFamilyLocked(f)
		}
	}
}

// revokeFamilyLocked revokes every refresh token of f and the access tokens issued in it.
func (s *Server) revokeFamilyLocked(f *family) {
	f.revoked = true
	for _, r := range s.refresh {
		if r.family == f.id && r.status == rtActive {
			r.status = rtRevoked
		}
	}
	for _, jti := range f.jtis {
		if a := s.access[jti]; a != nil {
			a.revoked = true
		}
	}
}

// sweepLocked forgets records that can no longer matter, at most once a minute of server time.
func (s *Server) sweepLocked(now time.Time) {
	if now.Sub(s.lastSweep) < time.Minute && !s.lastSweep.IsZero() {
		return
	}
	s.lastSweep = now
	for k, c := range s.codes {
		if now.After(c.expires.Add(s.cfg.AccessTokenLifetime)) {
			delete(s.codes, k)
		}
	}
	for k, a := range s.access {
		if now.After(a.expires.Add(time.Minute)) {
			delete(s.access, k)
		}
	}
	for k, f := range s.families {
		if now.After(f.expires) {
			delete(s.families, k)
		}
	}
	for k, r := range s.refresh {
		if s.families[r.family] == nil {
			delete(s.refresh, k)
		}
	}
	for k, p := range s.pending {
		if now.After(p.expires) {
			delete(s.pending, k)
		}
	}
	for k, t := range s.reftokens {
		if now.After(t.expires.Add(24 * time.Hour)) {
			delete(s.reftokens, k)
		}
	}
	for k, ss := range s.sessions {
		if !ss.alive(now) {
			delete(s.sessions, k)
		}
	}
	if len(s.apiCalls) > maxAPICalls {
		s.apiCalls = append([]APICall(nil), s.apiCalls[len(s.apiCalls)-maxAPICalls:]...)
	}
}

// scopeString joins scopes with spaces.
func scopeString(sc []string) string { return strings.Join(sc, " ") }
