package erpnettest

import (
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Sign-in forms opened in several tabs of one browser all work, in any order: each attempt has
// its own CSRF token and cookie.
func TestSignInFormsInSeveralTabs(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const tabs = 3
	var (
		attempts [tabs]*authz
		fields   [tabs]url.Values
	)
	for i := range tabs {
		attempts[i] = e.newAuthz(Demo.WebAppID, "http://127.0.0.1:8080/callback", "openid")
		resp, page := e.authorizeWith(e.c, attempts[i].query())
		require.Equal(t, http.StatusOK, resp.StatusCode)
		fields[i] = formFields(t, page)
	}
	assert.NotEqual(t, fields[0].Get("csrf"), fields[1].Get("csrf"), "one CSRF token per attempt")
	// The oldest tab first, then the newest, then the middle one.
	for _, i := range []int{0, 2, 1} {
		resp, body := e.submitLogin(e.c, fields[i], Demo.Alice, Demo.AlicePassword)
		require.Equal(t, http.StatusFound, resp.StatusCode, "tab %d: %s", i, body)
		q := redirectParams(t, resp, "http://127.0.0.1:8080/callback")
		assert.Equal(t, attempts[i].state, q.Get("state"), "tab %d", i)
		assert.NotEmpty(t, q.Get("code"), "tab %d", i)
	}
	// A finished attempt's cookie is deleted; its form cannot be replayed.
	resp, _ := e.submitLogin(e.c, fields[0], Demo.Alice, Demo.AlicePassword)
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)

	// One tab's CSRF token does not unlock another tab's form.
	a := e.newAuthz(Demo.WebAppID, "http://127.0.0.1:8080/callback", "openid")
	e.c.Jar = newJar() // a fresh browser, so the form is shown again
	_, p1 := e.authorizeWith(e.c, a.query())
	_, p2 := e.authorizeWith(e.c, e.newAuthz(Demo.WebAppID, "http://127.0.0.1:8080/callback", "openid").query())
	f1, f2 := formFields(t, p1), formFields(t, p2)
	mixed := url.Values{"request": {f1.Get("request")}, "csrf": {f2.Get("csrf")}}
	resp, body := e.submitLogin(e.c, mixed, Demo.Alice, Demo.AlicePassword)
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
	assert.Contains(t, string(body), "CSRF check failed")
}

// The dev server's sign-in page lists every user with their password.
func TestSignInPageShowsPasswords(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, page := e.authorizeWith(e.c, e.newAuthz(Demo.WebAppID, "http://127.0.0.1:8080/callback", "openid").query())
	for _, want := range []string{Demo.Alice, Demo.AlicePassword, Demo.Bob, Demo.BobPassword, "Alice Anderson"} {
		assert.Contains(t, string(page), want)
	}
	// Escaped as HTML.
	e2 := newEnv(t, func(c *Config) {
		c.Users = append(c.Users, User{Username: "carol", Password: "<b>x</b>"})
	})
	_, page = e2.authorizeWith(e2.c, e2.newAuthz(Demo.WebAppID, "http://127.0.0.1:8080/callback", "openid").query())
	assert.Contains(t, string(page), "&lt;b&gt;x&lt;/b&gt;")
	assert.NotContains(t, string(page), "<b>x</b>")
}

// Per-application token lifetimes override the server-wide ones.
func TestPerAppTokenLifetimes(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *Config) {
		web := demoApps()[0]
		web.AccessTokenLifetime, web.RefreshTokenLifetime = 2*time.Minute, 10*time.Minute
		c.Apps = append(c.Apps, web)
	})
	tokens := e.userTokens(Demo.Alice, "openid read offline_access")
	assert.EqualValues(t, 120, tokens["expires_in"])
	_, at := e.verify(tokens["access_token"].(string))
	assert.EqualValues(t, 120, at["exp"].(float64)-at["iat"].(float64))
	// Other applications keep the default hour.
	form := url.Values{"grant_type": {"client_credentials"}}
	_, body := e.token(form, Demo.WorkerID, Demo.WorkerSecret)
	assert.EqualValues(t, 3600, body["expires_in"])
	// The refresh token family dies after the application's lifetime.
	rt := tokens["refresh_token"].(string)
	e.s.Advance(9 * time.Minute)
	resp, body := e.refresh(rt, Demo.WebAppID, Demo.WebAppSecret)
	require.Equal(t, http.StatusOK, resp.StatusCode, "body: %v", body)
	e.s.Advance(2 * time.Minute)
	resp, body = e.refresh(body["refresh_token"].(string), Demo.WebAppID, Demo.WebAppSecret)
	requireOAuthError(t, resp, body, http.StatusBadRequest, "invalid_grant")

	_, err := Start(Config{Apps: []App{{ID: "x", AccessTokenLifetime: -1}}})
	assert.ErrorContains(t, err, "lifetimes")
}

// A post-logout URI registered for a loopback host without a port matches any port, like a
// redirect URI (so an app served by httptest can be registered before it listens).
func TestPostLogoutLoopbackAnyPort(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *Config) {
		web := demoApps()[0]
		web.RedirectURIs = append(web.RedirectURIs, "http://127.0.0.1/cb")
		web.PostLogoutURIs = append(web.PostLogoutURIs, "http://127.0.0.1/bye")
		c.Apps = append(c.Apps, web)
	})
	a := e.newAuthz(Demo.WebAppID, "http://127.0.0.1:4711/cb", "openid")
	resp, body := e.exchange(a, e.codeFor(a, Demo.Alice), Demo.WebAppSecret)
	require.Equal(t, http.StatusOK, resp.StatusCode, "body: %v", body)
	idt := body["id_token"].(string)
	resp2, _ := e.authorizeLike(pathEndSession, url.Values{"id_token_hint": {idt}, "post_logout_redirect_uri": {"http://127.0.0.1:4711/byebye"}})
	assert.Equal(t, http.StatusBadRequest, resp2.StatusCode)
	resp2, _ = e.authorizeLike(pathEndSession, url.Values{"id_token_hint": {idt}, "post_logout_redirect_uri": {"http://127.0.0.1:4711/bye"}})
	require.Equal(t, http.StatusFound, resp2.StatusCode)
	assert.Equal(t, "http://127.0.0.1:4711/bye", resp2.Header.Get("Location"))
}

// SessionsOpened counts every ERP.net session the Domain API opened, ever.
func TestSessionsOpened(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	assert.Equal(t, 0, e.s.SessionsOpened())
	at := e.cc(Demo.WorkerID, Demo.WorkerSecret, "read")
	for range 3 {
		r, _ := e.api("GET", customers, bearer(at), "")
		require.Equal(t, http.StatusOK, r.StatusCode)
	}
	assert.Equal(t, 1, e.s.SessionsOpened())
	e.s.Advance(21 * time.Minute) // idle: the session ends, a new one opens
	r, _ := e.api("GET", customers, bearer(e.cc(Demo.WorkerID, Demo.WorkerSecret, "read")), "")
	require.Equal(t, http.StatusOK, r.StatusCode)
	assert.Equal(t, 2, e.s.SessionsOpened())
	assert.Equal(t, 1, e.s.LicensesInUse())
	e.ctl().ResetAPICalls()
	assert.Equal(t, 2, e.s.SessionsOpened())
}

func newJar() http.CookieJar {
	jar, _ := cookiejar.New(nil)
	return jar
}
