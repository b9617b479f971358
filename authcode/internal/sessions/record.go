package sessions

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"golang.org/x/oauth2"
)

// recordFormat is the version of the serialised record format.
const recordFormat = 1

// Record is what the Store keeps for one sign-in. It is immutable once
// built: an update makes a new Record with Ver+1.
type Record struct {
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

// NewRecord returns the first record of a sign-in (Ver 1).
func NewRecord(r Record) *Record {
	r.Format, r.Ver = recordFormat, 1
	if r.TokenType == "" {
		r.TokenType = "Bearer"
	}
	return &r
}

// String never shows tokens (in case a record ends up in a log).
func (r Record) String() string { return "sessions.Record{sub: " + r.Subject + "}" }

// GoString is String: a record printed with %#v shows no token either.
func (r Record) GoString() string { return r.String() }

// LogValue is String, for log/slog (whose JSON handler would otherwise
// write every field, the tokens included).
func (r Record) LogValue() slog.Value { return slog.StringValue(r.String()) }

// Encode serialises r for a Store.
func (r *Record) Encode() ([]byte, error) { return json.Marshal(r) }

// errUndecodable is a record the Store holds but that cannot be read.
var errUndecodable = errors.New("authcode: session in store cannot be read")

// Decode reads a record saved by Encode.
func Decode(b []byte) (*Record, error) {
	var r Record
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%w: not valid JSON", errUndecodable)
	}
	if r.Format != recordFormat {
		return nil, fmt.Errorf("%w: unknown format %d", errUndecodable, r.Format)
	}
	if r.AccessToken == "" || r.Subject == "" {
		return nil, fmt.Errorf("%w: incomplete", errUndecodable)
	}
	return &r, nil
}

// Token is the access token as handed out: no refresh or ID token.
func (r *Record) Token() *oauth2.Token {
	tt := r.TokenType
	if tt == "" {
		tt = "Bearer"
	}
	return &oauth2.Token{AccessToken: r.AccessToken, TokenType: tt, Expiry: r.Expiry}
}

// WithTokens returns a copy of r with tok's tokens, Ver+1. A missing
// refresh token or ID token keeps the old one.
func (r *Record) WithTokens(tok *oauth2.Token, idToken string) *Record {
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
