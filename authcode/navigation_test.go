package authcode

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/erpnetgo/auth/erpnettest"
)

// TestSignedOutFormPostGetsAPage: a browser that submits a form behind
// RequireUser after its session ended (signed out in another tab) gets a
// page or a redirect, whatever the method; JSON is for fetch and XHR only
// (issue 23: the browser showed {"error":"login_required",...}).
func TestSignedOutFormPostGetsAPage(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	e.mustSignIn(b, "/")
	// Signed out in another tab: the session is gone, the cookie stays.
	r := b.do(http.MethodPost, e.app.URL+"/signout", http.Header{"Sec-Fetch-Site": {"same-origin"}, "Origin": {e.app.URL}})
	require.Equal(t, http.StatusSeeOther, r.StatusCode, r.body)
	form := e.app.URL + "/import?tab=2"
	navigate := func(method string, more http.Header) http.Header {
		h := http.Header{"Accept": {"text/html,application/xhtml+xml,*/*;q=0.8"}, "Sec-Fetch-Mode": {"navigate"},
			"Sec-Fetch-Dest": {"document"}, "Sec-Fetch-Site": {"same-origin"}, "Referer": {form},
			"Content-Type": {"application/x-www-form-urlencoded"}}
		for k, v := range more {
			h[k] = v
		}
		return h
	}
	for name, c := range map[string]struct {
		method string
		hdr    http.Header
	}{
		"POST form":                 {http.MethodPost, navigate(http.MethodPost, nil)},
		"PUT navigation":            {http.MethodPut, navigate(http.MethodPut, nil)},
		"POST without fetch header": {http.MethodPost, http.Header{"Accept": {"text/html"}, "Referer": {form}}},
	} {
		t.Run(name, func(t *testing.T) {
			r := anonDo(t, b, c.method, e.app.URL+"/me", c.hdr)
			assert.Equal(t, http.StatusUnauthorized, r.StatusCode)
			assert.Contains(t, r.Header.Get("Content-Type"), "text/html")
			assert.Contains(t, r.body, "You are signed out")
			assert.NotContains(t, r.body, "login_required")
			assertNoGoErrorText(t, r.body)
			// The button signs in and comes back to the page of the form.
			assert.Contains(t, r.body, `href="/signin?return_to=`+url.QueryEscape("/import?tab=2")+`"`)
		})
	}
	t.Run("GET navigation is redirected to sign in", func(t *testing.T) {
		r := anonDo(t, b, http.MethodGet, e.app.URL+"/me", navigate(http.MethodGet, http.Header{"Accept": {"*/*"}}))
		assert.Equal(t, http.StatusFound, r.StatusCode)
		assert.Equal(t, "/signin?return_to=%2Fme", r.Header.Get("Location"))
	})
	t.Run("a form from another site returns to the default page", func(t *testing.T) {
		r := anonDo(t, b, http.MethodPost, e.app.URL+"/me", navigate(http.MethodPost, http.Header{"Referer": {"https://evil.example/import"}}))
		assert.Equal(t, http.StatusUnauthorized, r.StatusCode)
		assert.Contains(t, r.body, `href="/signin?return_to=%2F"`)
	})
	for name, hdr := range map[string]http.Header{
		"fetch":             {"Accept": {"text/html"}, "Sec-Fetch-Mode": {"cors"}},
		"fetch same-origin": {"Accept": {"*/*"}, "Sec-Fetch-Mode": {"same-origin"}},
		"XMLHttpRequest":    {"Accept": {"text/html"}, "X-Requested-With": {"XMLHttpRequest"}},
		"API client":        {"Accept": {"application/json"}},
	} {
		t.Run(name+" gets JSON", func(t *testing.T) {
			r := anonDo(t, b, http.MethodPost, e.app.URL+"/me", hdr)
			assert.Equal(t, http.StatusUnauthorized, r.StatusCode)
			assert.Contains(t, r.Header.Get("Content-Type"), "application/json")
			assert.JSONEq(t, `{"error":"login_required","error_description":"sign-in required"}`, r.body)
		})
	}
}

// anonDo sends a request with exactly hdr (no default Accept).
func anonDo(t *testing.T, b *browser, method, u string, hdr http.Header) *response {
	t.Helper()
	if hdr.Get("Accept") == "" {
		hdr = hdr.Clone()
		hdr.Set("Accept", "*/*")
	}
	return b.do(method, u, hdr)
}

// TestDiscoveryFailureLoggedOnce: a sign-in that fails because the identity
// server cannot be discovered leaves one log record, with the reference
// the page shows (issue 23: two per request).
func TestDiscoveryFailureLoggedOnce(t *testing.T) {
	e := newEnv(t)
	e.idp.InjectFault("discovery", erpnettest.Fault{Status: http.StatusServiceUnavailable, Times: 20})
	r := e.browser().get(e.app.URL + "/signin")
	require.Equal(t, http.StatusServiceUnavailable, r.StatusCode, r.body)
	ref := pageReference(t, r.body)
	n := 0
	for _, l := range strings.Split(strings.TrimSpace(e.logs.String()), "\n") {
		if strings.Contains(l, "discovery") {
			n++
			assert.Contains(t, l, ref)
		}
	}
	assert.Equal(t, 1, n, "log:\n%s", e.logs.String())
}
