package authcode

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/erpnetgo/auth"
	"github.com/erpnetgo/auth/erpnettest"
	"github.com/erpnetgo/auth/internal/erpnetctl"
)

// No default page, for any failure, shows the SDK's Go error text.
func TestErrorPagesShowNoGoErrorText(t *testing.T) {
	e := newEnv(t)
	var pages []*response
	get := func(b *browser, u string) {
		r := b.get(u)
		require.GreaterOrEqual(t, r.StatusCode, 400, "%s: %s", u, r.body)
		pages = append(pages, r)
	}
	// Callbacks: no state, unknown state, tampered attempt, expired
	// attempt, wrong iss, bad ID token, redeemed code, identity server error.
	b := e.browser()
	get(b, e.app.URL+"/callback?code=x")
	get(b, e.app.URL+"/callback?code=x&state=unknown")
	a := e.startSignIn(b, "")
	name := e.c.attemptCookieName(mustQuery(t, a).Get("state"))
	b.jar.SetCookies(mustURL(e.app.URL+"/callback"), []*http.Cookie{{Name: name, Value: "AAAA", Path: "/callback"}})
	get(b, e.authorize(b, a))
	b = e.browser()
	cb := e.authorize(b, e.startSignIn(b, ""))
	e.clk.off.Add(int64(attemptTTL + time.Second))
	get(b, cb)
	e.clk.off.Add(-int64(attemptTTL + time.Second))
	b = e.browser()
	get(b, callbackWith(t, e.authorize(b, e.startSignIn(b, "")), func(q url.Values) { q.Set("iss", "https://evil.example/id") }))
	b = e.browser()
	cb = e.authorize(b, e.startSignIn(b, ""))
	erpnetctl.Of(e.idp).TamperNextIDToken(erpnetctl.Tamper{BadSignature: true})
	get(b, cb)
	b = e.browser()
	cb = e.authorize(b, e.startSignIn(b, ""))
	require.Equal(t, http.StatusSeeOther, b.get(cb).StatusCode)
	cb2 := callbackWith(t, e.authorize(b, e.startSignIn(b, "")), func(q url.Values) { q.Set("code", mustQuery(t, cb).Get("code")) })
	get(b, cb2)
	b = e.browser()
	st := mustQuery(t, e.startSignIn(b, "")).Get("state")
	get(b, e.app.URL+"/callback?"+url.Values{"state": {st}, "error": {"invalid_scope"}, "error_description": {"scope x"}}.Encode())
	// Method not allowed; identity server down (discovery fails).
	r := b.do(http.MethodPut, e.app.URL+"/signin", nil)
	pages = append(pages, r)
	e.idp.InjectFault("discovery", erpnettest.Fault{Status: 500, Times: 4})
	cfg := e.cfg
	cfg.Retry = auth.Retry{Attempts: 1}
	c2, err := New(cfg) // nothing discovered yet
	require.NoError(t, err)
	defer c2.Close()
	w := newRecorder()
	c2.SignIn().ServeHTTP(w, newRequest(http.MethodGet, "/signin", nil))
	assert.Equal(t, http.StatusServiceUnavailable, w.Code)
	pages = append(pages, &response{Response: w.Result(), body: w.Body.String()})
	e.idp.ClearFaults()

	for i, p := range pages {
		assertNoGoErrorText(t, p.body)
		assert.Contains(t, p.Header.Get("Content-Type"), "text/html", "page %d", i)
		// The page's reference names the logged cause.
		line := e.logLine(pageReference(t, p.body))
		assert.Contains(t, line, `"error":`, "page %d", i)
	}
	assert.Contains(t, pages[len(pages)-1].body, "Sign-in is unavailable right now")
}

// A callback whose attempt is gone (reloaded, bookmarked, replayed) in a
// browser that is signed in just goes on to the app.
func TestCallbackWithoutAttemptInSignedInBrowser(t *testing.T) {
	e := newEnv(t, withClient(func(c *Config) { c.DefaultReturnPath = "/home" }))
	b := e.browser()
	cb := e.authorize(b, e.startSignIn(b, "/me"))
	r := b.get(cb)
	require.Equal(t, http.StatusSeeOther, r.StatusCode, r.body)
	assert.Equal(t, "/me", r.Header.Get("Location"))

	for _, u := range []string{cb, e.app.URL + "/callback?code=x&state=unknown", e.app.URL + "/callback"} {
		r = b.get(u)
		require.Equal(t, http.StatusSeeOther, r.StatusCode, "%s: %s", u, r.body)
		assert.Equal(t, "/home", r.Header.Get("Location"))
		for _, c := range r.Cookies() {
			assert.NotEqual(t, defaultCookieName, c.Name, "the session is left as it is")
		}
	}
	assert.Equal(t, 1, erpnetctl.Of(e.idp).Grants("authorization_code"), "no code is redeemed again")
	assert.Equal(t, "alice", e.session(b).Subject)

	// A browser that is not signed in gets the error page.
	requireRefused(t, e, e.browser().get(cb), http.StatusBadRequest, titleState, "no sign-in attempt")
	// So does a signed-in browser whose session the Store lost.
	require.NoError(t, e.store.Delete(context.Background(), e.session(b).sn.Key))
	requireRefused(t, e, b.get(cb), http.StatusBadRequest, titleState, "no sign-in attempt")
}

// Anyone can craft a callback link with error and error_description: the
// text is shown only for a live sign-in attempt of this browser.
func TestCallbackErrorTextOnlyForLiveAttempt(t *testing.T) {
	e := newEnv(t)
	const lure = "Your account is locked. Call +1 555 0100 or visit evil.example"
	for name, q := range map[string]url.Values{
		"no state":      {"error": {"access_denied"}, "error_description": {lure}},
		"unknown state": {"state": {"AAAAAAAAAAAAAAAAAAAAAAAAAA"}, "error": {"access_denied"}, "error_description": {lure}},
		"error_uri":     {"state": {"x"}, "error": {"access_denied"}, "error_uri": {"https://evil.example/"}, "error_description": {lure}},
	} {
		t.Run(name, func(t *testing.T) {
			b := e.browser()
			e.startSignIn(b, "") // a live attempt, but not the one named
			r := b.get(e.app.URL + "/callback?" + q.Encode())
			require.Equal(t, http.StatusBadRequest, r.StatusCode, r.body)
			assert.Contains(t, r.body, "<title>"+titleState+"</title>")
			assert.NotContains(t, r.body, "Call +1 555")
			assert.NotContains(t, r.body, "evil.example")
			assert.NotContains(t, r.body, "access_denied")
			assert.NotContains(t, r.body, "identity server said")
			pageReference(t, r.body)
		})
	}
	t.Run("live attempt", func(t *testing.T) {
		b := e.browser()
		st := mustQuery(t, e.startSignIn(b, "")).Get("state")
		r := b.get(e.app.URL + "/callback?" + url.Values{"state": {st}, "error": {"access_denied"},
			"error_description": {lure + " <b>now</b>"}}.Encode())
		require.Equal(t, http.StatusForbidden, r.StatusCode, r.body)
		assert.Contains(t, r.body, "The identity server said: "+lure+" &lt;b&gt;now&lt;/b&gt;")
		assert.NotContains(t, r.body, "<b>now")
	})
	assert.Zero(t, erpnetctl.Of(e.idp).Grants("authorization_code"))
}

// Another site cannot sign users out: a cross-site GET (a link, an image)
// gets a page asking the user to confirm with a POST button.
func TestSignOutCrossSiteAsksToConfirm(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	e.mustSignIn(b, "")
	for name, h := range map[string]http.Header{
		"Sec-Fetch-Site cross-site": {"Sec-Fetch-Site": {"cross-site"}},
		"Sec-Fetch-Site same-site":  {"Sec-Fetch-Site": {"same-site"}},
		"foreign Origin":            {"Origin": {"https://evil.example"}},
		"opaque Origin":             {"Origin": {"null"}},
	} {
		for _, method := range []string{http.MethodGet, http.MethodPost} {
			t.Run(name+" "+method, func(t *testing.T) {
				r := b.do(method, e.app.URL+"/signout", h)
				require.Equal(t, http.StatusOK, r.StatusCode, r.body)
				assert.Contains(t, r.body, `<form method="post" action="/signout"><button type="submit">Sign out</button></form>`)
				assert.Contains(t, r.body, "<title>Sign out?</title>")
				assert.Equal(t, "no-store", r.Header.Get("Cache-Control"))
				assert.Contains(t, r.Header.Get("Content-Security-Policy"), "form-action 'self'")
				for _, c := range r.Cookies() {
					assert.NotEqual(t, defaultCookieName, c.Name, "the session cookie is left alone")
				}
				assert.Equal(t, "alice", e.session(b).Subject, "still signed in")
			})
		}
	}
	assert.Zero(t, e.idp.Requests("revocation"))
	assert.Equal(t, 1, e.sessionsInStore())

	// The user confirms: the form posts from the app's own page.
	r := b.do(http.MethodPost, e.app.URL+"/signout", http.Header{"Sec-Fetch-Site": {"same-origin"}, "Origin": {e.app.URL}})
	require.Equal(t, http.StatusSeeOther, r.StatusCode, r.body)
	assert.True(t, strings.HasPrefix(r.Header.Get("Location"), e.idp.Authority()+"/connect/endsession?"))
	assert.Equal(t, 1, e.idp.Requests("revocation"))
	assert.Equal(t, 0, e.sessionsInStore())
	_, err := e.sessionErr(b)
	assert.ErrorIs(t, err, ErrNoSession)
}

// A same-origin or typed GET still signs out (links in the app's own pages).
func TestSignOutSameOriginGET(t *testing.T) {
	e := newEnv(t)
	for name, h := range map[string]http.Header{
		"typed":       {"Sec-Fetch-Site": {"none"}},
		"same-origin": {"Sec-Fetch-Site": {"same-origin"}},
		"own Origin":  {"Origin": {e.app.URL}},
	} {
		t.Run(name, func(t *testing.T) {
			b := e.browser()
			e.mustSignIn(b, "")
			r := b.do(http.MethodGet, e.app.URL+"/signout", h)
			require.Equal(t, http.StatusSeeOther, r.StatusCode, r.body)
			_, err := e.sessionErr(b)
			assert.ErrorIs(t, err, ErrNoSession)
		})
	}
}

// SignOutSession ends a session without the user's browser: the refresh
// token is revoked at the identity server and the session is gone.
func TestSignOutSession(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	e.mustSignIn(b, "")
	s := e.session(b)
	other := e.browser() // another session of the same user stays
	e.mustSignIn(other, "")
	rec := e.record(s)
	require.NotEmpty(t, rec.RefreshToken)
	familyOf := func(revoked bool) int {
		n := 0
		for _, tr := range erpnetctl.Of(e.idp).Tokens() {
			if tr.Kind == "refresh_token" && tr.Revoked == revoked {
				n++
			}
		}
		return n
	}
	require.Equal(t, 2, familyOf(false))

	require.NoError(t, e.c.SignOutSession(context.Background(), s))
	assert.Equal(t, 1, e.idp.Requests("revocation"))
	assert.Equal(t, 1, familyOf(true), "this session's refresh token is revoked")
	assert.Equal(t, 1, familyOf(false), "the other session's is not")
	reqs := e.rec.requests()
	last := reqs[len(reqs)-1]
	assert.Contains(t, last.URL, "revoc")
	assert.Equal(t, rec.RefreshToken, last.Form.Get("token"))
	assert.Equal(t, "refresh_token", last.Form.Get("token_type_hint"))

	_, err := e.sessionErr(b)
	assert.ErrorIs(t, err, ErrNoSession)
	assert.Equal(t, 1, e.sessionsInStore())
	_, err = e.c.TokenSource(context.Background(), s).Token()
	assert.ErrorIs(t, err, auth.ErrReauthRequired, "the old snapshot gives no token")
	r := b.get(e.app.URL + "/me")
	assert.Equal(t, http.StatusFound, r.StatusCode, "the browser must sign in again")
	assert.Equal(t, "alice", e.session(other).Subject)

	// Again, or with nil: nothing to end.
	assert.ErrorIs(t, e.c.SignOutSession(context.Background(), nil), ErrNoSession)
	require.NoError(t, e.c.SignOutSession(context.Background(), s))
	assert.Equal(t, 1, e.idp.Requests("revocation"), "nothing left to revoke")
}

// SignOutSession still purges the session when the revocation fails, and
// says so.
func TestSignOutSessionRevocationFails(t *testing.T) {
	e := newEnv(t, withClient(func(c *Config) { c.Retry = auth.Retry{Attempts: 1} }))
	b := e.browser()
	e.mustSignIn(b, "")
	s := e.session(b)
	e.idp.InjectFault("revocation", erpnettest.Fault{Status: http.StatusServiceUnavailable})
	err := e.c.SignOutSession(context.Background(), s)
	require.Error(t, err)
	assert.ErrorIs(t, err, auth.ErrTemporary)
	_, err = e.sessionErr(b)
	assert.ErrorIs(t, err, ErrNoSession)
	assert.Equal(t, 0, e.sessionsInStore())
}

// Invalidate makes the next token request redeem the refresh token.
func TestInvalidate(t *testing.T) {
	e := newEnv(t, withSharedStore())
	b := e.browser()
	e.mustSignIn(b, "")
	s := e.session(b)
	ts := e.c.TokenSource(context.Background(), s)
	tok1, err := ts.Token()
	require.NoError(t, err)
	_, err = ts.Token()
	require.NoError(t, err)
	require.Zero(t, erpnetctl.Of(e.idp).Grants("refresh_token"), "the token is cached")

	e.c.Invalidate(s)
	tok2, err := ts.Token()
	require.NoError(t, err)
	assert.Equal(t, 1, erpnetctl.Of(e.idp).Grants("refresh_token"))
	assert.NotEqual(t, tok1.AccessToken, tok2.AccessToken)
	tok3, err := e.c.TokenSource(context.Background(), e.session(b)).Token()
	require.NoError(t, err)
	assert.Equal(t, tok2.AccessToken, tok3.AccessToken, "the refreshed token is cached and saved")
	assert.Equal(t, tok2.AccessToken, e.record(s).AccessToken)
	assert.Equal(t, 1, erpnetctl.Of(e.idp).Grants("refresh_token"))

	// Through UserClient too; and another replica adopts the new tokens.
	other, err := New(e.cfg)
	require.NoError(t, err)
	defer other.Close()
	e.c.Invalidate(e.session(b))
	resp, err := e.c.UserClient(context.Background(), e.session(b)).Get(domainAPI(e))
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, 2, erpnetctl.Of(e.idp).Grants("refresh_token"))
	s2, err := e.sessionWith(other, b)
	require.NoError(t, err)
	tok4, err := other.TokenSource(context.Background(), s2).Token()
	require.NoError(t, err)
	assert.Equal(t, e.record(s).AccessToken, tok4.AccessToken)
	assert.Equal(t, 2, erpnetctl.Of(e.idp).Grants("refresh_token"))

	// Nil and foreign sessions are ignored.
	e.c.Invalidate(nil)
	e.c.Invalidate(&Session{})
}
