package authcode

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"golang.org/x/oauth2"
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

	rec *record
	key string
	u   *userTokens // this process's token cache for the session
}

// Claims decodes the claims of the ID token received at sign-in into v.
func (s *Session) Claims(v any) error {
	if s == nil || s.rec == nil || len(s.rec.Claims) == 0 {
		return fmt.Errorf("authcode: session has no ID token claims")
	}
	return json.Unmarshal(s.rec.Claims, v)
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

// recordFormat is the version of the serialised session format.
const recordFormat = 1

// record is what the Store holds for a session. It is immutable once built:
// updates make a new record with Ver+1.
type record struct {
	Format     int             `json:"f"`
	Ver        uint64          `json:"ver"`
	Issuer     string          `json:"iss"`
	ClientID   string          `json:"cid"`
	Subject    string          `json:"sub"`
	Name       string          `json:"name,omitempty"`
	Username   string          `json:"pun,omitempty"`
	Email      string          `json:"email,omitempty"`
	Claims     json.RawMessage `json:"claims,omitempty"`
	Scopes     []string        `json:"scp,omitempty"`
	SignedInAt time.Time       `json:"at"`

	AccessToken  string    `json:"atk"`
	TokenType    string    `json:"tt,omitempty"`
	Expiry       time.Time `json:"exp"`
	RefreshToken string    `json:"rtk,omitempty"`
	IDToken      string    `json:"idt,omitempty"`
}

// String never shows tokens (in case a record ends up in a log).
func (r *record) String() string { return "authcode.record{sub: " + r.Subject + "}" }

// GoString is String.
func (r *record) GoString() string { return r.String() }

func (r *record) encode() ([]byte, error) { return json.Marshal(r) }

func decodeRecord(b []byte) (*record, error) {
	var r record
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("authcode: session in store is not valid JSON")
	}
	if r.Format != recordFormat {
		return nil, fmt.Errorf("authcode: session in store has unknown format %d", r.Format)
	}
	if r.AccessToken == "" || r.Subject == "" {
		return nil, fmt.Errorf("authcode: session in store is incomplete")
	}
	return &r, nil
}

// token is the access token as handed out: no refresh or ID token.
func (r *record) token() *oauth2.Token {
	tt := r.TokenType
	if tt == "" {
		tt = "Bearer"
	}
	return &oauth2.Token{AccessToken: r.AccessToken, TokenType: tt, Expiry: r.Expiry}
}

// withTokens returns a copy of r with tok's tokens, Ver+1. A missing
// refresh token keeps the old one; a missing ID token keeps the old one.
func (r *record) withTokens(tok *oauth2.Token, idToken string) *record {
	n := *r
	n.Ver++
	n.AccessToken = tok.AccessToken
	n.TokenType = tok.TokenType
	n.Expiry = tok.Expiry
	if tok.RefreshToken != "" {
		n.RefreshToken = tok.RefreshToken
	}
	if idToken != "" {
		n.IDToken = idToken
	}
	if sc, ok := tok.Extra("scope").(string); ok && sc != "" {
		n.Scopes = strings.Fields(sc)
	}
	return &n
}

// session builds the public view of r.
func (r *record) session(id, key string) *Session {
	return &Session{
		ID:                id,
		Subject:           r.Subject,
		Name:              r.Name,
		PreferredUsername: r.Username,
		Email:             r.Email,
		Issuer:            r.Issuer,
		Scopes:            r.Scopes,
		SignedInAt:        r.SignedInAt,
		Expiry:            r.Expiry,
		rec:               r,
		key:               key,
	}
}
