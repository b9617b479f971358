package hybrid_test

import (
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/erpnetgo/auth"
	"github.com/erpnetgo/auth/authcode"
	"github.com/erpnetgo/auth/clientcreds"
	"github.com/erpnetgo/auth/erpnettest"
	"github.com/erpnetgo/auth/hybrid"
	"github.com/erpnetgo/auth/internal/erpnetctl"
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
	userClient, err := authcode.New(authcode.Config{Authority: "https://demodb.my.erp.net", ClientID: "com.example/portal",
		RedirectURL: "https://portal.example.com/callback"})
	require.NoError(t, err)
	defer userClient.Close()
	source, err := clientcreds.New(clientcreds.Config{Authority: "https://demodb.my.erp.net", ClientID: "com.example/worker",
		ClientSecret: secret})
	require.NoError(t, err)
	defer source.Close()
	store := newRecStore()

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
		{"UserScopes[0]", func(c *hybrid.Config) { c.UserScopes = []string{"read update"} }},
		{"ServiceScopes[1]", func(c *hybrid.Config) { c.ServiceScopes = []string{"read", "openid"} }},
		{"ServiceScopes[0]", func(c *hybrid.Config) { c.ServiceScopes = []string{"offline_access"} }},
		{"ServiceScopes[1]", func(c *hybrid.Config) { c.ServiceScopes = []string{"read", "up date"} }},
		{"Keys[0]", func(c *hybrid.Config) { c.Keys = [][]byte{[]byte(secret)} }},
		{"DomainAPI", func(c *hybrid.Config) { c.DomainAPI = "ftp://demodb.my.erp.net/api/domain/odata/" }},
		{"AuthStyle", func(c *hybrid.Config) { c.AuthStyle = 7 }},
		// A split set-up passes both sides, and then no field of the simple
		// set-up: one rule, whatever the field.
		{"Service", func(c *hybrid.Config) { *c = hybrid.Config{Users: userClient} }},
		{"Users", func(c *hybrid.Config) { *c = hybrid.Config{Service: source} }},
		{"Authority", func(c *hybrid.Config) { c.Users, c.Service = userClient, source }},
		{"ClientID", func(c *hybrid.Config) { *c = hybrid.Config{ClientID: "x", Users: userClient, Service: source} }},
		{"ClientSecret", func(c *hybrid.Config) { *c = hybrid.Config{ClientSecret: secret, Users: userClient, Service: source} }},
		{"Store", func(c *hybrid.Config) { *c = hybrid.Config{Store: store, Users: userClient, Service: source} }},
		{"Keys", func(c *hybrid.Config) {
			*c = hybrid.Config{Keys: [][]byte{make([]byte, 32)}, Users: userClient, Service: source}
		}},
		{"ServiceScopes", func(c *hybrid.Config) {
			*c = hybrid.Config{ServiceScopes: []string{"read"}, Users: userClient, Service: source}
		}},
		{"Retry", func(c *hybrid.Config) {
			*c = hybrid.Config{Retry: auth.Retry{Attempts: 2}, Users: userClient, Service: source}
		}},
		{"LogUsers", func(c *hybrid.Config) { *c = hybrid.Config{LogUsers: true, Users: userClient, Service: source} }},
		// The user side may be public; the service side may not.
		{"ClientSecret", func(c *hybrid.Config) { c.ClientSecret = "" }},
	}
	// The split set-up itself, with the App's own loggers.
	app, err = hybrid.New(hybrid.Config{Users: userClient, Service: source, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	assert.Equal(t, "com.example/worker", app.Service().ClientID(), "the client_id of the Source passed in")
	require.NoError(t, app.Close())
	for _, c := range cases {
		cfg := valid()
		c.edit(&cfg)
		app, err := hybrid.New(cfg)
		if !assert.Error(t, err, c.field) {
			app.Close()
			continue
		}
		assert.ErrorIs(t, err, auth.ErrMisconfigured, c.field)
		var ce *auth.ConfigError
		if assert.True(t, errors.As(err, &ce), "%s: %T %v", c.field, err, err) {
			assert.Equal(t, c.field, ce.Field, err.Error())
		}
		assert.NotContains(t, err.Error(), secret)
	}
}

func TestNewDoesNoNetworkIO(t *testing.T) {
	idp := erpnettest.NewServer(t)
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	app, err := hybrid.New(hybrid.Config{
		Authority: idp.URL(), ClientID: erpnettest.Demo.WebAppID, ClientSecret: erpnettest.Demo.WebAppSecret,
		RedirectURL: "http://127.0.0.1:8080/callback", HTTPClient: &http.Client{Transport: tr},
	})
	require.NoError(t, err)
	_ = app.Service()
	require.NoError(t, app.Close())
	for _, ep := range []string{"discovery", "jwks", "authorize", "token", "userinfo", "revocation", "introspect",
		"endsession", "autodiscovery", "domainapi", "signin"} {
		assert.Zero(t, idp.Requests(ep), ep)
	}
}

// TestSuppliedSides: a split set-up with two Trusted Applications; the
// user side (with a cookie name only authcode.Config offers) and the
// service side (the demo worker) are built by the caller and used as they
// are; App.Close leaves them open.
func TestSuppliedSides(t *testing.T) {
	svcID, svcSecret, svcUser := erpnettest.Demo.WorkerID, erpnettest.Demo.WorkerSecret, "worker-system"
	var users *authcode.Client
	var source *clientcreds.Source
	e := newEnv(t, func(c *hybrid.Config) {
		var err error
		users, err = authcode.New(authcode.Config{
			Authority: c.Authority, ClientID: c.ClientID, ClientSecret: c.ClientSecret,
			RedirectURL: c.RedirectURL, PostLogoutRedirectURL: c.PostLogoutRedirectURL,
			Store: c.Store, Keys: c.Keys, HTTPClient: c.HTTPClient, Transport: c.Transport,
			CookieName: "portal",
		})
		require.NoError(t, err)
		t.Cleanup(func() { require.NoError(t, users.Close()) })
		source, err = clientcreds.New(clientcreds.Config{
			Authority: c.Authority, ClientID: svcID, ClientSecret: svcSecret,
			Scopes: c.ServiceScopes, HTTPClient: c.HTTPClient, Transport: c.Transport,
		})
		require.NoError(t, err)
		t.Cleanup(func() { require.NoError(t, source.Close()) })
		*c = hybrid.Config{Users: users, Service: source, Logger: c.Logger, AuditLogger: c.AuditLogger}
	})
	alice := e.browser()
	alice.signIn(erpnettest.Demo.Alice)
	found := false
	for _, v := range alice.cookieValues() {
		found = found || strings.HasPrefix(v, "portal=")
	}
	assert.True(t, found, "the supplied authcode.Client's CookieName applies")
	assert.NotEmpty(t, e.store.saved())

	r := alice.get(e.srv.URL + "/customers")
	assert.Equal(t, "user:alice", r.header.Get("X-Caller"))
	r = alice.do(http.MethodPost, e.srv.URL+"/import", nil)
	require.NoError(t, r.err)
	assert.Equal(t, "system:"+svcUser, r.header.Get("X-Caller"))
	assert.Equal(t, svcID, e.app.Service().ClientID())

	calls := erpnetctl.Of(e.idp).APICalls()
	require.Len(t, calls, 2)
	assert.Equal(t, erpnettest.Demo.WebAppID, calls[0].ClientID)
	assert.Equal(t, svcID, calls[1].ClientID)
	recs := jobRecords(t, e, "import")
	require.Len(t, recs, 2)
	assert.Equal(t, svcID, recs[1]["client_id"])

	// The guard learns the service token from the supplied Source.
	tok, err := source.Token(t.Context())
	require.NoError(t, err)
	r = alice.get(e.srv.URL + "/leak/body")
	assert.Equal(t, http.StatusInternalServerError, r.status)
	assert.NotContains(t, r.body, tok.AccessToken)

	// Close leaves what the App did not create open.
	s := alice.sessionOf()
	require.NoError(t, e.app.Close())
	caller, _, err := callAPI(t.Context(), users.UserClient(t.Context(), s), e.apiURL())
	require.NoError(t, err)
	assert.Equal(t, "user:alice", caller)
	caller, _, err = callAPI(t.Context(), source.Client(t.Context()), e.apiURL())
	require.NoError(t, err)
	assert.Equal(t, "system:"+svcUser, caller)
}
