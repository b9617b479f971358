package clientcreds

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/erpnetgo/auth/internal/autherr"
	"github.com/erpnetgo/auth/internal/bearer"
	"github.com/erpnetgo/auth/internal/discovery"
	"github.com/erpnetgo/auth/internal/httpx"
	"github.com/erpnetgo/auth/internal/retry"
	"github.com/erpnetgo/auth/internal/tokencache"
	"github.com/erpnetgo/auth/internal/tokenep"
)

// Errors to branch on with errors.Is; they are shared by every package of
// this module, so clientcreds.ErrTemporary == authcode.ErrTemporary.
var (
	// ErrTemporary: 5xx, 429 or a network failure, already retried.
	ErrTemporary = autherr.ErrTemporary
	// ErrMisconfigured: invalid_client, unauthorized_client, invalid_scope,
	// a bad authority or discovery document, or an invalid Config.
	ErrMisconfigured = autherr.ErrMisconfigured
	// ErrClosed: the Source was closed and has no usable token.
	ErrClosed = autherr.ErrClosed
)

// Error is a failed call to the identity server; use errors.As to read its
// RFC 6749 Code, Description and StatusCode.
type Error = autherr.Error

// ConfigError is an invalid Config field; it never contains the field's value.
type ConfigError = autherr.ConfigError

// AuthStyle chooses how the client authenticates to the token endpoint.
type AuthStyle = tokenep.AuthStyle

// Client authentication styles.
const (
	// AuthAuto uses HTTP Basic unless discovery's
	// token_endpoint_auth_methods_supported lists only client_secret_post.
	AuthAuto = tokenep.AuthAuto
	// AuthBasic sends the credentials in an HTTP Basic header, each
	// form-urlencoded first (RFC 6749 §2.3.1).
	AuthBasic = tokenep.AuthBasic
	// AuthForm sends client_id and client_secret in the form body.
	AuthForm = tokenep.AuthForm
)

// RetryPolicy tunes retries of the token endpoint; the zero value means 4
// attempts with backoff from 200 ms capped at 5 s, Retry-After honoured up
// to 30 s.
type RetryPolicy = retry.Policy

// Environment variables read by ConfigFromEnv.
const (
	EnvAuthority    = "ERPNET_AUTHORITY"
	EnvClientID     = "ERPNET_CLIENT_ID"
	EnvClientSecret = "ERPNET_CLIENT_SECRET"
	EnvScopes       = "ERPNET_SCOPES"
)

// Config configures a Source. Authority, ClientID and ClientSecret are
// required; every other field has a useful zero value.
type Config struct {
	// Authority is the ERP.net instance root (https://demodb.my.erp.net,
	// resolved through /sys/auto-discovery) or its identity server URL
	// (https://demodb.my.erp.net/id).
	Authority string
	// ClientID is the Trusted Application's ApplicationUri; it may contain '/'.
	ClientID string
	// ClientSecret is the Trusted Application's secret.
	ClientSecret string
	// Scopes to request, e.g. read and update. Empty asks for every scope
	// the Trusted Application allows.
	Scopes []string
	// HTTPClient makes the requests to the identity server; nil means a
	// client with a 30 s timeout. It is not used for API calls (see Client).
	HTTPClient *http.Client
	// AuthStyle overrides the client authentication style chosen from
	// discovery.
	AuthStyle AuthStyle
	// RefreshWindow is how long before expiry the background refresh
	// starts; zero means 5 minutes, or 20% of a token living under 25 minutes.
	RefreshWindow time.Duration
	// Retry tunes token-endpoint retries; the zero value is sensible.
	Retry RetryPolicy
	// Logger, if set, receives token fetches (never token values) and
	// background refresh failures.
	Logger *slog.Logger
}

// ConfigFromEnv reads ERPNET_AUTHORITY, ERPNET_CLIENT_ID,
// ERPNET_CLIENT_SECRET and ERPNET_SCOPES (separated by spaces or commas).
// It reports which required variables are missing, never their values.
func ConfigFromEnv() (Config, error) {
	cfg := Config{
		Authority:    strings.TrimSpace(os.Getenv(EnvAuthority)),
		ClientID:     strings.TrimSpace(os.Getenv(EnvClientID)),
		ClientSecret: strings.TrimRight(os.Getenv(EnvClientSecret), "\r\n"),
		Scopes:       strings.FieldsFunc(os.Getenv(EnvScopes), func(r rune) bool { return r == ' ' || r == ',' || r == '\t' }),
	}
	var missing []string
	for _, v := range []struct{ name, val string }{{EnvAuthority, cfg.Authority}, {EnvClientID, cfg.ClientID}, {EnvClientSecret, cfg.ClientSecret}} {
		if v.val == "" {
			missing = append(missing, v.name)
		}
	}
	if len(missing) > 0 {
		return cfg, &ConfigError{Field: strings.Join(missing, ", "), Reason: "not set in the environment"}
	}
	return cfg, nil
}

// Validate checks the Config without any network I/O. Errors name the field
// and never contain the secret.
func (c Config) Validate() error {
	if err := discovery.CheckAuthority("Authority", c.Authority); err != nil {
		return err
	}
	if c.ClientID == "" {
		return &ConfigError{Field: "ClientID", Reason: "is required (the Trusted Application's ApplicationUri)"}
	}
	if strings.ContainsFunc(c.ClientID, isCtl) {
		return &ConfigError{Field: "ClientID", Reason: "contains control characters"}
	}
	if c.ClientSecret == "" {
		return &ConfigError{Field: "ClientSecret", Reason: "is required: client credentials need a confidential Trusted Application"}
	}
	if strings.ContainsFunc(c.ClientSecret, isCtl) {
		return &ConfigError{Field: "ClientSecret", Reason: "contains control characters (a stray newline from a file?)"}
	}
	for i, s := range c.Scopes {
		if s == "" || strings.ContainsFunc(s, func(r rune) bool { return r == ' ' || r == '"' || r == '\\' || isCtl(r) }) {
			return &ConfigError{Field: fmt.Sprintf("Scopes[%d]", i), Reason: "must be a non-empty scope token without spaces, quotes or control characters"}
		}
	}
	if c.RefreshWindow < 0 {
		return &ConfigError{Field: "RefreshWindow", Reason: "must not be negative"}
	}
	switch c.AuthStyle {
	case AuthAuto, AuthBasic, AuthForm:
	default:
		return &ConfigError{Field: "AuthStyle", Reason: "is not one of AuthAuto, AuthBasic, AuthForm"}
	}
	return nil
}

func isCtl(r rune) bool { return r < 0x20 || r == 0x7f }

// Source is a per-process cache of one service token. It is safe for
// concurrent use. Close it when the process no longer needs tokens.
type Source struct {
	cfg   Config
	hc    *http.Client
	ep    tokenep.Client
	cache *tokencache.Cache
	log   *slog.Logger
}

// New validates cfg and returns a Source. It does no network I/O: discovery
// and the first token request happen on the first Token call.
func New(cfg Config) (*Source, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.Scopes = append([]string(nil), cfg.Scopes...)
	s := &Source{cfg: cfg, hc: httpx.Client(cfg.HTTPClient), log: cfg.Logger}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.ep = tokenep.Client{HTTPClient: s.hc, ClientID: cfg.ClientID, ClientSecret: cfg.ClientSecret,
		Style: cfg.AuthStyle, Policy: cfg.Retry}
	s.cache = tokencache.New(s.fetch, tokencache.Options{Window: cfg.RefreshWindow, Logger: s.log})
	return s, nil
}

func (s *Source) fetch(ctx context.Context) (*oauth2.Token, error) {
	doc, err := discovery.Get(ctx, s.hc, s.cfg.Authority)
	if err != nil {
		return nil, err
	}
	if len(doc.GrantTypesSupported) > 0 && !discovery.Supports(doc.GrantTypesSupported, "client_credentials") {
		return nil, &Error{Op: "token request (client_credentials)", Kind: ErrMisconfigured,
			Err: fmt.Errorf("the identity server at %s does not support the client_credentials grant", doc.Issuer)}
	}
	form := url.Values{"grant_type": {"client_credentials"}}
	if len(s.cfg.Scopes) > 0 {
		form.Set("scope", strings.Join(s.cfg.Scopes, " "))
	}
	start := time.Now()
	tok, err := s.ep.Exchange(ctx, doc, form)
	if err != nil {
		s.log.Warn("erpnet: service token request failed", "client_id", s.cfg.ClientID, "error", err.Error())
		return nil, err
	}
	s.log.Debug("erpnet: service token obtained", "client_id", s.cfg.ClientID,
		"expires_in", time.Until(tok.Expiry).Round(time.Second), "scope", tok.Extra("scope"), "took", time.Since(start))
	return tok, nil
}

// Token returns a valid service token. A cached token is returned without a
// lock, an allocation or a request. The returned token is shared: do not
// modify it.
func (s *Source) Token(ctx context.Context) (*oauth2.Token, error) {
	e, err := s.cache.Get(ctx)
	if err != nil {
		return nil, err
	}
	return e.Token, nil
}

// Invalidate drops the cached token so the next call fetches a new one.
func (s *Source) Invalidate() { s.cache.Invalidate() }

// Close stops any background refresh and waits for it to end. Token after
// Close returns the cached token while it is usable, then ErrClosed.
func (s *Source) Close() error {
	s.cache.Close()
	return nil
}

// TokenSource returns an oauth2.TokenSource backed by s, for code written
// against golang.org/x/oauth2. Its Token calls use ctx.
func (s *Source) TokenSource(ctx context.Context) oauth2.TokenSource {
	return tokenSource{s: s, ctx: ctx}
}

type tokenSource struct {
	s   *Source
	ctx context.Context
}

func (ts tokenSource) Token() (*oauth2.Token, error) { return ts.s.Token(ts.ctx) }

// Client returns an *http.Client whose requests carry the service token.
// The client's transport is the http.Client found in ctx under
// oauth2.HTTPClient (as with x/oauth2), else http.DefaultTransport. On a 401
// from the API it fetches a fresh token and retries once when the request
// body can be replayed; it never retries a 403.
func (s *Source) Client(ctx context.Context) *http.Client {
	var base http.RoundTripper
	if hc, ok := ctx.Value(oauth2.HTTPClient).(*http.Client); ok && hc != nil {
		base = hc.Transport
	}
	return &http.Client{Transport: s.Transport(base)}
}

// Transport returns an http.RoundTripper that adds the service token to
// every request sent through base (nil means http.DefaultTransport).
func (s *Source) Transport(base http.RoundTripper) http.RoundTripper {
	return &bearer.Transport{Get: s.cache.Get, InvalidateIf: s.cache.InvalidateIf, Base: base}
}
