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

	"github.com/erpnetgo/auth/internal/erpnetctl"
)

func TestSignOut(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	e.mustSignIn(b, "")
	s := e.session(b)
	// Refresh once, so the latest ID token differs from the sign-in one.
	e.advance(time.Hour + time.Minute)
	_, err := e.c.TokenSource(context.Background(), s).Token()
	require.NoError(t, err)
	rec := e.record(s)

	r := b.do(http.MethodPost, e.app.URL+"/signout", nil)
	require.Equal(t, http.StatusSeeOther, r.StatusCode, r.body)
	loc, err := url.Parse(r.Header.Get("Location"))
	require.NoError(t, err)
	assert.Equal(t, e.idp.Authority()+"/connect/endsession", loc.Scheme+"://"+loc.Host+loc.Path)
	q := loc.Query()
	assert.Equal(t, rec.IDToken, q.Get("id_token_hint"), "the latest ID token")
	assert.Equal(t, e.app.URL+"/bye", q.Get("post_logout_redirect_uri"))
	assert.False(t, q.Has("state"), "no state is sent to end-session")
	assert.Equal(t, webID, q.Get("client_id"))

	assert.Equal(t, 1, e.idp.Requests("revocation"), "the refresh token is revoked")
	for _, tr := range erpnetctl.Of(e.idp).Tokens() {
		if tr.Kind == "refresh_token" {
			assert.True(t, tr.Revoked)
		}
	}
	assert.Equal(t, 0, e.sessionsInStore(), "the session is deleted")
	var cleared bool
	for _, c := range r.Cookies() {
		if c.Name == defaultCookieName && c.MaxAge < 0 {
			cleared = true
		}
	}
	assert.True(t, cleared, "the session cookie is cleared")
	_, err = e.sessionErr(b)
	assert.ErrorIs(t, err, ErrNoSession)

	// The identity server ends its session and comes back with nothing
	// added to the post-logout address.
	r = b.get(loc.String())
	require.Equal(t, http.StatusFound, r.StatusCode, r.body)
	back := mustURL(r.Header.Get("Location"))
	assert.Equal(t, e.app.URL+"/bye", back.Scheme+"://"+back.Host+back.Path)
	assert.False(t, back.Query().Has("state"))

	// Signed out for good.
	r = b.get(e.app.URL + "/me")
	assert.Equal(t, http.StatusFound, r.StatusCode)
	_, err = e.c.TokenSource(context.Background(), s).Token()
	assert.Error(t, err)
}

func TestSignOutVariants(t *testing.T) {
	t.Run("GET, without revocation endpoint", func(t *testing.T) {
		e := newEnv(t)
		erpnetctl.Of(e.idp).Set(erpnetctl.Knobs{NoRevocation: true})
		b := e.browser()
		e.mustSignIn(b, "")
		r := b.get(e.app.URL + "/signout")
		require.Equal(t, http.StatusSeeOther, r.StatusCode)
		assert.True(t, strings.HasPrefix(r.Header.Get("Location"), e.idp.Authority()+"/connect/endsession?"))
		assert.Zero(t, e.idp.Requests("revocation"))
		assert.Equal(t, 0, e.sessionsInStore())
	})
	t.Run("without end-session endpoint", func(t *testing.T) {
		e := newEnv(t, withDiscoveryRewrite(func(d map[string]any) { delete(d, "end_session_endpoint") }))
		b := e.browser()
		e.mustSignIn(b, "")
		r := b.do(http.MethodPost, e.app.URL+"/signout", nil)
		require.Equal(t, http.StatusSeeOther, r.StatusCode)
		assert.Equal(t, e.app.URL+"/bye", r.Header.Get("Location"))
		assert.Equal(t, 1, e.idp.Requests("revocation"))
	})
	t.Run("not signed in", func(t *testing.T) {
		// No session, so no ID token hint, without which the identity
		// server would not send the browser back: the app's signed-out
		// page at once (issue 23).
		e := newEnv(t)
		r := e.browser().do(http.MethodPost, e.app.URL+"/signout", nil)
		require.Equal(t, http.StatusSeeOther, r.StatusCode)
		assert.Equal(t, e.app.URL+"/bye", r.Header.Get("Location"))
		assert.Zero(t, e.idp.Requests("revocation"))
	})
	t.Run("no session left: a second tab, a double click", func(t *testing.T) {
		e := newEnv(t)
		b := e.browser()
		e.mustSignIn(b, "")
		second := e.browser() // a second tab: the same cookie, sent again
		second.jar.SetCookies(mustURL(e.app.URL+"/"), b.jar.Cookies(mustURL(e.app.URL+"/")))
		r := b.do(http.MethodPost, e.app.URL+"/signout", nil)
		require.Equal(t, http.StatusSeeOther, r.StatusCode)
		require.True(t, strings.HasPrefix(r.Header.Get("Location"), e.idp.Authority()+"/connect/endsession?"))
		r = second.do(http.MethodPost, e.app.URL+"/signout", nil)
		require.Equal(t, http.StatusSeeOther, r.StatusCode)
		assert.Equal(t, e.app.URL+"/bye", r.Header.Get("Location"), "the app's signed-out page, not the identity server's")
		assert.Equal(t, 1, e.idp.Requests("revocation"))
	})
	t.Run("store down: the identity server's session is still ended", func(t *testing.T) {
		var f *flakyStore
		e := newEnv(t, withStore(func(m *mapStore) Store { f = &flakyStore{mapStore: m}; return f }))
		b := e.browser()
		e.mustSignIn(b, "")
		f.failLoad.Store(true)
		r := b.do(http.MethodPost, e.app.URL+"/signout", nil)
		require.Equal(t, http.StatusSeeOther, r.StatusCode)
		assert.True(t, strings.HasPrefix(r.Header.Get("Location"), e.idp.Authority()+"/connect/endsession?"), r.Header.Get("Location"))
	})
	t.Run("other methods", func(t *testing.T) {
		e := newEnv(t)
		r := e.browser().do(http.MethodDelete, e.app.URL+"/signout", nil)
		assert.Equal(t, http.StatusMethodNotAllowed, r.StatusCode)
	})
}
