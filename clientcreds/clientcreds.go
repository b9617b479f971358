package clientcreds

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/erpnetgo/auth"
	"github.com/erpnetgo/auth/internal/clock"
	"github.com/erpnetgo/auth/internal/config"
	"github.com/erpnetgo/auth/internal/discovery"
	"github.com/erpnetgo/auth/internal/hook"
	"github.com/erpnetgo/auth/internal/httpx"
	"github.com/erpnetgo/auth/internal/lifetime"
	"github.com/erpnetgo/auth/internal/tokencache"
	"github.com/erpnetgo/auth/internal/tokenep"
	"github.com/erpnetgo/auth/internal/transport"
)

// Environment variables read by ConfigFromEnv.
const (
	envAuthority    = "ERPNET_AUTHORITY"
	envClientID     = "ERPNET_CLIENT_ID"
	envClientSecret = "ERPNET_CLIENT_SECRET"
	envSecretFile   = "ERPNET_CLIENT_SECRET_FILE"
	envScopes       = "ERPNET_SCOPES"
	envDomainAPI    = "ERPNET_DOMAIN_API"
)

// Config configures a Source. Authority, ClientID and ClientSecret (or
// ClientSecretFile) are required; every other field has a useful zero value. The same field names
// mean the same thing, with the same defaults, in every package of the SDK.
type Config struct {
	// Authority is the ERP.net instance root (https://demodb.my.erp.net,
	// resolved through ERP.net auto-discovery) or its identity server URL
	// (https://demodb.my.erp.net/id). http is accepted only for loopback
	// hosts.
	Authority string
	// ClientID is the Trusted Application's ApplicationUri; it may contain '/'.
	ClientID string
	// ClientSecret is the Trusted Application's secret.
	ClientSecret string
	// ClientSecretFile is the path of a file holding the secret instead
	// (a mounted Kubernetes Secret, say), for rotation without a restart:
	// the file is read when the first token is needed and read again when
	// the identity server refuses the secret (invalid_client); if it then
	// holds another secret the request is sent once more with it, else the
	// call fails at once with auth.ErrMisconfigured. Store the new secret
	// in ERP.net, then in the file (an atomic replace or Kubernetes'
	// symlink swap): the next token request is refused once and succeeds.
	// A trailing newline is trimmed; a file readable by others than its
	// owner (mode wider than 0600) gets a warning. Exclusive with
	// ClientSecret.
	ClientSecretFile string
	// Scopes to request, e.g. read and update. Empty asks for every scope
	// the Trusted Application allows.
	Scopes []string
	// DomainAPI is the Domain API root, e.g.
	// https://demodb.my.erp.net/api/domain/odata/. Empty means the one
	// ERP.net auto-discovery names, else <instance root>/api/domain/odata/.
	// Credentials are sent only to the origins of the Authority, the
	// identity server and this root.
	DomainAPI string
	// HTTPClient sends the requests to the identity server (discovery,
	// token endpoint); nil means a client with a 30 s timeout. It is not
	// used for API calls (see Transport).
	HTTPClient *http.Client
	// Transport is the base transport of API calls made through Client;
	// nil means http.DefaultTransport.
	Transport http.RoundTripper
	// AuthStyle is how the client secret is sent to the token endpoint;
	// the zero value, oauth2.AuthStyleAutoDetect, uses HTTP Basic unless
	// discovery lists only client_secret_post.
	AuthStyle oauth2.AuthStyle
	// RefreshWindow is how long before expiry the background refresh
	// starts; zero means 5 minutes, or the last 20% of a token living under
	// 25 minutes.
	RefreshWindow time.Duration
	// Retry tunes retries of the token endpoint and of idempotent API
	// calls answered 429 or 503; the zero value is sensible.
	Retry auth.Retry
	// Logger receives token fetches (never token values) and background
	// refresh failures; nil discards them.
	Logger *slog.Logger
	// Now is the clock, for tests; nil means time.Now.
	Now func() time.Time
	// Hooks, if set, receive what the Source does (token requests, cache
	// hits, waits, background refreshes, API retries, ERP.net API sessions
	// opened); see [auth.Hooks].
	Hooks *auth.Hooks
}

// ConfigFromEnv reads ERPNET_AUTHORITY, ERPNET_CLIENT_ID,
// ERPNET_CLIENT_SECRET or ERPNET_CLIENT_SECRET_FILE (the path of a file
// holding it: Config.ClientSecretFile), ERPNET_SCOPES (separated by spaces
// or commas) and ERPNET_DOMAIN_API (optional). It reports which required
// variables are missing, never their values.
func ConfigFromEnv() (Config, error) {
	cfg := Config{
		Authority:        strings.TrimSpace(os.Getenv(envAuthority)),
		ClientID:         strings.TrimSpace(os.Getenv(envClientID)),
		ClientSecret:     strings.TrimRight(os.Getenv(envClientSecret), "\r\n"),
		ClientSecretFile: strings.TrimSpace(os.Getenv(envSecretFile)),
		Scopes:           strings.FieldsFunc(os.Getenv(envScopes), func(r rune) bool { return r == ' ' || r == ',' || r == '\t' }),
		DomainAPI:        strings.TrimSpace(os.Getenv(envDomainAPI)),
	}
	var missing []string
	field := ""
	for _, v := range []struct{ field, name, val string }{
		{"Authority", envAuthority, cfg.Authority}, {"ClientID", envClientID, cfg.ClientID},
		{"ClientSecret", envClientSecret + " or " + envSecretFile, cfg.ClientSecret + cfg.ClientSecretFile},
	} {
		if v.val == "" {
			missing = append(missing, v.name)
			field = cmp.Or(field, v.field)
		}
	}
	if len(missing) > 0 {
		return cfg, config.Err(field, "is empty: the environment does not set "+strings.Join(missing, ", "))
	}
	return cfg, nil
}

// validate checks the Config without any network I/O, with the rules
// every package shares (internal/config). Errors name the field and never
// contain the secret.
func (c Config) validate() error {
	return config.First(
		config.Authority("Authority", c.Authority),
		config.ClientID("ClientID", c.ClientID),
		config.ClientSecretFile("ClientSecretFile", c.ClientSecretFile, c.ClientSecret),
		config.ClientSecret("ClientSecret", c.ClientSecret, c.ClientSecretFile == "",
			"(or ClientSecretFile): client credentials need a confidential Trusted Application"),
		config.Scopes("Scopes", c.Scopes),
		config.DomainAPI("DomainAPI", c.DomainAPI),
		config.AuthStyle("AuthStyle", c.AuthStyle),
		config.NotNegative("RefreshWindow", c.RefreshWindow),
	)
}

// Source is a per-process cache of one service token. It is safe for
// concurrent use. Close it when the process no longer needs tokens.
type Source struct {
	cfg   Config
	disco *discovery.Cache
	ep    tokenep.Client
	cache *tokencache.Cache
	life  *lifetime.Group
	log   *slog.Logger
	now   func() time.Time
	rep   *hook.Reporter
	// release unregisters the Source from the count of open Sources per
	// instance and client (countSource).
	release func()
}

// New validates cfg and returns a Source. It does no network I/O: discovery
// and the first token request happen on the first Token call.
func New(cfg Config) (*Source, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cfg.Scopes = append([]string(nil), cfg.Scopes...)
	hc := httpx.Client(cfg.HTTPClient)
	s := &Source{cfg: cfg, disco: discovery.New(hc, cfg.Authority, cfg.DomainAPI),
		log: cmp.Or(cfg.Logger, slog.New(slog.DiscardHandler)), now: cfg.Now,
		rep: &hook.Reporter{Hooks: cfg.Hooks, Flow: "clientcreds", ClientID: cfg.ClientID,
			Authority: strings.TrimRight(cfg.Authority, "/")}}
	s.disco.Report = s.rep
	if s.now == nil {
		s.now = time.Now
	}
	s.ep = tokenep.Client{HTTPClient: hc, ClientID: cfg.ClientID, ClientSecret: cfg.ClientSecret,
		Style: cfg.AuthStyle, Policy: cfg.Retry, Now: cfg.Now, Report: s.rep}
	s.ep.SecretFile = tokenep.NewSecretFile(cfg.ClientSecretFile, s.log)
	s.life = lifetime.New()
	s.cache = tokencache.New(s.fetch, tokencache.Options{Life: s.life, Window: cfg.RefreshWindow, Logger: s.log,
		Clock: clock.From(cfg.Now), Report: s.rep})
	s.release = countSource(cfg, s.log)
	return s, nil
}

func (s *Source) fetch(ctx context.Context) (*oauth2.Token, error) {
	doc, err := s.disco.Get(ctx)
	if err != nil {
		return nil, err
	}
	if len(doc.GrantTypesSupported) > 0 && !discovery.Supports(doc.GrantTypesSupported, "client_credentials") {
		return nil, &auth.Error{Op: "token request (client_credentials)", Kind: auth.ErrMisconfigured,
			Err: fmt.Errorf("the identity server at %s does not support the client_credentials grant", doc.Issuer)}
	}
	form := url.Values{"grant_type": {"client_credentials"}}
	if len(s.cfg.Scopes) > 0 {
		form.Set("scope", strings.Join(s.cfg.Scopes, " "))
	}
	start := s.now()
	tok, err := s.ep.Exchange(ctx, doc, form)
	if err != nil {
		s.log.Warn("erpnet: service token request failed", "client_id", s.cfg.ClientID, "error", err.Error())
		return nil, err
	}
	s.log.Debug("erpnet: service token obtained", "client_id", s.cfg.ClientID,
		"expires_in", tok.Expiry.Sub(s.now()).Round(time.Second), "scope", tok.Extra("scope"), "took", s.now().Sub(start))
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
// Close returns the cached token while it is usable, then ErrClosed. Close
// on a nil *Source does nothing, so a deferred Close is safe even when [New]
// failed.
func (s *Source) Close() error {
	if s == nil {
		return nil
	}
	if s.life.Close() {
		s.release()
	}
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

// Client returns an *http.Client whose requests carry the service token,
// for the instance only: a request for another host is refused before
// anything is sent, and a redirect to one is followed without the token.
// On a 401 from the API it fetches a fresh token and retries once when the
// request body can be replayed; it never retries a 403; it retries 429 and
// 503 answers of idempotent requests with backoff and Retry-After (see
// [Config.Retry]), within the request's context. The base transport is
// [Config.Transport], or, as with golang.org/x/oauth2, the Transport of an
// *http.Client stored in ctx under oauth2.HTTPClient.
func (s *Source) Client(ctx context.Context) *http.Client {
	base := s.cfg.Transport
	if hc, ok := ctx.Value(oauth2.HTTPClient).(*http.Client); ok && hc != nil && hc.Transport != nil {
		base = hc.Transport
	}
	return &http.Client{Transport: &transport.Transport{Get: s.cache.Credential, InvalidateIf: s.cache.InvalidateIf,
		Allow: s.disco.Allow, Base: base, Retry: s.cfg.Retry, Report: s.rep}}
}

// DomainAPI returns the Domain API (OData) root, ending in "/", e.g.
// https://demodb.my.erp.net/api/domain/odata/: [Config.DomainAPI], or the
// one ERP.net auto-discovery names, or one derived from the Authority.
// Append an entity set: DomainAPI(ctx) + "Crm_Sales_Customers?$top=10".
func (s *Source) DomainAPI(ctx context.Context) (string, error) {
	return s.disco.DomainAPI(ctx)
}
