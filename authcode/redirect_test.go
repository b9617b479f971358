package authcode_test

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/erpnetgo/auth"
	"github.com/erpnetgo/auth/authcode"
	"github.com/erpnetgo/auth/internal/testutil"
)

// A Client without RedirectURL says so when its SignIn and Callback
// handlers are built, at start-up, and people who reach them get a plain
// page, never a Go error or a 500.
func TestSignInWithoutRedirectURLFailsWhenBuilt(t *testing.T) {
	logs := &testutil.SyncBuffer{}
	c, err := authcode.New(authcode.Config{Authority: "https://demodb.my.erp.net", ClientID: "com.example/cli",
		Logger: slog.New(slog.NewTextHandler(logs, nil))})
	require.NoError(t, err, "a native app needs no RedirectURL")
	defer c.Close()
	assert.NotContains(t, logs.String(), "RedirectURL")

	signIn := c.SignIn()
	assert.Equal(t, 1, strings.Count(logs.String(), "RedirectURL is required to serve SignIn"), "logged when built, before any request")
	assert.Contains(t, logs.String(), "level=ERROR")
	callback := c.Callback()
	assert.Equal(t, 1, strings.Count(logs.String(), "RedirectURL is required to serve Callback"))

	for _, h := range []http.Handler{signIn, callback} {
		w := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodGet, "/signin", nil)
		req.Header.Set("Accept", "text/html")
		h.ServeHTTP(w, req)
		assert.Equal(t, http.StatusNotImplemented, w.Code)
		body := w.Body.String()
		assert.Contains(t, body, "Sign-in is not set up correctly")
		assert.Contains(t, w.Header().Get("Content-Type"), "text/html")
		for _, goText := range []string{"erpnet auth", "config:", "RedirectURL", "ConfigError"} {
			assert.NotContains(t, body, goText)
		}

		w = httptest.NewRecorder()
		req = httptest.NewRequest(http.MethodGet, "/callback?code=x&state=y", nil)
		req.Header.Set("Accept", "application/json")
		h.ServeHTTP(w, req)
		assert.Equal(t, http.StatusNotImplemented, w.Code)
		var e map[string]string
		require.NoError(t, json.Unmarshal(w.Body.Bytes(), &e))
		assert.Equal(t, "server_misconfigured", e["error"])
	}
}

// ERP.net compares redirect URIs byte for byte: a trailing slash or an
// upper-case letter is worth a warning naming the exact string to
// register.
func TestRedirectURIRegistrationWarnings(t *testing.T) {
	for _, tc := range []struct {
		redirect, postLogout string
		warnings             []string
	}{
		{"https://app.example.com/callback", "https://app.example.com/", nil},
		{"https://app.example.com/callback", "https://app.example.com", nil},
		{"https://app.example.com/callback/", "", []string{`RedirectURL ends with '/'`, `register=https://app.example.com/callback/`, "ImpersonateLoginUrl"}},
		{"https://app.example.com/Auth/Callback", "", []string{"RedirectURL has upper-case letters", "register=https://app.example.com/Auth/Callback"}},
		{"https://App.example.com/callback", "", []string{"RedirectURL has upper-case letters"}},
		{"https://app.example.com/callback", "https://app.example.com/Signed-Out/", []string{
			"PostLogoutRedirectURL ends with '/' and has upper-case letters", "register=https://app.example.com/Signed-Out/", "ImpersonateLogoutUrl"}},
	} {
		logs := &testutil.SyncBuffer{}
		c, err := authcode.New(authcode.Config{Authority: "https://demodb.my.erp.net", ClientID: "com.example/web",
			RedirectURL: tc.redirect, PostLogoutRedirectURL: tc.postLogout, Keys: [][]byte{make([]byte, 32)},
			Logger: slog.New(slog.NewTextHandler(logs, nil))})
		require.NoError(t, err)
		c.Close()
		out := logs.String()
		if len(tc.warnings) == 0 {
			assert.NotContains(t, out, "byte for byte", tc.redirect+" "+tc.postLogout)
		}
		for _, w := range tc.warnings {
			assert.Contains(t, out, w)
		}
	}
}

// PostLogoutRedirectURL follows RedirectURL's rule: https, except on
// loopback hosts.
func TestPostLogoutRedirectURLNeedsHTTPS(t *testing.T) {
	base := authcode.Config{Authority: "https://demodb.my.erp.net", ClientID: "com.example/web", RedirectURL: "https://app.example.com/callback"}
	for raw, ok := range map[string]bool{
		"http://app.example.com/bye":  false,
		"https://app.example.com/bye": true,
		"http://127.0.0.1:8080/bye":   true,
		"http://[::1]:8080/bye":       true,
		"http://localhost:8080/bye":   true,
	} {
		cfg := base
		cfg.PostLogoutRedirectURL = raw
		c, err := authcode.New(cfg)
		if ok {
			require.NoError(t, err, raw)
			c.Close()
			continue
		}
		var ce *auth.ConfigError
		require.ErrorAs(t, err, &ce, raw)
		assert.Equal(t, "PostLogoutRedirectURL", ce.Field)
		assert.Contains(t, ce.Reason, "https")
	}
}
