package interop_test

import (
	"bytes"
	"context"
	"encoding/json"
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
	"github.com/erpnetgo/auth/authcode"
	"github.com/erpnetgo/auth/clientcreds"
	"github.com/erpnetgo/auth/interop/zitadelop"
)

// zitadelApp is one authcode.Client on its own test server, talking to the
// zitadel example OP.
type zitadelApp struct {
	name    string
	srv     *httptest.Server
	handler atomic.Pointer[http.Handler]
	spec    zitadelop.Client
	c       *authcode.Client
	rec     *recorder
}

// TestZitadelSignInRefreshRevokeEndSession runs the interactive flow of the
// SDK's public API against zitadel/oidc's example OP, for a confidential
// web client (HTTP Basic) and a public native client: sign-in through the
// OP's login page, the access token accepted by the OP's userinfo endpoint,
// refresh with rotation (each refresh token presented once, the used one
// refused by the OP afterwards), sign-out through the SignOut handler
// (revocation, then end_session with id_token_hint and
// post_logout_redirect_uri), and SignOutSession (revocation; the refresh
// token refused afterwards; the session ends).
func TestZitadelSignInRefreshRevokeEndSession(t *testing.T) {
	apps := []*zitadelApp{
		{name: "web", spec: zitadelop.Client{ID: "com.example.interop/web", Secret: "w:e%b+/="}},
		{name: "native", spec: zitadelop.Client{ID: "com.example.interop/native"}},
	}
	var cfg zitadelop.Config
	for _, a := range apps {
		a.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			(*a.handler.Load()).ServeHTTP(w, r)
		}))
		t.Cleanup(a.srv.Close)
		a.spec.RedirectURIs = []string{a.srv.URL + "/callback"}
		a.spec.PostLogoutRedirectURIs = []string{a.srv.URL + "/bye"}
		if a.spec.Secret != "" {
			cfg.WebClients = append(cfg.WebClients, a.spec)
		} else {
			cfg.NativeClients = append(cfg.NativeClients, a.spec)
		}
	}
	o := zitadelop.Start(t, cfg)
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	raw := &http.Client{Transport: tr, Timeout: 20 * time.Second}
	doc := discoveryDoc(t, raw, o.Issuer())
	tokenURL, _ := doc["token_endpoint"].(string)
	endSessionURL, _ := doc["end_session_endpoint"].(string)
	require.NotEmpty(t, tokenURL)
	require.NotEmpty(t, endSessionURL)
	require.NotEmpty(t, doc["revocation_endpoint"], "the SDK revokes only where discovery lists an endpoint")

	for _, a := range apps {
		a.start(t, o, tr)
	}

	for _, a := range apps {
		t.Run(a.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			secret := a.spec.Secret

			// Sign in through the OP's login page.
			b := newBrowser(t)
			s := zitadelSignIn(ctx, t, o, a, b)
			assert.Equal(t, zitadelop.UserID, s.Subject)
			assert.Equal(t, o.Issuer(), s.Issuer)
			codes := a.rec.grants("authorization_code")
			require.Len(t, codes, 1)
			code := codes[0]
			require.Equal(t, http.StatusOK, code.Status)
			assert.NotEmpty(t, code.Form.Get("code_verifier"), "PKCE")
			if secret != "" {
				assert.True(t, strings.HasPrefix(code.Header.Get("Authorization"), "Basic "))
				assert.False(t, code.Form.Has("client_secret"))
			} else {
				assert.Empty(t, code.Header.Get("Authorization"), "a public client sends no secret")
				assert.False(t, code.Form.Has("client_secret"))
				assert.Equal(t, a.spec.ID, code.Form.Get("client_id"))
			}
			rt0 := code.str("refresh_token")
			require.NotEmpty(t, rt0, "offline_access granted without prompt=consent")

			// The (opaque) access token works at the OP's userinfo endpoint,
			// sent by the SDK's credential transport.
			userinfo, _ := doc["userinfo_endpoint"].(string)
			resp, err := a.c.UserClient(ctx, s).Get(userinfo)
			require.NoError(t, err)
			var ui struct {
				Sub string `json:"sub"`
			}
			require.NoError(t, json.NewDecoder(resp.Body).Decode(&ui))
			resp.Body.Close()
			require.Equal(t, http.StatusOK, resp.StatusCode)
			assert.Equal(t, zitadelop.UserID, ui.Sub)

			// Refresh: the example storage rotates (a new refresh token on
			// every refresh, the redeemed one deleted). Twice, each time
			// with the newest token.
			ts := a.c.TokenSource(ctx, s)
			tok0, err := ts.Token()
			require.NoError(t, err)
			require.Empty(t, a.rec.grants("refresh_token"))
			latest := rt0
			var idToken string
			for i := 1; i <= 2; i++ {
				a.c.Invalidate(s)
				tok, err := ts.Token()
				require.NoError(t, err)
				_, err = ts.Token() // served from the cache
				require.NoError(t, err)
				refreshes := a.rec.grants("refresh_token")
				require.Len(t, refreshes, i)
				r := refreshes[i-1]
				require.Equal(t, http.StatusOK, r.Status)
				assert.Equal(t, latest, r.Form.Get("refresh_token"), "the newest refresh token is presented")
				next := r.str("refresh_token")
				require.NotEmpty(t, next)
				assert.NotEqual(t, latest, next, "zitadel's example storage rotates refresh tokens")
				assert.NotEqual(t, tok0.AccessToken, tok.AccessToken)
				assert.Equal(t, r.str("access_token"), tok.AccessToken)
				idToken = r.str("id_token")
				// The rotated-away token is dead at the OP.
				status, code := redeem(ctx, t, raw, tokenURL, a.spec.ID, secret, latest)
				assert.Equal(t, http.StatusBadRequest, status)
				assert.Equal(t, "invalid_grant", code)
				latest = next
			}
			assertNoRedemptionTwice(t, a.rec)
			if idToken == "" {
				idToken = code.str("id_token")
			}
			require.NotEmpty(t, idToken)

			// Sign-out through the SignOut handler: the refresh token is
			// revoked, then the browser goes to end_session with the latest
			// ID token.
			r := b.do(http.MethodPost, a.srv.URL+"/signout")
			require.Equal(t, http.StatusSeeOther, r.StatusCode, r.body)
			end, err := url.Parse(r.Header.Get("Location"))
			require.NoError(t, err)
			assert.Equal(t, endSessionURL, end.Scheme+"://"+end.Host+end.Path)
			assert.Equal(t, idToken, end.Query().Get("id_token_hint"))
			assert.Equal(t, a.srv.URL+"/bye", end.Query().Get("post_logout_redirect_uri"))
			revs := a.rec.to("/revoke")
			require.Len(t, revs, 1)
			assert.Equal(t, latest, revs[0].Form.Get("token"))
			assert.Equal(t, http.StatusOK, revs[0].Status)
			status, ecode := redeem(ctx, t, raw, tokenURL, a.spec.ID, secret, latest)
			assert.Equal(t, http.StatusBadRequest, status)
			assert.Equal(t, "invalid_grant", ecode, "the revoked refresh token is refused")
			back, err := o.EndSession(ctx, end.String())
			require.NoError(t, err)
			require.NotNil(t, back, "the OP accepts id_token_hint and post_logout_redirect_uri and sends the browser back")
			assert.Equal(t, a.srv.URL+"/bye", back.Scheme+"://"+back.Host+back.Path)
			_, err = a.c.UserSession(b.request(a.srv.URL + "/"))
			assert.ErrorIs(t, err, authcode.ErrNoSession)
			_, err = ts.Token()
			assert.ErrorIs(t, err, auth.ErrReauthRequired)

			// SignOutSession, without the browser.
			b = newBrowser(t)
			s2 := zitadelSignIn(ctx, t, o, a, b)
			codes = a.rec.grants("authorization_code")
			require.Len(t, codes, 2)
			rt := codes[1].str("refresh_token")
			require.NotEmpty(t, rt)
			before := len(a.rec.grants("refresh_token"))
			require.NoError(t, a.c.SignOutSession(ctx, s2))
			revs = a.rec.to("/revoke")
			require.Len(t, revs, 2)
			assert.Equal(t, rt, revs[1].Form.Get("token"))
			status, ecode = redeem(ctx, t, raw, tokenURL, a.spec.ID, secret, rt)
			assert.Equal(t, http.StatusBadRequest, status)
			assert.Equal(t, "invalid_grant", ecode, "the OP refuses the revoked refresh token")
			_, err = a.c.UserSession(b.request(a.srv.URL + "/"))
			assert.ErrorIs(t, err, authcode.ErrNoSession)
			_, err = a.c.TokenSource(ctx, s2).Token()
			assert.ErrorIs(t, err, auth.ErrReauthRequired)
			assert.Len(t, a.rec.grants("refresh_token"), before, "a signed-out session redeems nothing")
			assertNoRedemptionTwice(t, a.rec)
		})
	}
}

// TestZitadelDeadRefreshTokenEndsSession revokes a session's refresh token
// behind the SDK's back: the next refresh is refused by the OP, the SDK
// answers ErrReauthRequired, ends the session and never presents the dead
// token again.
func TestZitadelDeadRefreshTokenEndsSession(t *testing.T) {
	a := &zitadelApp{name: "web", spec: zitadelop.Client{ID: "com.example.interop/dead", Secret: "d:e%a+d/="}}
	a.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		(*a.handler.Load()).ServeHTTP(w, r)
	}))
	t.Cleanup(a.srv.Close)
	a.spec.RedirectURIs = []string{a.srv.URL + "/callback"}
	o := zitadelop.Start(t, zitadelop.Config{WebClients: []zitadelop.Client{a.spec}})
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	raw := &http.Client{Transport: tr, Timeout: 20 * time.Second}
	doc := discoveryDoc(t, raw, o.Issuer())
	a.start(t, o, tr)
	c := a.c

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b := newBrowser(t)
	s := zitadelSignIn(ctx, t, o, a, b)
	rt := a.rec.grants("authorization_code")[0].str("refresh_token")
	require.NotEmpty(t, rt)

	// Revoke it at the OP directly.
	revURL, _ := doc["revocation_endpoint"].(string)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, revURL,
		strings.NewReader(url.Values{"token": {rt}, "token_type_hint": {"refresh_token"}}.Encode()))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(a.spec.ID), url.QueryEscape(a.spec.Secret))
	resp, err := raw.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)

	c.Invalidate(s)
	_, err = c.TokenSource(ctx, s).Token()
	require.ErrorIs(t, err, auth.ErrReauthRequired)
	var ae *auth.Error
	require.ErrorAs(t, err, &ae)
	assert.Equal(t, "invalid_grant", ae.Code)
	assert.NotContains(t, err.Error(), rt)
	_, err = c.TokenSource(ctx, s).Token()
	require.ErrorIs(t, err, auth.ErrReauthRequired)
	r := b.get(a.srv.URL + "/me")
	assert.Equal(t, http.StatusFound, r.StatusCode, "RequireUser sends the user to sign in again: %s", r.body)
	assert.Len(t, a.rec.grants("refresh_token"), 1, "the dead token is presented once")
	assertNoRedemptionTwice(t, a.rec)
}

// TestZitadelClientCredentials gets service tokens from the example OP's
// service user with HTTP Basic and with the form body: one token request
// however often Token is called, and a wrong secret is a misconfiguration
// reported without the secret.
func TestZitadelClientCredentials(t *testing.T) {
	o := zitadelop.Start(t, zitadelop.Config{})
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	doc := discoveryDoc(t, &http.Client{Transport: tr}, o.Issuer())
	assert.Contains(t, doc["grant_types_supported"], "client_credentials")

	for _, style := range []oauth2.AuthStyle{oauth2.AuthStyleInHeader, oauth2.AuthStyleInParams} {
		rec := &recorder{base: tr}
		src, err := clientcreds.New(clientcreds.Config{
			Authority:    o.Issuer(),
			ClientID:     zitadelop.ServiceClientID,
			ClientSecret: zitadelop.ServiceClientSecret,
			AuthStyle:    style,
			HTTPClient:   &http.Client{Transport: rec, Timeout: 20 * time.Second},
		})
		require.NoError(t, err)
		tok, err := src.Token(ctx)
		require.NoError(t, err)
		assert.NotEmpty(t, tok.AccessToken)
		assert.Equal(t, "Bearer", tok.TokenType)
		assert.WithinDuration(t, time.Now().Add(5*time.Minute), tok.Expiry, time.Minute, "the example OP's 5-minute tokens")
		tok2, err := src.Token(ctx)
		require.NoError(t, err)
		assert.Equal(t, tok.AccessToken, tok2.AccessToken)
		grants := rec.grants("client_credentials")
		require.Len(t, grants, 1, "one token request")
		if style == oauth2.AuthStyleInHeader {
			assert.True(t, strings.HasPrefix(grants[0].Header.Get("Authorization"), "Basic "))
			assert.False(t, grants[0].Form.Has("client_secret"))
		} else {
			assert.Equal(t, zitadelop.ServiceClientSecret, grants[0].Form.Get("client_secret"))
			assert.Empty(t, grants[0].Header.Get("Authorization"))
		}
		require.NoError(t, src.Close())
	}

	bad, err := clientcreds.New(clientcreds.Config{
		Authority:    o.Issuer(),
		ClientID:     zitadelop.ServiceClientID,
		ClientSecret: "not-the-" + zitadelop.ServiceClientSecret,
		HTTPClient:   &http.Client{Transport: tr, Timeout: 20 * time.Second},
	})
	require.NoError(t, err)
	defer bad.Close()
	_, err = bad.Token(ctx)
	require.ErrorIs(t, err, auth.ErrMisconfigured)
	assert.NotContains(t, err.Error(), zitadelop.ServiceClientSecret)
}

// start builds a's Client for the OP o, recording its identity-server
// exchanges, and serves /signin, /callback, /signout, /bye and /me (the
// signed-in subject).
func (a *zitadelApp) start(t *testing.T, o *zitadelop.OP, tr http.RoundTripper) {
	a.rec = &recorder{base: tr}
	c, err := authcode.New(authcode.Config{
		Authority:             o.Issuer(),
		ClientID:              a.spec.ID,
		ClientSecret:          a.spec.Secret,
		RedirectURL:           a.srv.URL + "/callback",
		PostLogoutRedirectURL: a.srv.URL + "/bye",
		Keys:                  [][]byte{bytes.Repeat([]byte{7}, 32)},
		HTTPClient:            &http.Client{Transport: a.rec, Timeout: 20 * time.Second},
		Transport:             tr,
		Logger:                slog.New(slog.DiscardHandler),
	})
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	a.c = c
	mux := http.NewServeMux()
	mux.Handle("/signin", c.SignIn())
	mux.Handle("/callback", c.Callback())
	mux.Handle("/signout", c.SignOut())
	mux.HandleFunc("/bye", func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "bye") })
	mux.Handle("/me", c.RequireUser(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, authcode.SessionFromContext(r.Context()).Subject)
	})))
	var h http.Handler = mux
	a.handler.Store(&h)
}

// zitadelSignIn signs the example user in to a through the OP's login page
// with browser b and returns the session.
func zitadelSignIn(ctx context.Context, t *testing.T, o *zitadelop.OP, a *zitadelApp, b *browser) *authcode.Session {
	t.Helper()
	r := b.get(a.srv.URL + "/signin?return_to=/after")
	require.Equal(t, http.StatusFound, r.StatusCode, r.body)
	authURL := r.Header.Get("Location")
	require.True(t, strings.HasPrefix(authURL, o.Issuer()+"/"), authURL)
	cb, err := o.Login(ctx, authURL, o.User(), zitadelop.UserPassword)
	require.NoError(t, err)
	require.Equal(t, a.srv.URL+"/callback", cb.Scheme+"://"+cb.Host+cb.Path)
	r = b.get(cb.String())
	require.Equal(t, http.StatusSeeOther, r.StatusCode, r.body)
	assert.Equal(t, "/after", r.Header.Get("Location"))
	s, err := a.c.UserSession(b.request(a.srv.URL + "/after"))
	require.NoError(t, err)
	return s
}

// TestZitadelLoopbackSignIn signs a command-line user in with
// LoopbackSignIn (RFC 8252: a public client, redirect to 127.0.0.1 on a
// random port, which the OP matches to the registered loopback URI on any
// port), refreshes once with rotation, and signs out with SignOutSession.
func TestZitadelLoopbackSignIn(t *testing.T) {
	const id = "com.example.interop/cli"
	o := zitadelop.Start(t, zitadelop.Config{NativeClients: []zitadelop.Client{
		{ID: id, RedirectURIs: []string{"http://127.0.0.1/callback"}},
	}})
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	rec := &recorder{base: tr}
	c, err := authcode.New(authcode.Config{
		Authority:  o.Issuer(),
		ClientID:   id,
		HTTPClient: &http.Client{Transport: rec, Timeout: 20 * time.Second},
		Transport:  tr,
		Logger:     slog.New(slog.DiscardHandler),
	})
	require.NoError(t, err)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	browserDone := make(chan error, 1)
	s, err := c.LoopbackSignIn(ctx, authcode.LoopbackOptions{
		Output: io.Discard,
		OpenBrowser: func(authURL string) error {
			go func() {
				cb, err := o.Login(ctx, authURL, o.User(), zitadelop.UserPassword)
				if err == nil {
					var resp *http.Response
					if resp, err = (&http.Client{Transport: tr}).Get(cb.String()); err == nil {
						resp.Body.Close()
					}
				}
				browserDone <- err
			}()
			return nil
		},
	})
	require.NoError(t, <-browserDone)
	require.NoError(t, err)
	assert.Equal(t, zitadelop.UserID, s.Subject)
	codes := rec.grants("authorization_code")
	require.Len(t, codes, 1)
	assert.True(t, strings.HasPrefix(codes[0].Form.Get("redirect_uri"), "http://127.0.0.1:"), codes[0].Form.Get("redirect_uri"))
	assert.False(t, codes[0].Form.Has("client_secret"))
	rt := codes[0].str("refresh_token")
	require.NotEmpty(t, rt)

	c.Invalidate(s)
	_, err = c.TokenSource(ctx, s).Token()
	require.NoError(t, err)
	refreshes := rec.grants("refresh_token")
	require.Len(t, refreshes, 1)
	assert.Equal(t, rt, refreshes[0].Form.Get("refresh_token"))
	rt2 := refreshes[0].str("refresh_token")
	require.NotEmpty(t, rt2)
	assert.NotEqual(t, rt, rt2, "rotated")

	require.NoError(t, c.SignOutSession(ctx, s))
	revs := rec.to("/revoke")
	require.Len(t, revs, 1)
	assert.Equal(t, rt2, revs[0].Form.Get("token"))
	_, err = c.TokenSource(ctx, s).Token()
	assert.ErrorIs(t, err, auth.ErrReauthRequired)
	assertNoRedemptionTwice(t, rec)
}
