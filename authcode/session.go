package authcode

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/erpnetgo/auth/authcode/internal/sessions"
)

// Session is a signed-in user as the application sees them: who they are
// and what they granted. It holds no secret that can be read: the tokens
// stay unexported, behind pointers, and are reachable only through
// Client.TokenSource and Client.UserClient; fmt and slog print String or
// LogValue, which never show them. A Session is a snapshot; use it for the request at hand and call
// Client.UserSession again for the next one.
type Session struct {
	// ID identifies the session in the Store. The browser's cookie holds it
	// sealed; it is not a credential on its own.
	ID string
	// Subject is the ID token's "sub": the ERP.net user name.
	Subject string
	// Name is the ID token's "name" claim, when the profile scope was granted.
	Name string
	// PreferredUsername is the ID token's "preferred_username" claim.
	PreferredUsername string
	// Email is the ID token's "email" claim.
	Email string
	// Issuer is the identity server that signed the user in.
	Issuer string
	// Scopes are the scopes the identity server granted.
	Scopes []string
	// SignedInAt is when the sign-in completed.
	SignedInAt time.Time
	// Expiry is when the current access token expires (it is refreshed
	// ahead of that while a refresh token is held).
	Expiry time.Time

	sn *sessions.Snapshot // what it was built from
}

// sessionBox is a Session and room for its scopes: a Session handed out
// is one allocation, and its Scopes are its own.
type sessionBox struct {
	s      Session
	scopes [5]string // the default scopes; more take an allocation of their own
}

// newSession builds the Session a caller gets from sn. It shares no slice
// or map with sn or any other Session.
func newSession(sn *sessions.Snapshot) *Session {
	b := new(sessionBox)
	p, s := &sn.Public, &b.s
	// Field by field into the new object: no temporary to copy.
	s.ID, s.Subject, s.Name, s.PreferredUsername = p.ID, p.Subject, p.Name, p.PreferredUsername
	s.Email, s.Issuer, s.SignedInAt, s.Expiry, s.sn = p.Email, p.Issuer, p.SignedInAt, p.Expiry, sn
	switch n := len(p.Scopes); {
	case n == 0:
	case n <= len(b.scopes):
		copy(b.scopes[:], p.Scopes)
		s.Scopes = b.scopes[:n:n]
	default:
		s.Scopes = append([]string(nil), p.Scopes...)
	}
	return s
}

// Claims decodes the claims of the ID token received at sign-in into v.
func (s *Session) Claims(v any) error {
	if s == nil || s.sn == nil || len(s.sn.Rec.Claims) == 0 {
		return fmt.Errorf("authcode: session has no ID token claims")
	}
	return json.Unmarshal(s.sn.Rec.Claims, v)
}

// String describes the session without any token.
func (s *Session) String() string {
	if s == nil {
		return "authcode.Session(nil)"
	}
	var b strings.Builder
	b.WriteString("authcode.Session{Subject: ")
	b.WriteString(s.Subject)
	b.WriteString(", Issuer: ")
	b.WriteString(s.Issuer)
	b.WriteString(", Scopes: [")
	b.WriteString(strings.Join(s.Scopes, " "))
	b.WriteString("], Expiry: ")
	b.WriteString(s.Expiry.UTC().Format(time.RFC3339))
	b.WriteString("}")
	return b.String()
}

// LogValue logs the session as a group of its non-secret attributes.
func (s *Session) LogValue() slog.Value {
	if s == nil {
		return slog.StringValue("<nil>")
	}
	return slog.GroupValue(
		slog.String("subject", s.Subject),
		slog.String("issuer", s.Issuer),
		slog.Time("expiry", s.Expiry),
	)
}

type ctxKey struct{}

// SessionFromContext returns the session RequireUser put in ctx, or nil.
func SessionFromContext(ctx context.Context) *Session {
	s, _ := ctx.Value(ctxKey{}).(*Session)
	return s
}

// contextWithSession returns a copy of ctx carrying s.
func contextWithSession(ctx context.Context, s *Session) context.Context {
	return context.WithValue(ctx, ctxKey{}, s)
}
