package authcode

import (
	"context"
	"crypto/rand"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"

	"github.com/erpnetgo/auth"
	"github.com/erpnetgo/auth/authcode/internal/sessions"
	"github.com/erpnetgo/auth/internal/clock"
	"github.com/erpnetgo/auth/internal/discovery"
	"github.com/erpnetgo/auth/internal/hook"
	"github.com/erpnetgo/auth/internal/httpx"
	"github.com/erpnetgo/auth/internal/lifetime"
	"github.com/erpnetgo/auth/internal/seal"
	"github.com/erpnetgo/auth/internal/tokenep"
)

// Client signs users in with the Authorization Code flow and PKCE, keeps
// their sessions in a Store and gives out their tokens. Create it with New;
// it is safe for concurrent use. Call Close when done to stop background
// refreshes.
type Client struct {
	cfg       Config
	scope     string // space-separated, ready for the authorize request
	sessions  *sessions.Engine
	sealer    *seal.Sealer
	log       *slog.Logger
	hc        *http.Client
	disco     *discovery.Cache
	tep       *tokenep.Client
	rep       *hook.Reporter
	life      *lifetime.Group // ends at Close: every request and goroutine of the Client hangs off it
	clock     clock.Clock
	secure    bool   // cookies get Secure (the redirect URL is https)
	cookie    string // session cookie name, prefixed when secure
	cookieAAD []byte
	attemptCP string // attempt cookie path (the callback's path)

	verMu    sync.Mutex
	verifier atomic.Pointer[verifierFor]
	prefix   atomic.Pointer[string] // store key prefix once the issuer is known

	inst *binding // set by package instances (bridge.go); nil otherwise

	// nonce is a test hook (benchmarks pin the nonce so a pre-signed ID
	// token can be served); nil means random.
	nonce func() string
}

type verifierFor struct {
	issuer, jwks string
	v            *oidc.IDTokenVerifier
}

// New validates cfg and returns a Client. It does no network I/O: the
// identity server is discovered on first use.
func New(cfg Config) (*Client, error) {
	cfg, err := cfg.normalize()
	if err != nil {
		return nil, err
	}
	c := &Client{
		cfg:   cfg,
		scope: strings.Join(cfg.Scopes, " "),
		log:   cfg.Logger,
		hc:    httpx.Client(cfg.HTTPClient),
		clock: clock.From(cfg.Now),
		life:  lifetime.New(),
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	c.rep = &hook.Reporter{Hooks: cfg.Hooks, Flow: "authcode", ClientID: cfg.ClientID, Authority: cfg.Authority}
	c.disco = discovery.New(c.hc, cfg.Authority, cfg.DomainAPI)
	c.disco.Report = c.rep
	c.sessions = sessions.New(sessions.Config{
		Store:    cfg.Store,
		ClientID: cfg.ClientID,
		TTL:      cfg.SessionTTL,
		MaxLive:  cfg.MaxLiveSessions,
		Window:   cfg.RefreshWindow,
		Prefix:   c.keyPrefix,
		Redeem:   c.redeem,
		Clock:    c.clock,
		Life:     c.life,
		Logger:   c.log,
		Report:   c.rep,
		LogUsers: cfg.LogUsers,
		Owner:    c,
	})
	keys := cfg.Keys
	if len(keys) == 0 {
		k := make([]byte, 32)
		_, _ = rand.Read(k)
		keys = [][]byte{k}
		if cfg.RedirectURL != "" { // only the web handlers use cookies
			c.log.Warn("authcode: no Keys configured; using a random key for this process: sessions will not survive a restart or span replicas")
		}
	}
	if c.sealer, err = seal.New(keys...); err != nil {
		return nil, &auth.ConfigError{Field: "Keys", Reason: "are not valid AES keys"}
	}
	if cfg.RedirectURL != "" {
		u, _ := url.Parse(cfg.RedirectURL)
		c.secure = u.Scheme == "https"
		c.attemptCP = u.EscapedPath()
		if c.attemptCP == "" {
			c.attemptCP = "/"
		}
	} else {
		c.attemptCP = "/"
	}
	c.cookie = cfg.CookieName
	if c.secure {
		c.cookie = "__Host-" + c.cookie
	}
	warnRedirectURIs(c.log, cfg)
	c.cookieAAD = []byte("erpnetgo/authcode session cookie\x00" + c.cookie + "\x00" + cfg.Authority + "\x00" + cfg.ClientID)
	c.tep = &tokenep.Client{
		HTTPClient:   c.hc,
		ClientID:     cfg.ClientID,
		ClientSecret: cfg.ClientSecret,
		SecretFile:   tokenep.NewSecretFile(cfg.ClientSecretFile, c.log),
		Style:        cfg.AuthStyle,
		Policy:       cfg.Retry,
		Now:          cfg.Now,
		Report:       c.rep,
	}
	return c, nil
}

// Close ends every request the Client has in flight (sign-in callbacks,
// refreshes, key fetches, loopback sign-ins) and every background refresh,
// and waits for its own goroutines to end. Sessions stay in the Store.
// Using the Client after Close returns ErrClosed. Close on a nil *Client
// does nothing, so a deferred Close is safe even when New failed.
func (c *Client) Close() error {
	if c == nil || !c.life.Close() {
		return nil
	}
	c.sessions.Close()
	return nil
}

// now is the Client's clock.
func (c *Client) now() time.Time { return c.clock.Now() }

// discover returns the identity server's discovery document.
func (c *Client) discover(ctx context.Context) (*discovery.Document, error) {
	if c.life.Closed() {
		return nil, auth.ErrClosed
	}
	ctx, cancel := c.life.Bind(ctx)
	defer cancel()
	doc, err := c.disco.Get(ctx)
	if err != nil {
		return nil, err
	}
	if c.prefix.Load() == nil {
		p := storePrefix(doc.Issuer, c.cfg.ClientID)
		c.prefix.Store(&p)
	}
	return doc, nil
}

// storePrefix namespaces Store keys by issuer and client_id.
func storePrefix(issuer, clientID string) string {
	return "erpnetgo/authcode/v1/" + url.PathEscape(issuer) + "/" + url.PathEscape(clientID) + "/"
}

// keyPrefix returns the Store key prefix, discovering the issuer if needed.
func (c *Client) keyPrefix(ctx context.Context) (string, error) {
	if p := c.prefix.Load(); p != nil {
		return *p, nil
	}
	if _, err := c.discover(ctx); err != nil {
		return "", err
	}
	return *c.prefix.Load(), nil
}

// idVerifier returns the ID token verifier for doc, creating it (and its
// JWKS cache) on first use. The key set (keySet) fetches the JWKS once, and
// again when no cached key verifies a token, at most once per cooldown.
func (c *Client) idVerifier(doc *discovery.Document) (*oidc.IDTokenVerifier, error) {
	if v := c.verifier.Load(); v != nil && v.issuer == doc.Issuer && v.jwks == doc.JWKSURI {
		return v.v, nil
	}
	if doc.JWKSURI == "" {
		return nil, &auth.Error{Op: "discovery", Kind: auth.ErrMisconfigured,
			Err: errors.New("discovery document has no jwks_uri: ID tokens cannot be verified")}
	}
	c.verMu.Lock()
	defer c.verMu.Unlock()
	if v := c.verifier.Load(); v != nil && v.issuer == doc.Issuer && v.jwks == doc.JWKSURI {
		return v.v, nil
	}
	v := oidc.NewVerifier(doc.Issuer, &keySet{c: c, uri: doc.JWKSURI}, &oidc.Config{
		ClientID:             c.cfg.ClientID,
		SupportedSigningAlgs: c.cfg.IDTokenSigningAlgs,
		Now:                  c.clock.Now,
	})
	c.verifier.Store(&verifierFor{issuer: doc.Issuer, jwks: doc.JWKSURI, v: v})
	return v, nil
}

// DomainAPI returns the Domain API (OData) root, ending in "/", e.g.
// https://demodb.my.erp.net/api/domain/odata/: Config.DomainAPI, or the
// one ERP.net auto-discovery names, or one derived from the Authority.
// Append an entity set: DomainAPI(ctx) + "Crm_Sales_Customers?$top=10".
func (c *Client) DomainAPI(ctx context.Context) (string, error) {
	if c.life.Closed() {
		return "", auth.ErrClosed
	}
	ctx, cancel := c.life.Bind(ctx)
	defer cancel()
	return c.disco.DomainAPI(ctx)
}

// user returns the log attributes naming a user: none unless
// Config.LogUsers is set (user names are personal data).
func (c *Client) user(subject string) []any {
	if !c.cfg.LogUsers {
		return nil
	}
	return []any{"subject", subject}
}
