package erpnettest

import (
	"io"
	"net/http"
	"net/url"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestEndSession(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	// Sign in through the form so the browser has a session cookie.
	a := e.newAuthz(Demo.WebAppID, "http://127.0.0.1:8080/callback", "openid read offline_access")
	_, page := e.authorizeWith(e.c, a.query())
	resp, _ := e.submitLogin(e.c, formFields(t, page), Demo.Alice, Demo.AlicePassword)
	code := redirectParams(t, resp, "http://127.0.0.1:8080/callback").Get("code")
	resp2, tokens := e.exchange(a, code, Demo.WebAppSecret)
	require.Equal(t, http.StatusOK, resp2.StatusCode)
	idt, at, rt := tokens["id_token"].(string), tokens["access_token"].(string), tokens["refresh_token"].(string)
	r, _ := e.api("GET", customers, bearer(at), "")
	require.Equal(t, http.StatusOK, r.StatusCode)
	require.Equal(t, 1, e.s.LicensesInUse())

	// Mismatched post_logout_redirect_uri: error page, no redirect, nothing ended.
	for _, plr := range []string{"http://127.0.0.1:8080", "http://127.0.0.1:8080/x", "https://evil.example/"} {
		resp, body := e.authorizeLike(pathEndSession, url.Values{"id_token_hint": {idt}, "post_logout_redirect_uri": {plr}})
		assert.Equal(t, http.StatusBadRequest, resp.StatusCode, plr)
		assert.Empty(t, resp.Header.Get("Location"))
		assert.Contains(t, body, "invalid_request")
	}
	// post_logout_redirect_uri without id_token_hint, or with a forged one.
	resp, _ = e.authorizeLike(pathEndSession, url.Values{"post_logout_redirect_uri": {"http://127.0.0.1:8080/"}})
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
	resp, _ = e.authorizeLike(pathEndSession, url.Values{"id_token_hint": {flipSignature(idt)}, "post_logout_redirect_uri": {"http://127.0.0.1:8080/"}})
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
	assert.Equal(t, 1, e.s.LicensesInUse())

	// Proper logout: redirect with state; the session, refresh tokens and the license slot die.
	resp, _ = e.authorizeLike(pathEndSession, url.Values{"id_token_hint": {idt},
		"post_logout_redirect_uri": {"http://127.0.0.1:8080/"}, "state": {"bye 1"}})
	require.Equal(t, http.StatusFound, resp.StatusCode)
	assert.Equal(t, "http://127.0.0.1:8080/"+"?state=bye+1", resp.Header.Get("Location"))
	assert.Equal(t, 0, e.s.LicensesInUse())
	resp3, body := e.refresh(rt, Demo.WebAppID, Demo.WebAppSecret)
	requireOAuthError(t, resp3, body, http.StatusBadRequest, "invalid_grant")
	r, _ = e.api("GET", customers, bearer(at), "")
	assert.Equal(t, http.StatusUnauthorized, r.StatusCode)

	// The browser must sign in again.
	a2 := e.newAuthz(Demo.WebAppID, "http://127.0.0.1:8080/callback", "openid")
	resp, page2 := e.authorizeWith(e.c, a2.query())
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	formFields(t, page2)

	// Without post_logout_redirect_uri: a signed-out page.
	resp, html := e.authorizeLike(pathEndSession, url.Values{})
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, html, "signed out")
	assert.Equal(t, 7, e.s.Requests("endsession"))
}

// authorizeLike GETs a browser endpoint with query q.
func (e *env) authorizeLike(path string, q url.Values) (*http.Response, string) {
	e.t.Helper()
	resp, err := e.c.Get(e.s.URL() + path + "?" + q.Encode())
	require.NoError(e.t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(e.t, err)
	return resp, string(body)
}

func TestRevocationEndpoint(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	auth := basicAuth(Demo.WebAppID, Demo.WebAppSecret)
	tokens := e.userTokens(Demo.Alice, "openid read offline_access")
	rt, at := tokens["refresh_token"].(string), tokens["access_token"].(string)

	// Another client cannot revoke it (200, nothing happens).
	resp, _ := e.postForm(pathRevocation, url.Values{"token": {rt}}, basicAuth(Demo.WorkerID, Demo.WorkerSecret))
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	resp, t2 := e.refresh(rt, Demo.WebAppID, Demo.WebAppSecret)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	rt2 := t2["refresh_token"].(string)

	// Revoking the refresh token kills it (and the access tokens of its grant).
	resp, _ = e.postForm(pathRevocation, url.Values{"token": {rt2}, "token_type_hint": {"refresh_token"}}, auth)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	resp, body := e.refresh(rt2, Demo.WebAppID, Demo.WebAppSecret)
	requireOAuthError(t, resp, body, http.StatusBadRequest, "invalid_grant")
	r, _ := e.api("GET", customers, bearer(at), "")
	assert.Equal(t, http.StatusUnauthorized, r.StatusCode)

	// Access token revocation by jti.
	sys := e.cc(Demo.WorkerID, Demo.WorkerSecret, "")
	resp, _ = e.postForm(pathRevocation, url.Values{"token": {sys}}, basicAuth(Demo.WorkerID, Demo.WorkerSecret))
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	r, _ = e.api("GET", customers, bearer(sys), "")
	assert.Equal(t, http.StatusUnauthorized, r.StatusCode)

	// Unknown tokens are fine; missing token and bad client are errors.
	resp, _ = e.postForm(pathRevocation, url.Values{"token": {"nope"}}, auth)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	resp, body = e.postForm(pathRevocation, url.Values{}, auth)
	requireOAuthError(t, resp, body, http.StatusBadRequest, "invalid_request")
	resp, body = e.postForm(pathRevocation, url.Values{"token": {"x"}}, basicAuth(Demo.WebAppID, "bad"))
	requireOAuthError(t, resp, body, http.StatusUnauthorized, "invalid_client")
	// Public clients revoke their own tokens with client_id only.
	cli := e.cliTokens(Demo.Bob, "openid offline_access")
	resp, _ = e.postForm(pathRevocation, url.Values{"token": {cli["refresh_token"].(string)}, "client_id": {Demo.CLIID}}, "")
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	resp, body = e.refresh(cli["refresh_token"].(string), Demo.CLIID, "")
	requireOAuthError(t, resp, body, http.StatusBadRequest, "invalid_grant")
}

func TestIntrospection(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	auth := basicAuth(Demo.WebAppID, Demo.WebAppSecret)
	tokens := e.userTokens(Demo.Alice, "openid read offline_access")
	at, rt := tokens["access_token"].(string), tokens["refresh_token"].(string)

	resp, body := e.postForm(pathIntrospect, url.Values{"token": {at}}, auth)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, true, body["active"])
	assert.Equal(t, Demo.Alice, body["sub"])
	assert.Equal(t, Demo.WebAppID, body["client_id"])
	assert.Equal(t, "openid read offline_access", body["scope"])
	assert.Equal(t, "access_token", body["token_type"])
	assert.Equal(t, e.s.Authority(), body["iss"])
	assert.NotEmpty(t, body["exp"])

	resp, body = e.postForm(pathIntrospect, url.Values{"token": {rt}}, auth)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, true, body["active"])
	assert.Equal(t, "refresh_token", body["token_type"])

	pat := e.s.MintPAT(Demo.Bob)
	_, body = e.postForm(pathIntrospect, url.Values{"token": {pat}}, basicAuth(Demo.WorkerID, Demo.WorkerSecret))
	assert.Equal(t, true, body["active"])
	assert.Equal(t, "reference_token", body["token_type"])
	assert.Equal(t, "pat", body["erp_user_type"])

	for _, tok := range []string{"garbage", flipSignature(at), "enrt_" + "00"} {
		_, body = e.postForm(pathIntrospect, url.Values{"token": {tok}}, auth)
		assert.Equal(t, map[string]any{"active": false}, body)
	}
	// Rotated refresh token: inactive.
	e.refresh(rt, Demo.WebAppID, Demo.WebAppSecret)
	_, body = e.postForm(pathIntrospect, url.Values{"token": {rt}}, auth)
	assert.Equal(t, false, body["active"])

	// Client authentication is required; public clients cannot introspect.
	resp, body = e.postForm(pathIntrospect, url.Values{"token": {at}}, "")
	requireOAuthError(t, resp, body, http.StatusUnauthorized, "invalid_client")
	resp, body = e.postForm(pathIntrospect, url.Values{"token": {at}, "client_id": {Demo.CLIID}}, "")
	requireOAuthError(t, resp, body, http.StatusUnauthorized, "invalid_client")
	assert.Equal(t, 9, e.s.Requests("introspect"))
}

func TestRevokeUser(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	t1 := e.userTokens(Demo.Alice, "openid read offline_access")
	t2 := e.cliTokens(Demo.Alice, "openid read offline_access")
	bobs := e.userTokens(Demo.Bob, "openid read offline_access")
	pat := e.s.MintPAT(Demo.Alice)
	// Alice also signs in through the form in a second browser.
	browser := e.newBrowser()
	a := e.newAuthz(Demo.WebAppID, "http://127.0.0.1:8080/callback", "openid")
	_, page := e.authorizeWith(browser, a.query())
	resp, _ := e.submitLogin(browser, formFields(t, page), Demo.Alice, Demo.AlicePassword)
	redirectParams(t, resp, "http://127.0.0.1:8080/callback")
	r, _ := e.api("GET", customers, bearer(t1["access_token"].(string)), "")
	require.Equal(t, http.StatusOK, r.StatusCode)

	e.s.RevokeUser(Demo.Alice)
	resp, body := e.refresh(t1["refresh_token"].(string), Demo.WebAppID, Demo.WebAppSecret)
	requireOAuthError(t, resp, body, http.StatusBadRequest, "invalid_grant")
	resp, body = e.refresh(t2["refresh_token"].(string), Demo.CLIID, "")
	requireOAuthError(t, resp, body, http.StatusBadRequest, "invalid_grant")
	r, _ = e.api("GET", customers, bearer(t1["access_token"].(string)), "")
	assert.Equal(t, http.StatusUnauthorized, r.StatusCode)
	assert.Equal(t, 0, e.s.LicensesInUse())
	// Bob and alice's PAT are unaffected.
	resp, _ = e.refresh(bobs["refresh_token"].(string), Demo.WebAppID, Demo.WebAppSecret)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	r, _ = e.api("GET", customers, bearer(pat), "")
	assert.Equal(t, http.StatusOK, r.StatusCode)
	// The browser sign-in is gone: next authorize shows the form.
	a = e.newAuthz(Demo.WebAppID, "http://127.0.0.1:8080/callback", "openid")
	resp, page = e.authorizeWith(browser, a.query())
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	formFields(t, page)
}
