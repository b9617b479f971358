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
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/zitadel/oidc/v3/example/server/exampleop"
	"github.com/zitadel/oidc/v3/example/server/storage"
	"github.com/zitadel/oidc/v3/pkg/op"
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

	mu  sync.Mutex // serializes Login and EndSession (one browser)
	jar *cookiejar.Jar
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
	o := &OP{issuer: issuer, srv: srv, jar: jar, hc: &http.Client{Transport: &http.Transport{}}}
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
	o.mu.Lock()
	defer o.mu.Unlock()
	forms := 0
	final, err := o.browse(ctx, authURL, func(f *form) error {
		if !f.values.Has("username") {
			return fmt.Errorf("zitadelop: unexpected form posting to %s", f.action)
		}
		if forms++; forms > 1 {
			return errors.New("zitadelop: the login form came back: wrong user or password")
		}
		f.values.Set("username", user)
		f.values.Set("password", password)
		return nil
	})
	if err != nil {
		return nil, err
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
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.browse(ctx, endSessionURL, func(f *form) error {
		return fmt.Errorf("zitadelop: unexpected form posting to %s", f.action)
	})
}

// browse follows redirects and submits forms (after fill) until a redirect
// leaves the OP's origin; a page without a form ends it with nil.
func (o *OP) browse(ctx context.Context, start string, fill func(*form) error) (*url.URL, error) {
	client := &http.Client{
		Transport:     o.hc.Transport,
		Jar:           o.jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	method, next, body := http.MethodGet, start, url.Values(nil)
	for range 20 {
		var rd io.Reader
		if body != nil {
			rd = strings.NewReader(body.Encode())
		}
		req, err := http.NewRequestWithContext(ctx, method, next, rd)
		if err != nil {
			return nil, fmt.Errorf("zitadelop: %w", err)
		}
		if body != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		resp, err := client.Do(req)
		if err != nil {
			return nil, fmt.Errorf("zitadelop: %w", err)
		}
		page, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("zitadelop: %w", err)
		}
		switch code := resp.StatusCode; {
		case code >= 300 && code < 400:
			loc, err := resp.Location()
			if err != nil {
				return nil, fmt.Errorf("zitadelop: %s %s: %s without Location: %w", method, next, resp.Status, err)
			}
			if loc.Scheme+"://"+loc.Host != o.issuer {
				return loc, nil
			}
			method, next, body = http.MethodGet, loc.String(), nil
		case code == http.StatusOK:
			f := parseForm(page)
			if f == nil {
				return nil, nil
			}
			action, err := resp.Request.URL.Parse(f.action)
			if err != nil {
				return nil, fmt.Errorf("zitadelop: bad form action %q: %w", f.action, err)
			}
			if err := fill(f); err != nil {
				return nil, err
			}
			method, next, body = http.MethodPost, action.String(), f.values
		default:
			return nil, fmt.Errorf("zitadelop: %s %s: %s: %.300s", method, next, resp.Status, page)
		}
	}
	return nil, errors.New("zitadelop: no redirect off the OP after 20 requests")
}

type form struct {
	action string
	values url.Values
}

var (
	formRE  = regexp.MustCompile(`(?is)<form\b([^>]*)>(.*?)</form>`)
	inputRE = regexp.MustCompile(`(?is)<input\b([^>]*)>`)
	attrRE  = regexp.MustCompile(`(?s)([a-zA-Z_:][-\w:.]*)\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+))`)
)

// parseForm returns the first POST form of page with its inputs, or nil.
func parseForm(page []byte) *form {
	for _, m := range formRE.FindAllSubmatch(page, -1) {
		fa := attrs(m[1])
		if !strings.EqualFold(fa["method"], "post") {
			continue
		}
		f := &form{action: fa["action"], values: url.Values{}}
		for _, in := range inputRE.FindAllSubmatch(m[2], -1) {
			ia := attrs(in[1])
			if name := ia["name"]; name != "" {
				f.values.Add(name, ia["value"])
			}
		}
		return f
	}
	return nil
}

func attrs(tag []byte) map[string]string {
	m := map[string]string{}
	for _, a := range attrRE.FindAllSubmatch(tag, -1) {
		m[strings.ToLower(string(a[1]))] = html.UnescapeString(string(a[2]) + string(a[3]) + string(a[4]))
	}
	return m
}
