package bff

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// logoutURL returns the logoutUrl /bff/user gives b.
func logoutURL(t *testing.T, b *browser) string {
	t.Helper()
	r := b.get("/bff/user")
	require.Equal(t, http.StatusOK, r.status, r.body)
	u, _ := r.json(t)["logoutUrl"].(string)
	require.NotEmpty(t, u)
	return u
}

// requireEndSession checks r sends the browser to the identity server's
// end-session endpoint, and the session is gone.
func requireEndSession(t *testing.T, w *world, b *browser, r *response) {
	t.Helper()
	require.Equal(t, http.StatusSeeOther, r.status, r.body)
	require.True(t, strings.HasPrefix(r.header.Get("Location"), w.idp.Authority()+"/connect/endsession?"), r.header.Get("Location"))
	u := b.get("/bff/user")
	require.Equal(t, http.StatusUnauthorized, u.status)
	assert.Equal(t, 1, w.ev.Count("signout.completed"))
	assert.Equal(t, 1, w.idp.Requests("revocation"))
}

func TestLogout(t *testing.T) {
	t.Run("logoutUrl navigation", func(t *testing.T) {
		w := newWorld(t)
		b := w.signedIn()
		requireEndSession(t, w, b, b.do(http.MethodGet, logoutURL(t, b), nil, "Accept", "text/html", "Sec-Fetch-Mode", "navigate"))
	})
	t.Run("logoutUrl followed from another site", func(t *testing.T) {
		// The sid proves the link came from the app's page; authcode's
		// confirmation page for cross-site sign-outs is not shown.
		w := newWorld(t)
		b := w.signedIn()
		requireEndSession(t, w, b, b.do(http.MethodGet, logoutURL(t, b), nil, "Sec-Fetch-Site", "cross-site", "Origin", "https://other.example"))
	})
	t.Run("form POST with sid", func(t *testing.T) {
		w := newWorld(t)
		b := w.signedIn()
		sid := strings.TrimPrefix(logoutURL(t, b), "/bff/logout?sid=")
		requireEndSession(t, w, b, b.do(http.MethodPost, "/bff/logout", strings.NewReader(url.Values{"sid": {sid}}.Encode()),
			"Content-Type", "application/x-www-form-urlencoded", "Sec-Fetch-Mode", "navigate"))
	})
	t.Run("script POST with X-CSRF", func(t *testing.T) {
		w := newWorld(t)
		b := w.signedIn()
		requireEndSession(t, w, b, b.do(http.MethodPost, "/bff/logout", nil, "X-CSRF", "1"))
	})
	t.Run("refused", func(t *testing.T) {
		w := newWorld(t)
		b := w.signedIn()
		good := logoutURL(t, b)
		for _, tc := range []struct {
			name   string
			method string
			url    string
			hdr    []string
			status int
		}{
			{"GET without sid", http.MethodGet, "/bff/logout", nil, http.StatusBadRequest},
			{"GET without sid, with X-CSRF", http.MethodGet, "/bff/logout", []string{"X-CSRF", "1"}, http.StatusBadRequest},
			{"GET with another session's sid", http.MethodGet, "/bff/logout?sid=" + logoutID("another"), nil, http.StatusBadRequest},
			{"POST without sid or X-CSRF", http.MethodPost, "/bff/logout", nil, http.StatusUnauthorized},
			{"cross-site POST", http.MethodPost, "/bff/logout", []string{"X-CSRF", "1", "Sec-Fetch-Site", "cross-site"}, http.StatusUnauthorized},
			{"PUT", http.MethodPut, good, []string{"X-CSRF", "1"}, http.StatusMethodNotAllowed},
		} {
			r := b.do(tc.method, tc.url, nil, tc.hdr...)
			assert.Equal(t, tc.status, r.status, "%s: %s", tc.name, r.body)
		}
		page := b.do(http.MethodGet, "/bff/logout", nil, "Accept", "text/html", "Sec-Fetch-Mode", "navigate")
		assert.Contains(t, page.header.Get("Content-Type"), "text/html")
		assert.Contains(t, page.body, "Use the application")
		assert.Equal(t, http.StatusOK, b.get("/bff/user").status, "still signed in")
		assert.Zero(t, w.ev.Count("signout.completed"))
		assert.Zero(t, w.idp.Requests("revocation"))
	})
	t.Run("signed out already", func(t *testing.T) {
		// No session: back to the app, and the identity server is not
		// asked to end anything (anyone can send a link).
		w := newWorld(t)
		b := w.browser()
		r := b.do(http.MethodGet, "/bff/logout?sid="+logoutID("x"), nil)
		assert.Equal(t, http.StatusSeeOther, r.status)
		assert.Equal(t, w.app.URL+"/", r.header.Get("Location"))
		assert.Zero(t, w.idp.Requests("endsession"))
	})
	t.Run("sid is stable and not the session id", func(t *testing.T) {
		w := newWorld(t)
		b := w.signedIn()
		first := logoutURL(t, b)
		w.advance(2 * time.Hour) // a refresh changes the tokens, not the session
		require.Equal(t, http.StatusOK, b.get("/bff/api/Crm_Sales_Customers").status)
		assert.Equal(t, first, logoutURL(t, b))
		sid := strings.TrimPrefix(first, "/bff/logout?sid=")
		assert.Len(t, sid, 22)
		jar := b.hc.Jar.Cookies(mustURL(w.app.URL))
		for _, c := range jar {
			assert.NotContains(t, c.Value, sid)
		}
	})
}

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}
