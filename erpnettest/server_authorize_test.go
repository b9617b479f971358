package erpnettest

import (
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var hiddenRe = regexp.MustCompile(`name="(request|csrf)" value="([^"]*)"`)

// formFields extracts the hidden fields of the sign-in form.
func formFields(t *testing.T, page []byte) url.Values {
	t.Helper()
	v := url.Values{}
	for _, m := range hiddenRe.FindAllStringSubmatch(string(page), -1) {
		v.Set(m[1], m[2])
	}
	require.NotEmpty(t, v.Get("request"), "no sign-in form in %s", page)
	require.NotEmpty(t, v.Get("csrf"))
	return v
}

// submitLogin posts the sign-in form with client c.
func (e *env) submitLogin(c *http.Client, fields url.Values, user, password string) (*http.Response, []byte) {
	e.t.Helper()
	f := url.Values{"request": {fields.Get("request")}, "csrf": {fields.Get("csrf")},
		"username": {user}, "password": {password}, "action": {"login"}}
	resp, err := c.PostForm(e.s.URL()+pathSignIn, f)
	require.NoError(e.t, err)
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, body
}

func TestPKCEEnforced(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.ctl().AutoSignIn(Demo.Alice)
	cases := map[string]func(url.Values){
		"plain":           func(q url.Values) { q.Set("code_challenge_method", "plain") },
		"method missing":  func(q url.Values) { q.Del("code_challenge_method") },
		"no challenge":    func(q url.Values) { q.Del("code_challenge"); q.Del("code_challenge_method") },
		"short challenge": func(q url.Values) { q.Set("code_challenge", "abc") },
	}
	for name, mut := range cases {
		for _, client := range []struct{ id, redirect string }{{Demo.WebAppID, "http://127.0.0.1:8080/callback"}, {Demo.CLIID, "http://127.0.0.1:5000/callback"}} {
			a := e.newAuthz(client.id, client.redirect, "openid")
			q := a.query()
			mut(q)
			resp, _ := e.authorizeWith(e.c, q)
			p := redirectParams(t, resp, client.redirect)
			assert.Equal(t, "invalid_request", p.Get("error"), "%s/%s", name, client.id)
			assert.Equal(t, a.state, p.Get("state"))
			assert.Empty(t, p.Get("code"))
		}
	}

	// A wrong verifier fails the exchange; a missing one too.
	a := e.newAuthz(Demo.WebAppID, "http://127.0.0.1:8080/callback", "openid")
	code := e.codeFor(a, Demo.Alice)
	resp, body := e.token(url.Values{"grant_type": {"authorization_code"}, "code": {code},
		"redirect_uri": {a.redirectURI}}, Demo.WebAppID, Demo.WebAppSecret)
	requireOAuthError(t, resp, body, http.StatusBadRequest, "invalid_request")
	wrong, _ := pkcePair()
	resp, body = e.token(url.Values{"grant_type": {"authorization_code"}, "code": {code},
		"redirect_uri": {a.redirectURI}, "code_verifier": {wrong}}, Demo.WebAppID, Demo.WebAppSecret)
	requireOAuthError(t, resp, body, http.StatusBadRequest, "invalid_grant")
	// The failed attempt consumed the code.
	resp, body = e.exchange(a, code, Demo.WebAppSecret)
	requireOAuthError(t, resp, body, http.StatusBadRequest, "invalid_grant")
}

func TestCodeReplayRevokesTokens(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.newAuthz(Demo.WebAppID, "http://127.0.0.1:8080/callback", "openid profile read offline_access")
	code := e.codeFor(a, Demo.Alice)
	resp, tokens := e.exchange(a, code, Demo.WebAppSecret)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	at := tokens["access_token"].(string)
	rt := tokens["refresh_token"].(string)
	r, _ := e.api("GET", customers, bearer(at), "")
	require.Equal(t, http.StatusOK, r.StatusCode)

	resp, body := e.exchange(a, code, Demo.WebAppSecret)
	requireOAuthError(t, resp, body, http.StatusBadRequest, "invalid_grant")

	// Everything issued from the code is dead.
	r, _ = e.api("GET", customers, bearer(at), "")
	assert.Equal(t, http.StatusUnauthorized, r.StatusCode)
	resp, body = e.token(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}, Demo.WebAppID, Demo.WebAppSecret)
	requireOAuthError(t, resp, body, http.StatusBadRequest, "invalid_grant")
}

func TestCodeExpiry(t *testing.T) {
	t.Parallel()
	e := newEnv(t) // codes live a minute
	a := e.newAuthz(Demo.WebAppID, "http://127.0.0.1:8080/callback", "openid")
	code := e.codeFor(a, Demo.Alice)
	e.s.Advance(61 * time.Second)
	resp, body := e.exchange(a, code, Demo.WebAppSecret)
	requireOAuthError(t, resp, body, http.StatusBadRequest, "invalid_grant")
	assert.Contains(t, body["error_description"], "expired")

	a = e.newAuthz(Demo.WebAppID, "http://127.0.0.1:8080/callback", "openid")
	code = e.codeFor(a, Demo.Alice)
	e.s.Advance(59 * time.Second)
	resp, _ = e.exchange(a, code, Demo.WebAppSecret)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
}

func TestCodeBoundToClientAndRedirectURI(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.newAuthz(Demo.WebAppID, "http://127.0.0.1:8080/callback", "openid")
	code := e.codeFor(a, Demo.Alice)
	// Another client cannot redeem it (and does not burn it).
	resp, body := e.token(url.Values{"grant_type": {"authorization_code"}, "code": {code},
		"redirect_uri": {a.redirectURI}, "code_verifier": {a.verifier}}, Demo.WorkerID, Demo.WorkerSecret)
	requireOAuthError(t, resp, body, http.StatusBadRequest, "invalid_grant")
	// A different redirect_uri (even one registered for the client) fails.
	resp, body = e.token(url.Values{"grant_type": {"authorization_code"}, "code": {code},
		"redirect_uri": {"http://localhost:8080/callback"}, "code_verifier": {a.verifier}}, Demo.WebAppID, Demo.WebAppSecret)
	requireOAuthError(t, resp, body, http.StatusBadRequest, "invalid_grant")

	a = e.newAuthz(Demo.WebAppID, "http://127.0.0.1:8080/callback", "openid")
	code = e.codeFor(a, Demo.Alice)
	resp, body = e.exchange(a, code, Demo.WebAppSecret)
	require.Equal(t, http.StatusOK, resp.StatusCode, "body: %v", body)
}

func TestRedirectURIExactMatch(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *Config) { // the web app without its port-less loopback URI
		web := demoApps()[0]
		web.RedirectURIs = web.RedirectURIs[:2]
		c.Apps = append(c.Apps, web)
	})
	e.ctl().AutoSignIn(Demo.Alice)
	for _, uri := range []string{
		"http://127.0.0.1:8080/Callback",  // case
		"http://127.0.0.1:8080/callback/", // trailing slash
		"http://127.0.0.1:8081/callback",  // other port: the registration has a port, so no loopback rule
		"HTTP://127.0.0.1:8080/callback",
		"http://127.0.0.1:8080/callback?x=1",
		"http://127.0.0.1:8080/callback#frag",
		"http://localhost:9999/callback", // localhost is not a loopback IP literal
		"https://evil.example/callback",
		"",
	} {
		a := e.newAuthz(Demo.WebAppID, uri, "openid")
		resp, page := e.authorizeWith(e.c, a.query())
		assert.Equal(t, http.StatusBadRequest, resp.StatusCode, uri)
		assert.Empty(t, resp.Header.Get("Location"), "must never redirect to %q", uri)
		assert.Contains(t, string(page), "invalid_request", uri)
	}
	// Unknown client: error page too.
	a := e.newAuthz("com.example/unknown", "http://127.0.0.1:8080/callback", "openid")
	resp, _ := e.authorizeWith(e.c, a.query())
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
	assert.Empty(t, resp.Header.Get("Location"))
	// Both registered URIs work.
	for _, uri := range []string{"http://127.0.0.1:8080/callback", "http://localhost:8080/callback"} {
		a := e.newAuthz(Demo.WebAppID, uri, "openid")
		resp, _ := e.authorizeWith(e.c, a.query())
		assert.NotEmpty(t, redirectParams(t, resp, uri).Get("code"))
	}
}

func TestLoopbackRedirectAnyPort(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.ctl().AutoSignIn(Demo.Bob)
	for _, uri := range []string{"http://127.0.0.1:53124/callback", "http://127.0.0.1:1/callback", "http://127.0.0.1/callback"} {
		a := e.newAuthz(Demo.CLIID, uri, "openid")
		resp, _ := e.authorizeWith(e.c, a.query())
		assert.NotEmpty(t, redirectParams(t, resp, uri).Get("code"), uri)
	}
	a := e.newAuthz(testIPv6ID, "http://[::1]:40000/cb", "")
	resp, _ := e.authorizeWith(e.c, a.query())
	assert.NotEmpty(t, redirectParams(t, resp, "http://[::1]:40000/cb").Get("code"))
	for _, uri := range []string{
		"http://127.0.0.1:53124/other", "http://127.0.0.1:0/callback", "http://127.0.0.1:99999/callback",
		"http://127.0.0.1:80x/callback", "https://127.0.0.1:53124/callback", "http://localhost:53124/callback",
		"http://127.0.0.1:53124/callback/", "http://127.0.0.1:53124@evil.example/callback",
	} {
		a := e.newAuthz(Demo.CLIID, uri, "openid")
		resp, _ := e.authorizeWith(e.c, a.query())
		assert.Equal(t, http.StatusBadRequest, resp.StatusCode, uri)
		assert.Empty(t, resp.Header.Get("Location"), uri)
	}
}

func TestStateEchoedAndIssParameter(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *Config) { c.OmitIss = true })
	e.ctl().AutoSignIn(Demo.Alice)
	a := e.newAuthz(Demo.WebAppID, "http://127.0.0.1:8080/callback", "openid")
	a.state = "a b&c=d/é+%"
	resp, _ := e.authorizeWith(e.c, a.query())
	q := redirectParams(t, resp, "http://127.0.0.1:8080/callback")
	assert.Equal(t, a.state, q.Get("state"))
	assert.Empty(t, q.Get("iss"))

	e2 := newEnv(t) // iss by default
	e2.ctl().AutoSignIn(Demo.Alice)
	a = e2.newAuthz(Demo.WebAppID, "http://127.0.0.1:8080/callback", "openid")
	resp, _ = e2.authorizeWith(e2.c, a.query())
	assert.Equal(t, e2.s.Authority(), redirectParams(t, resp, "http://127.0.0.1:8080/callback").Get("iss"))
	// Errors carry iss too.
	q2 := a.query()
	q2.Set("response_type", "token")
	resp, _ = e2.authorizeWith(e2.c, q2)
	p := redirectParams(t, resp, "http://127.0.0.1:8080/callback")
	assert.Equal(t, "unsupported_response_type", p.Get("error"))
	assert.Equal(t, e2.s.Authority(), p.Get("iss"))
	assert.Equal(t, a.state, p.Get("state"))
}

func TestAuthorizeErrorsRedirectBack(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.ctl().AutoSignIn(Demo.Alice)
	cases := []struct {
		mut  func(url.Values)
		want string
	}{
		{func(q url.Values) { q.Set("response_type", "code id_token") }, "unsupported_response_type"},
		{func(q url.Values) { q.Set("response_type", "token") }, "unsupported_response_type"},
		{func(q url.Values) { q.Del("response_type") }, "invalid_request"},
		{func(q url.Values) { q.Set("scope", "openid sec") }, "invalid_scope"},
		{func(q url.Values) { q.Set("response_mode", "form_post") }, "invalid_request"},
		{func(q url.Values) { q["nonce"] = []string{"a", "b"} }, "invalid_request"},
		{func(q url.Values) { q.Set("request", "eyJ...") }, "request_not_supported"},
		{func(q url.Values) { q.Set("max_age", "-5") }, "invalid_request"},
		{func(q url.Values) { q.Set("prompt", "none login") }, "invalid_request"},
	}
	for _, tc := range cases {
		a := e.newAuthz(Demo.CLIID, "http://127.0.0.1:6000/callback", "openid")
		q := a.query()
		tc.mut(q)
		resp, _ := e.authorizeWith(e.c, q)
		p := redirectParams(t, resp, "http://127.0.0.1:6000/callback")
		assert.Equal(t, tc.want, p.Get("error"), "query %v", q)
		assert.Equal(t, a.state, p.Get("state"))
	}
}

func TestIDTokenClaims(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.newAuthz(Demo.WebAppID, "http://127.0.0.1:8080/callback", "openid profile read offline_access")
	code := e.codeFor(a, Demo.Alice)
	resp, body := e.exchange(a, code, Demo.WebAppSecret)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "openid profile read offline_access", body["scope"])
	assert.NotEmpty(t, body["refresh_token"])
	at := body["access_token"].(string)

	typ, idc := e.verify(body["id_token"].(string))
	assert.Equal(t, "JWT", typ)
	assert.Equal(t, a.nonce, idc["nonce"])
	assert.Equal(t, Demo.Alice, idc["sub"])
	assert.Equal(t, Demo.WebAppID, idc["aud"])
	assert.Equal(t, e.s.Authority(), idc["iss"])
	assert.Equal(t, atHash(at), idc["at_hash"])
	assert.Equal(t, "Alice Anderson", idc["name"])
	assert.Equal(t, "alice@example.com", idc["email"])
	assert.NotEmpty(t, idc["sid"])
	assert.NotEmpty(t, idc["auth_time"])
	assert.InDelta(t, 300, idc["exp"].(float64)-idc["iat"].(float64), 1)

	_, atc := e.verify(at)
	assert.Equal(t, idc["sid"], atc["sid"])
	assert.Equal(t, "user", atc["erp_user_type"])
	assert.Equal(t, "Alice Anderson", atc["name"])
	assert.Equal(t, idc["auth_time"], atc["auth_time"])
	assert.Equal(t, []any{"openid", "profile", "read", "offline_access"}, atc["scope"])
	assert.Contains(t, atc["aud"], "DomainAPI")

	// Without profile: no name/email in the ID token; without offline_access: no refresh token.
	a = e.newAuthz(Demo.WebAppID, "http://127.0.0.1:8080/callback", "openid read")
	resp, body = e.exchange(a, e.codeFor(a, Demo.Bob), Demo.WebAppSecret)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.NotContains(t, body, "refresh_token")
	_, idc = e.verify(body["id_token"].(string))
	assert.NotContains(t, idc, "name")
	assert.NotContains(t, idc, "email")
	// Without openid: no ID token.
	a = e.newAuthz(Demo.WebAppID, "http://127.0.0.1:8080/callback", "read")
	resp, body = e.exchange(a, e.codeFor(a, Demo.Bob), Demo.WebAppSecret)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.NotContains(t, body, "id_token")
	// No scope requested: every allowed scope.
	a = e.newAuthz(Demo.CLIID, "http://127.0.0.1:7000/callback", "")
	resp, body = e.exchange(a, e.codeFor(a, Demo.Bob), "")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "openid profile read update offline_access", body["scope"])
}

func TestSignInForm(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.newAuthz(Demo.WebAppID, "http://127.0.0.1:8080/callback", "openid profile")
	resp, page := e.authorizeWith(e.c, a.query())
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, resp.Header.Get("Content-Type"), "text/html")
	assert.Equal(t, "DENY", resp.Header.Get("X-Frame-Options"))
	assert.Contains(t, string(page), `type="password"`)
	assert.Contains(t, string(page), "Example Web App")
	assert.Contains(t, string(page), Demo.AlicePassword) // a dev server shows the demo passwords
	fields := formFields(t, page)

	// Wrong password: the form again, with an error, no redirect.
	resp, page = e.submitLogin(e.c, fields, Demo.Alice, "wrong")
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, string(page), "Invalid user name or password")
	assert.Contains(t, string(page), `type="password"`)
	// Unknown user: same.
	resp, page = e.submitLogin(e.c, fields, "mallory", "x")
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, string(page), "Invalid user name or password")
	// Missing/forged CSRF token: refused.
	forged := url.Values{"request": {fields.Get("request")}, "csrf": {"forged"}}
	resp, _ = e.submitLogin(e.c, forged, Demo.Alice, Demo.AlicePassword)
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
	// Another browser (no CSRF cookie) cannot use this form.
	resp, _ = e.submitLogin(e.newBrowser(), fields, Demo.Alice, Demo.AlicePassword)
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)

	// Right password: redirect with code and state.
	resp, _ = e.submitLogin(e.c, fields, Demo.Alice, Demo.AlicePassword)
	q := redirectParams(t, resp, "http://127.0.0.1:8080/callback")
	assert.Equal(t, a.state, q.Get("state"))
	resp2, tokens := e.exchange(a, q.Get("code"), Demo.WebAppSecret)
	require.Equal(t, http.StatusOK, resp2.StatusCode)
	_, idc := e.verify(tokens["id_token"].(string))
	sid := idc["sid"]
	// The form cannot be replayed.
	resp, _ = e.submitLogin(e.c, fields, Demo.Alice, Demo.AlicePassword)
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)

	// A second authorize skips the form (cookie-backed sign-in session), same sid.
	a2 := e.newAuthz(Demo.WebAppID, "http://127.0.0.1:8080/callback", "openid")
	resp, _ = e.authorizeWith(e.c, a2.query())
	q = redirectParams(t, resp, "http://127.0.0.1:8080/callback")
	_, tokens = e.exchange(a2, q.Get("code"), Demo.WebAppSecret)
	_, idc = e.verify(tokens["id_token"].(string))
	assert.Equal(t, sid, idc["sid"])

	// prompt=login forces the form even with a session.
	a3 := e.newAuthz(Demo.WebAppID, "http://127.0.0.1:8080/callback", "openid")
	a3.extra = url.Values{"prompt": {"login"}}
	resp, page = e.authorizeWith(e.c, a3.query())
	require.Equal(t, http.StatusOK, resp.StatusCode)
	fields = formFields(t, page)
	e.s.Advance(time.Minute)
	resp, _ = e.submitLogin(e.c, fields, Demo.Bob, Demo.BobPassword)
	q = redirectParams(t, resp, "http://127.0.0.1:8080/callback")
	_, tokens = e.exchange(a3, q.Get("code"), Demo.WebAppSecret)
	_, idc2 := e.verify(tokens["id_token"].(string))
	assert.Equal(t, Demo.Bob, idc2["sub"])
	assert.NotEqual(t, sid, idc2["sid"], "a fresh sign-in")
	assert.Greater(t, idc2["auth_time"].(float64), idc["auth_time"].(float64))

	// Cancel sends access_denied back.
	a4 := e.newAuthz(Demo.WebAppID, "http://127.0.0.1:8080/callback", "openid")
	a4.extra = url.Values{"prompt": {"login"}}
	_, page = e.authorizeWith(e.c, a4.query())
	fields = formFields(t, page)
	r, err := e.c.PostForm(e.s.URL()+pathSignIn, url.Values{"request": {fields.Get("request")}, "csrf": {fields.Get("csrf")}, "action": {"cancel"}})
	require.NoError(t, err)
	r.Body.Close()
	p := redirectParams(t, r, "http://127.0.0.1:8080/callback")
	assert.Equal(t, "access_denied", p.Get("error"))
	assert.Equal(t, a4.state, p.Get("state"))
}

func TestPromptNoneAndMaxAge(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.newAuthz(Demo.WebAppID, "http://127.0.0.1:8080/callback", "openid")
	a.extra = url.Values{"prompt": {"none"}}
	resp, _ := e.authorizeWith(e.c, a.query())
	assert.Equal(t, "login_required", redirectParams(t, resp, "http://127.0.0.1:8080/callback").Get("error"))

	// Sign in through the form, then prompt=none succeeds.
	a = e.newAuthz(Demo.WebAppID, "http://127.0.0.1:8080/callback", "openid")
	_, page := e.authorizeWith(e.c, a.query())
	resp, _ = e.submitLogin(e.c, formFields(t, page), Demo.Alice, Demo.AlicePassword)
	redirectParams(t, resp, "http://127.0.0.1:8080/callback")
	a = e.newAuthz(Demo.WebAppID, "http://127.0.0.1:8080/callback", "openid")
	a.extra = url.Values{"prompt": {"none"}}
	resp, _ = e.authorizeWith(e.c, a.query())
	assert.NotEmpty(t, redirectParams(t, resp, "http://127.0.0.1:8080/callback").Get("code"))

	// max_age exceeded forces the form again.
	e.s.Advance(10 * time.Minute)
	a = e.newAuthz(Demo.WebAppID, "http://127.0.0.1:8080/callback", "openid")
	a.extra = url.Values{"max_age": {"60"}}
	resp, page = e.authorizeWith(e.c, a.query())
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	formFields(t, page)
}

func TestAutoSignIn(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.ctl().AutoSignIn(Demo.Bob)
	a := e.newAuthz(Demo.CLIID, "http://127.0.0.1:5555/callback", "openid profile")
	resp, _ := e.authorizeWith(e.c, a.query())
	code := redirectParams(t, resp, a.redirectURI).Get("code")
	_, body := e.exchange(a, code, "")
	_, idc := e.verify(body["id_token"].(string))
	assert.Equal(t, Demo.Bob, idc["sub"])

	// prompt=login with auto sign-in: no form, but a fresh sign-in (new sid).
	a2 := e.newAuthz(Demo.CLIID, "http://127.0.0.1:5555/callback", "openid")
	a2.extra = url.Values{"prompt": {"login"}}
	resp, _ = e.authorizeWith(e.c, a2.query())
	_, body = e.exchange(a2, redirectParams(t, resp, a2.redirectURI).Get("code"), "")
	_, idc2 := e.verify(body["id_token"].(string))
	assert.NotEqual(t, idc["sid"], idc2["sid"])

	// Cleared: a new browser gets the form.
	e.ctl().AutoSignIn("")
	a3 := e.newAuthz(Demo.CLIID, "http://127.0.0.1:5555/callback", "openid")
	resp, page := e.authorizeWith(e.newBrowser(), a3.query())
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.True(t, strings.Contains(string(page), "<form"))
	assert.GreaterOrEqual(t, e.s.Requests("authorize"), 3)
}
