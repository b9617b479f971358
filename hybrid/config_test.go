package hybrid_test

import (
	"errors"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/erpnetgo/auth/authcode"
	"github.com/erpnetgo/auth/clientcreds"
	"github.com/erpnetgo/auth/hybrid"
	"github.com/erpnetgo/auth/internal/devserver"
)

func TestConfigErrorsNameTheFieldAndHideSecrets(t *testing.T) {
	const secret = "portal-s3cret-never-print"
	valid := func() hybrid.Config {
		return hybrid.Config{
			Authority:    "https://demodb.my.erp.net",
			ClientID:     "com.example/portal",
			ClientSecret: secret,
			RedirectURL:  "https://portal.example.com/callback",
		}
	}
	app, err := hybrid.New(valid())
	require.NoError(t, err)
	require.NoError(t, app.Close())

	cases := []struct {
		field string
		edit  func(*hybrid.Config)
	}{
		{"Authority", func(c *hybrid.Config) { c.Authority = "" }},
		{"Authority", func(c *hybrid.Config) { c.Authority = "http://demodb.my.erp.net" }},
		{"ClientID", func(c *hybrid.Config) { c.ClientID = "" }},
		{"ClientSecret", func(c *hybrid.Config) { c.ClientSecret = "" }},
		{"ClientSecret", func(c *hybrid.Config) { c.ClientSecret = secret + "\n" }},
		{"RedirectURL", func(c *hybrid.Config) { c.RedirectURL = "" }},
		{"RedirectURL", func(c *hybrid.Config) { c.RedirectURL = "http://portal.example.com/callback" }},
		{"PostLogoutRedirectURL", func(c *hybrid.Config) { c.PostLogoutRedirectURL = "/bye" }},
		{"UserScopes", func(c *hybrid.Config) { c.UserScopes = []string{"read update"} }},
		{"ServiceScopes", func(c *hybrid.Config) { c.ServiceScopes = []string{"read", "openid"} }},
		{"ServiceScopes", func(c *hybrid.Config) { c.ServiceScopes = []string{"offline_access"} }},
		{"ServiceScopes[1]", func(c *hybrid.Config) { c.ServiceScopes = []string{"read", "up date"} }},
		{"CookieKeys", func(c *hybrid.Config) { c.CookieKeys = [][]byte{[]byte(secret)} }},
		{"Users.RedirectURL", func(c *hybrid.Config) { c.Users = &authcode.Config{RedirectURL: "ftp://x/callback"} }},
		{"Users.RedirectURL", func(c *hybrid.Config) { c.RedirectURL = ""; c.Users = &authcode.Config{} }},
		{"Users.SessionTTL", func(c *hybrid.Config) { c.Users = &authcode.Config{SessionTTL: -1} }},
		{"Users.Scopes", func(c *hybrid.Config) { c.Users = &authcode.Config{Scopes: []string{""}} }},
		{"Users.ClientSecret", func(c *hybrid.Config) { c.Users = &authcode.Config{ClientSecret: secret + "\r\n"} }},
		{"Service.Scopes", func(c *hybrid.Config) { c.Service = &clientcreds.Config{Scopes: []string{"profile"}} }},
		{"Service.ClientSecret", func(c *hybrid.Config) { c.Service = &clientcreds.Config{ClientSecret: secret + "\r"} }},
		{"Service.RefreshWindow", func(c *hybrid.Config) { c.Service = &clientcreds.Config{RefreshWindow: -1} }},
		{"ClientSecret", func(c *hybrid.Config) {
			// The user side may be public; the service side may not.
			c.ClientSecret = ""
			c.Users = &authcode.Config{}
		}},
	}
	for _, c := range cases {
		cfg := valid()
		c.edit(&cfg)
		app, err := hybrid.New(cfg)
		if !assert.Error(t, err, c.field) {
			app.Close()
			continue
		}
		assert.ErrorIs(t, err, hybrid.ErrMisconfigured, c.field)
		var ce *hybrid.ConfigError
		if assert.True(t, errors.As(err, &ce), "%s: %T %v", c.field, err, err) {
			assert.Equal(t, c.field, ce.Field, err.Error())
		}
		assert.NotContains(t, err.Error(), secret)
	}
}

func TestNewDoesNoNetworkIO(t *testing.T) {
	idp := devserver.StartTest(t, devserver.Demo())
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	app, err := hybrid.New(hybrid.Config{
		Authority: idp.URL(), ClientID: devserver.DemoWebAppID, ClientSecret: devserver.DemoWebAppSecret,
		RedirectURL: devserver.DemoWebAppRedirectURI, HTTPClient: &http.Client{Transport: tr},
	})
	require.NoError(t, err)
	_ = app.Service()
	require.NoError(t, app.Close())
	for _, ep := range []devserver.Endpoint{devserver.Discovery, devserver.JWKS, devserver.Authorize, devserver.Token,
		devserver.Userinfo, devserver.Revocation, devserver.Introspect, devserver.EndSession,
		devserver.AutoDiscovery, devserver.DomainAPI, devserver.SignIn} {
		assert.Zero(t, idp.Count(ep), ep.String())
	}
}

// TestSeparateConfigsPerSide: Users and Service override the shared
// fields; here the service side is another Trusted Application (the demo
// worker), so its calls act as that application's System User.
func TestSeparateConfigsPerSide(t *testing.T) {
	e := newEnv(t, func(c *hybrid.Config) {
		c.Users = &authcode.Config{CookieName: "portal"}
		c.Service = &clientcreds.Config{ClientID: devserver.DemoWorkerID, ClientSecret: devserver.DemoWorkerSecret}
	})
	alice := e.browser()
	alice.signIn(devserver.DemoAlice)
	found := false
	for _, v := range alice.cookieValues() {
		found = found || len(v) > 7 && v[:7] == "portal="
	}
	assert.True(t, found, "Users.CookieName applies")
	assert.NotEmpty(t, e.store.saved(), "the shared Store fills Users.Store")

	r := alice.get(e.srv.URL + "/customers")
	assert.Equal(t, "user:alice", r.header.Get("X-Caller"))
	r = alice.do(http.MethodPost, e.srv.URL+"/import", nil)
	require.NoError(t, r.err)
	assert.Equal(t, "system:"+devserver.DemoWorkerSystemUser, r.header.Get("X-Caller"))
	assert.Equal(t, devserver.DemoWorkerID, e.app.Service().ClientID())

	calls := e.idp.APICalls()
	require.Len(t, calls, 2)
	assert.Equal(t, devserver.DemoWebAppID, calls[0].ClientID)
	assert.Equal(t, devserver.DemoWorkerID, calls[1].ClientID)
	recs := jobRecords(t, e, "import")
	require.Len(t, recs, 2)
	assert.Equal(t, devserver.DemoWorkerID, recs[1]["client_id"])
}
