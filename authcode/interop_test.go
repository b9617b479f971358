package authcode

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/erpnetgo/auth"

	"github.com/erpnetgo/auth/internal/oidctest"
	"github.com/erpnetgo/auth/internal/testutil"
)

// interopApp is one Client mounted on its own test server, talking to
// oidc-provider.
type interopApp struct {
	srv     *httptest.Server
	handler atomic.Pointer[http.Handler]
	c       *Client
	rec     *recorder
	paths   *testutil.PathLog
	client  oidctest.Client
}

// TestInteropOIDCProvider runs the whole flow against the OpenID Certified
// oidc-provider: confidential clients authenticating with HTTP Basic and
// with the form body, and a public client; sign-in through its own forms,
// refresh with rotation, revocation and RP-initiated logout.
func TestInteropOIDCProvider(t *testing.T) {
	specs := []oidctest.Client{
		{ID: "com.example.interop/basic", Secret: "b:a%s+i/c=", AuthMethod: "client_secret_basic"},
		{ID: "com.example.interop/post", Secret: "p:o%s+t/=", AuthMethod: "client_secret_post"},
		{ID: "com.example.interop/public", AuthMethod: "none"},
	}
	p, apps := startInterop(t, specs, false)
	for _, a := range apps {
		t.Run(a.client.AuthMethod, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			interopFlow(ctx, t, p, a)
		})
	}
}

// TestInteropERPNetStyle runs the same flow against oidc-provider laid out
// as ERP.net serves its identity server: mounted under /id with
// IdentityServer's /connect/* routes, and ERP.net auto-discovery at the
// instance root. The Client is given only the instance root as Authority:
// it must find the identity server through /sys/auto-discovery, use the
// endpoints discovery names (never hard-coded paths), and report the
// Domain API root that auto-discovery names.
func TestInteropERPNetStyle(t *testing.T) {
	specs := []oidctest.Client{
		{ID: "com.example.erpnet/confidential", Secret: "c:o%n+f/=", AuthMethod: "client_secret_basic"},
		{ID: "com.example.erpnet/public", AuthMethod: "none"},
	}
	p, apps := startInterop(t, specs, true)
	require.Equal(t, p.Root()+"/id", p.Issuer())
	for _, a := range apps {
		t.Run(a.client.AuthMethod, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()

			// Auto-discovery names the Domain API root; the discovery
			// document is read from the ID site it names.
			api, err := a.c.DomainAPI(ctx)
			require.NoError(t, err)
			assert.Equal(t, p.DomainAPI(), api)
			assert.Equal(t, p.Root()+"/api/domain/odata/", api)
			paths := a.paths.List()
			require.GreaterOrEqual(t, len(paths), 2, "%v", paths)
			assert.Equal(t, "GET /sys/auto-discovery 200", paths[0])
			assert.Equal(t, "GET /id/.well-known/openid-configuration 200", paths[1])

			interopFlow(ctx, t, p, a)

			// Every endpoint the Client used is under /id/connect (or the
			// discovery document and its JWKS), as ERP.net lays them out.
			for _, pth := range a.paths.List() {
				f := strings.Fields(pth)
				switch {
				case f[1] == "/sys/auto-discovery",
					strings.HasPrefix(f[1], "/id/connect/"),
					strings.HasPrefix(f[1], "/id/.well-known/openid-configuration"):
				default:
					t.Errorf("request outside ERP.net's identity routes: %s", pth)
				}
			}
			assert.Contains(t, a.paths.List(), "GET /id/.well-known/openid-configuration/jwks 200")
			assert.Contains(t, a.paths.List(), "POST /id/connect/token 200")
			assert.Contains(t, a.paths.List(), "POST /id/connect/revocation 200")
		})
	}

	// A user token reaches the Domain API that auto-discovery named (the
	// harness's stand-in answers 401 without a Bearer token).
	t.Run("DomainAPI", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		a := apps[0]
		e := &env{t: t, app: a.srv, c: a.c, store: a.c.sessions.Store()}
		b := e.browser()
		r := b.get(a.srv.URL + "/signin")
		require.Equal(t, http.StatusFound, r.StatusCode, r.body)
		require.True(t, strings.HasPrefix(r.Header.Get("Location"), p.Issuer()+"/connect/authorize?"), r.Header.Get("Location"))
		cb, err := p.Login(ctx, r.Header.Get("Location"), "bob")
		require.NoError(t, err)
		r = b.get(cb.String())
		require.Equal(t, http.StatusSeeOther, r.StatusCode, r.body)
		s := e.session(b)
		api, err := a.c.DomainAPI(ctx)
		require.NoError(t, err)
		resp, err := a.c.UserClient(ctx, s).Get(api + "Crm_Sales_Customers?$top=1")
		require.NoError(t, err)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		assert.Equal(t, http.StatusOK, resp.StatusCode, string(body))
		require.NoError(t, a.c.SignOutSession(ctx, s))
	})
}

// startInterop starts oidc-provider (ERP.net's layout if erpnet) with one
// app per spec, each a Client on its own test server with the instance root
// (or the issuer) as Authority.
func startInterop(t *testing.T, specs []oidctest.Client, erpnet bool) (*oidctest.Provider, []*interopApp) {
	t.Helper()
	apps := make([]*interopApp, len(specs))
	for i, spec := range specs {
		a := &interopApp{}
		a.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			(*a.handler.Load()).ServeHTTP(w, r)
		}))
		t.Cleanup(a.srv.Close)
		spec.GrantTypes = []string{"authorization_code", "refresh_token"}
		spec.RedirectURIs = []string{a.srv.URL + "/callback"}
		spec.PostLogoutRedirectURIs = []string{a.srv.URL + "/bye"}
		a.client = spec
		apps[i] = a
		specs[i] = spec
	}
	p := oidctest.Start(t, oidctest.Config{Clients: specs, ERPNetStyle: erpnet})
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)

	for _, a := range apps {
		style := oauth2.AuthStyleInHeader
		if a.client.AuthMethod == "client_secret_post" {
			style = oauth2.AuthStyleInParams
		}
		a.paths = &testutil.PathLog{Base: tr}
		a.rec = &recorder{base: a.paths}
		c, err := New(Config{
			Authority:             p.Root(),
			ClientID:              a.client.ID,
			ClientSecret:          a.client.Secret,
			RedirectURL:           a.srv.URL + "/callback",
			PostLogoutRedirectURL: a.srv.URL + "/bye",
			Keys:                  [][]byte{bytes.Repeat([]byte{3}, 32)},
			AuthStyle:             style,
			// oidc-provider drops offline_access without prompt=consent
			// (ERP.net does not need it).
			AuthParams: url.Values{"prompt": {"consent"}},
			HTTPClient: &http.Client{Transport: a.rec, Timeout: 20 * time.Second},
			Transport:  tr,
			Logger:     slog.New(slog.DiscardHandler),
		})
		require.NoError(t, err)
		t.Cleanup(func() { c.Close() })
		a.c = c
		mux := http.NewServeMux()
		mux.Handle("/signin", c.SignIn())
		mux.Handle("/callback", c.Callback())
		mux.Handle("/signout", c.SignOut())
		mux.HandleFunc("/bye", func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "bye") })
		var h http.Handler = mux
		a.handler.Store(&h)
	}
	return p, apps
}

// interopFlow signs a user in through the provider's own forms, refreshes
// with rotation, signs out through the SignOut handler (revocation and
// RP-initiated logout with id_token_hint), then signs in again and ends
// that session with SignOutSession.
func interopFlow(ctx context.Context, t *testing.T, p *oidctest.Provider, a *interopApp) {
	e := &env{t: t, app: a.srv, c: a.c, store: a.c.sessions.Store()}
	b := e.browser()

	// Sign in through oidc-provider's own forms.
	r := b.get(a.srv.URL + "/signin?return_to=/after")
	require.Equal(t, http.StatusFound, r.StatusCode, r.body)
	authURL := r.Header.Get("Location")
	require.True(t, strings.HasPrefix(authURL, p.Issuer()), authURL)
	if erpnet := p.Root() != p.Issuer(); erpnet {
		require.True(t, strings.HasPrefix(authURL, p.Issuer()+"/connect/authorize?"), authURL)
	}
	cb, err := p.Login(ctx, authURL, "alice")
	require.NoError(t, err)
	assert.Equal(t, p.Issuer(), cb.Query().Get("iss"), "RFC 9207 iss")
	r = b.get(cb.String())
	require.Equal(t, http.StatusSeeOther, r.StatusCode, r.body)
	assert.Equal(t, "/after", r.Header.Get("Location"))
	s := e.session(b)
	assert.Equal(t, "alice", s.Subject)
	assert.Equal(t, p.Issuer(), s.Issuer)
	rec0 := e.record(s)
	require.NotEmpty(t, rec0.RefreshToken, "offline_access granted")

	// Client authentication as configured; never a secret for the public client.
	reqs := a.rec.requests()
	require.Len(t, reqs, 1)
	code := reqs[0]
	assert.NotEmpty(t, code.Form.Get("code_verifier"))
	switch a.client.AuthMethod {
	case "client_secret_basic":
		assert.True(t, strings.HasPrefix(code.Header.Get("Authorization"), "Basic "))
		assert.False(t, code.Form.Has("client_secret"))
	case "client_secret_post":
		assert.Equal(t, a.client.Secret, code.Form.Get("client_secret"))
		assert.Empty(t, code.Header.Get("Authorization"))
	default:
		assert.Empty(t, code.Header.Get("Authorization"))
		assert.False(t, code.Form.Has("client_secret"))
		assert.Equal(t, a.client.ID, code.Form.Get("client_id"))
	}

	// Refresh with rotation: Invalidate makes the next Token
	// redeem the refresh token, once.
	ts := a.c.TokenSource(ctx, s)
	tok0, err := ts.Token()
	require.NoError(t, err)
	require.Zero(t, refreshGrants(a.rec))
	a.c.Invalidate(s)
	tok1, err := ts.Token()
	require.NoError(t, err)
	assert.Equal(t, 1, refreshGrants(a.rec))
	assert.NotEqual(t, tok0.AccessToken, tok1.AccessToken)
	_, err = ts.Token()
	require.NoError(t, err)
	assert.Equal(t, 1, refreshGrants(a.rec))
	rec1 := e.record(s)
	assert.Equal(t, rec0.Ver+1, rec1.Ver)
	assert.NotEqual(t, rec0.RefreshToken, rec1.RefreshToken, "rotated")
	assert.Equal(t, tok1.AccessToken, rec1.AccessToken)

	// Sign-out revokes the refresh token and ends the provider's session.
	r = b.do(http.MethodPost, a.srv.URL+"/signout", nil)
	require.Equal(t, http.StatusSeeOther, r.StatusCode, r.body)
	endURL := r.Header.Get("Location")
	var revoked bool
	for _, rq := range a.rec.requests() {
		if strings.Contains(rq.URL, "revocation") {
			revoked = rq.Form.Get("token") == rec1.RefreshToken
		}
	}
	assert.True(t, revoked, "refresh token revoked")
	doc, err := a.c.discover(ctx)
	require.NoError(t, err)
	_, err = a.c.tep.Exchange(ctx, doc, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rec1.RefreshToken}})
	assert.ErrorIs(t, err, auth.ErrReauthRequired, "the revoked refresh token is dead")
	_, err = a.c.tep.Exchange(ctx, doc, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rec0.RefreshToken}})
	assert.ErrorIs(t, err, auth.ErrReauthRequired, "the rotated-away refresh token is dead")

	eu := mustURL(endURL)
	if erpnet := p.Root() != p.Issuer(); erpnet {
		assert.Equal(t, p.Issuer()+"/connect/endsession", eu.Scheme+"://"+eu.Host+eu.Path)
	}
	assert.Equal(t, rec1.IDToken, eu.Query().Get("id_token_hint"))
	back, err := p.EndSession(ctx, endURL)
	require.NoError(t, err)
	require.NotNil(t, back)
	assert.Equal(t, a.srv.URL+"/bye", back.Scheme+"://"+back.Host+back.Path)
	assert.False(t, eu.Query().Has("state"), "no state is sent to end-session")
	assert.False(t, back.Query().Has("state"))
	_, err = e.sessionErr(b)
	assert.ErrorIs(t, err, ErrNoSession)

	// SignOutSession, without the browser: a new session's refresh
	// token is revoked at the provider and the session is gone.
	b = e.browser()
	r = b.get(a.srv.URL + "/signin")
	require.Equal(t, http.StatusFound, r.StatusCode, r.body)
	cb, err = p.Login(ctx, r.Header.Get("Location"), "alice")
	require.NoError(t, err)
	r = b.get(cb.String())
	require.Equal(t, http.StatusSeeOther, r.StatusCode, r.body)
	s2 := e.session(b)
	rec2 := e.record(s2)
	require.NotEmpty(t, rec2.RefreshToken)
	require.NoError(t, a.c.SignOutSession(ctx, s2))
	reqs = a.rec.requests()
	last := reqs[len(reqs)-1]
	assert.Contains(t, last.URL, "revocation")
	assert.Equal(t, rec2.RefreshToken, last.Form.Get("token"))
	_, err = a.c.tep.Exchange(ctx, doc, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rec2.RefreshToken}})
	assert.ErrorIs(t, err, auth.ErrReauthRequired, "the provider refuses the revoked refresh token")
	_, err = e.sessionErr(b)
	assert.ErrorIs(t, err, ErrNoSession)
	_, err = a.c.TokenSource(ctx, s2).Token()
	assert.ErrorIs(t, err, auth.ErrReauthRequired)
}

// refreshGrants counts the refresh_token grants rec saw.
func refreshGrants(rec *recorder) int {
	n := 0
	for _, r := range rec.requests() {
		if r.Form.Get("grant_type") == "refresh_token" {
			n++
		}
	}
	return n
}
