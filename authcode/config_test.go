package authcode

import (
	"bytes"
	"errors"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/erpnetgo/auth"
)

func TestNewValidation(t *testing.T) {
	const secret = "super-secret-value-123"
	valid := func() Config {
		return Config{Authority: "https://demodb.my.erp.net", ClientID: "com.example/app", ClientSecret: secret,
			RedirectURL: "https://app.example.com/callback", Keys: [][]byte{make([]byte, 32)}}
	}
	cases := []struct {
		field string
		edit  func(*Config)
	}{
		{"Authority", func(c *Config) { c.Authority = "" }},
		{"Authority", func(c *Config) { c.Authority = "ftp://demodb.my.erp.net" }},
		{"Authority", func(c *Config) { c.Authority = "http://demodb.my.erp.net" }},
		{"Authority", func(c *Config) { c.Authority = "https://demodb.my.erp.net/id?x=" + secret }},
		{"ClientID", func(c *Config) { c.ClientID = " " }},
		{"ClientSecret", func(c *Config) { c.ClientSecret = secret + "\n" }},
		{"RedirectURL", func(c *Config) { c.RedirectURL = "/callback" }},
		{"RedirectURL", func(c *Config) { c.RedirectURL = "http://app.example.com/callback" }},
		{"RedirectURL", func(c *Config) { c.RedirectURL = "https://app.example.com/callback#" + secret }},
		{"PostLogoutRedirectURL", func(c *Config) { c.PostLogoutRedirectURL = "app.example.com" }},
		{"Scopes[1]", func(c *Config) { c.Scopes = []string{"read", "openid read"} }},
		{"SessionTTL", func(c *Config) { c.SessionTTL = -time.Second }},
		{"RefreshWindow", func(c *Config) { c.RefreshWindow = -time.Second }},
		{"MaxLiveSessions", func(c *Config) { c.MaxLiveSessions = -1 }},
		{"Keys[0]", func(c *Config) { c.Keys = [][]byte{[]byte(secret)} }},
		{"CookieName", func(c *Config) { c.CookieName = "bad name;" }},
		{"SignInPath", func(c *Config) { c.SignInPath = "//evil.example" }},
		{"DefaultReturnPath", func(c *Config) { c.DefaultReturnPath = "https://evil.example" }},
		{"AuthStyle", func(c *Config) { c.AuthStyle = 42 }},
		{"IDTokenSigningAlgs", func(c *Config) { c.IDTokenSigningAlgs = []string{"none"} }},
		{"IDTokenSigningAlgs", func(c *Config) { c.IDTokenSigningAlgs = []string{"HS256"} }},
	}
	for _, tc := range cases {
		cfg := valid()
		tc.edit(&cfg)
		c, err := New(cfg)
		require.Error(t, err, tc.field)
		assert.Nil(t, c)
		var ce *auth.ConfigError
		require.True(t, errors.As(err, &ce), "%s: %T", tc.field, err)
		assert.Equal(t, tc.field, ce.Field)
		assert.ErrorIs(t, err, auth.ErrMisconfigured)
		assert.NotContains(t, err.Error(), secret)
	}
	c, err := New(valid())
	require.NoError(t, err)
	require.NoError(t, c.Close())
}

func TestNewDefaultsAndNoIO(t *testing.T) {
	var logs bytes.Buffer
	// Nothing listens on port 1: New must not try.
	c, err := New(Config{Authority: "http://127.0.0.1:1", ClientID: "x", RedirectURL: "http://127.0.0.1:2/cb",
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	require.NoError(t, err)
	defer c.Close()
	assert.Equal(t, "openid profile offline_access read update", c.scope)
	assert.Equal(t, defaultSessionTTL, c.cfg.SessionTTL)
	assert.Equal(t, []string{"RS256"}, c.cfg.IDTokenSigningAlgs)
	_, locks := c.sessions.Store().(RefreshLocker)
	assert.True(t, locks, "the default Store is the memory store, a RefreshLocker for this process")
	assert.Contains(t, logs.String(), "no Keys configured")
	assert.Equal(t, defaultSignInPath, c.cfg.SignInPath)

	// Without RedirectURL (a native app) no cookie is used, so no warning,
	// and the web handlers explain themselves.
	logs.Reset()
	c2, err := New(Config{Authority: "http://127.0.0.1:1", ClientID: "x", Scopes: []string{"read"}, LegacyDomainAPIScope: true,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	require.NoError(t, err)
	defer c2.Close()
	assert.Equal(t, "openid read DomainApi", c2.scope)
	assert.Empty(t, logs.String())
	w := newRecorder()
	c2.SignIn().ServeHTTP(w, newRequest(http.MethodGet, "/signin", nil))
	assert.Equal(t, http.StatusNotImplemented, w.Code)
	// The page says what happened in plain words, with a reference; the
	// technical cause (naming the field) goes to the log under the same
	// reference.
	assert.Contains(t, w.Body.String(), "Sign-in is not set up correctly")
	ref := pageReference(t, w.Body.String())
	assert.NotContains(t, w.Body.String(), "RedirectURL")
	assert.Contains(t, logs.String(), "RedirectURL")
	assert.Contains(t, logs.String(), ref)
}

func TestSafeReturnPath(t *testing.T) {
	for _, p := range []string{"//x", "/\\x", "https://x", "/%2f%2fx", "/%252f%252fx", "x", "/\x00", "/%", "/a\\b"} {
		_, ok := safeReturnPath(p)
		assert.False(t, ok, "%q", p)
	}
	for _, p := range []string{"/", "/a?b=c", "/a%20b", "/a/./b"} {
		_, ok := safeReturnPath(p)
		assert.True(t, ok, "%q", p)
	}
}
