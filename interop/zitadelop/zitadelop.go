// Package zitadelop runs zitadel/oidc's example OpenID Provider
// (github.com/zitadel/oidc/v3/example/server: its exampleop router, login
// page and in-memory storage) in-process on 127.0.0.1, as a second
// identity server, independent of oidc-provider, for the SDK's
// interoperability tests, and drives its login page with plain net/http.
//
// What the example OP does, as these tests rely on it:
//
//   - the issuer is http://127.0.0.1:<random port> (no path, no trailing
//     slash); the authorization endpoint is /auth, token /oauth/token,
//     revocation /revoke, end session /end_session, JWKS /keys;
//   - access tokens are opaque (the example's Bearer type) and live five
//     minutes; ID tokens are RS256 JWTs with "sub" the user's ID ("id1" for
//     [User]);
//   - the scopes "read" and "update" are not known to it and are dropped
//     silently; offline_access is granted without prompt=consent;
//   - refresh tokens rotate on every use: the example storage deletes the
//     redeemed one (and its access token) and issues a new one, so a used
//     refresh token gets invalid_grant;
//   - end session (with id_token_hint) deletes every access and refresh
//     token of that user and client;
//   - client_credentials works only for the example's service user
//     [ServiceClientID] with [ServiceClientSecret], with HTTP Basic or the
//     form body.
//
// The storage is the example's own; this package wraps it only to return
// the post-logout redirect URIs of [Config] (the example's clients list
// none and keep their fields unexported).
package zitadelop

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"

	"github.com/zitadel/oidc/v3/example/server/exampleop"
	"github.com/zitadel/oidc/v3/example/server/storage"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/erpnetgo/auth/internal/htmlform"
)

const (
	// UserPassword is the password of the example storage's users.
	UserPassword = "verysecure"
	// UserID is the "sub" of [OP.User].
	UserID = "id1"
	// ServiceClientID is the example storage's client_credentials client.
	ServiceClientID = "sid1"
	// ServiceClientSecret is the secret of [ServiceClientID].
	ServiceClientSecret = "verysecret"
)

// Config lists the clients registered when the OP starts.
type Config struct {
	// WebClients are confidential clients (client_secret_basic; grant types
	// authorization_code, refresh_token and token exchange) built with the
	// example's storage.WebClient.
	WebClients []Client
	// NativeClients are public clients (no secret, PKCE; authorization_code
	// and refresh_token; loopback redirect URIs match on any port) built
	// with the example's storage.NativeClient.
	NativeClients []Client
}

// Client is one registered client.
type Client struct {
	ID     string
	Secret string // WebClients only
	// RedirectURIs are the registered redirect_uri values.
	RedirectURIs []string
	// PostLogoutRedirectURIs are the registered post_logout_redirect_uri
	// values.
	PostLogoutRedirectURIs []string
}

// OP is a running example OP.
type OP struct {
	issuer string
	srv    *httptest.Server
	hc     *http.Client

	mu sync.Mutex // serializes Login and EndSession (hc is one browser: a cookie jar, no redirects)
}

// Start starts the example OP on 127.0.0.1 and registers its shutdown with
// tb.Cleanup.
func Start(tb testing.TB, cfg Config) *OP {
	tb.Helper()
	srv := httptest.NewUnstartedServer(nil)
	issuer := "http://" + srv.Listener.Addr().String()

	clients := map[string]*storage.Client{}
	postLogout := map[string][]string{}
	for _, c := range cfg.WebClients {
		clients[c.ID] = storage.WebClient(c.ID, c.Secret, c.RedirectURIs...)
		postLogout[c.ID] = c.PostLogoutRedirectURIs
	}
	for _, c := range cfg.NativeClients {
		clients[c.ID] = storage.NativeClient(c.ID, c.RedirectURIs...)
		postLogout[c.ID] = c.PostLogoutRedirectURIs
	}
	st := &wrapped{Storage: storage.NewStorageWithClients(storage.NewUserStore(issuer), clients), postLogout: postLogout}
	// SetupServer makes its logger the process default; the example's
	// request log is noise in tests.
	srv.Config.Handler = exampleop.SetupServer(issuer, st, slog.New(slog.DiscardHandler), false)
	srv.Start()

	jar, _ := cookiejar.New(nil)
	o := &OP{issuer: issuer, srv: srv, hc: &http.Client{Transport: &http.Transport{}, Jar: jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
	tb.Cleanup(func() {
		o.hc.CloseIdleConnections()
		srv.CloseClientConnections()
		srv.Close()
	})
	return o
}

// Issuer returns the issuer, http://127.0.0.1:<port>.
func (o *OP) Issuer() string { return o.issuer }

// User returns the login name of the example's first user (ID [UserID]),
// "test-user@127.0.0.1".
func (o *OP) User() string { return "test-user@127.0.0.1" }

// wrapped is the example storage, with post-logout redirect URIs.
type wrapped struct {
	*storage.Storage
	postLogout map[string][]string
}

// GetClientByClientID returns the example's client with the configured
// post-logout redirect URIs.
func (w *wrapped) GetClientByClientID(ctx context.Context, id string) (op.Client, error) {
	c, err := w.Storage.GetClientByClientID(ctx, id)
	if err != nil {
		return nil, err
	}
	return &withPostLogout{Client: c, uris: w.postLogout[id]}, nil
}

type withPostLogout struct {
	op.Client
	uris []string
}

func (c *withPostLogout) PostLogoutRedirectURIs() []string { return c.uris }

// Login drives an authorization request through the OP's login page as a
// browser would (one cookie jar for all calls): it requests authURL, fills
// the login form with user and password, and follows redirects until one
// leaves the OP's origin. It returns that redirect, carrying code and state,
// without requesting it. An OAuth error in the redirect is returned as an
// error together with the URL.
func (o *OP) Login(ctx context.Context, authURL, user, password string) (*url.URL, error) {
	forms := 0
	final, err := o.browse(ctx, authURL, func(f *htmlform.Form) error {
		if !f.Values.Has("username") {
			return fmt.Errorf("unexpected form posting to %s", f.Action)
		}
		if forms++; forms > 1 {
			return errors.New("the login form came back: wrong user or password")
		}
		f.Values.Set("username", user)
		f.Values.Set("password", password)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if final == nil {
		return nil, errors.New("zitadelop: the OP showed a page without a form")
	}
	if e := final.Query().Get("error"); e != "" {
		return final, fmt.Errorf("zitadelop: authorization failed: %s: %s", e, final.Query().Get("error_description"))
	}
	return final, nil
}

// EndSession requests an RP-initiated logout URL and returns the OP's
// redirect off its origin (to the post_logout_redirect_uri), or nil if it
// ends on its own page.
func (o *OP) EndSession(ctx context.Context, endSessionURL string) (*url.URL, error) {
	return o.browse(ctx, endSessionURL, func(f *htmlform.Form) error {
		return fmt.Errorf("unexpected form posting to %s", f.Action)
	})
}

// browse walks from start in the OP's one browser (htmlform.Walk) until a
// redirect leaves the OP's origin; a page without a form ends it with nil.
func (o *OP) browse(ctx context.Context, start string, fill func(*htmlform.Form) error) (*url.URL, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	final, _, err := htmlform.Walk(ctx, o.hc, start, func(_, to *url.URL) bool { return to.Scheme+"://"+to.Host != o.issuer }, fill)
	if err != nil {
		return nil, fmt.Errorf("zitadelop: %w", err)
	}
	return final, nil
}
