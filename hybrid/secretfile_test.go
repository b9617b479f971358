package hybrid_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/erpnetgo/auth"
	"github.com/erpnetgo/auth/authcode"
	"github.com/erpnetgo/auth/clientcreds"
	"github.com/erpnetgo/auth/erpnettest"
	"github.com/erpnetgo/auth/hybrid"
	"github.com/erpnetgo/auth/internal/testutil"
)

// Both sides of an App read ClientSecretFile: the secret the admin stored
// (and the file holds) works for users and for the System User, though the
// demo application's configured secret no longer does.
func TestClientSecretFileServesBothSides(t *testing.T) {
	srv := erpnettest.NewServer(t)
	srv.SetSecret(erpnettest.Demo.WebAppID, "rotated-portal-s3cret")
	mount := testutil.NewSecretMount(t, "rotated-portal-s3cret")
	mux := http.NewServeMux()
	ts := httptest.NewServer(mux)
	t.Cleanup(ts.Close)
	app, err := hybrid.New(hybrid.Config{
		Authority:        srv.URL(),
		ClientID:         erpnettest.Demo.WebAppID,
		ClientSecretFile: mount.Path(),
		RedirectURL:      ts.URL + "/callback",
		Keys:             [][]byte{bytes.Repeat([]byte{3}, 32)},
		ServiceScopes:    []string{"read"},
	})
	require.NoError(t, err)
	t.Cleanup(func() { app.Close() })
	mux.Handle("/signin", app.SignIn())
	mux.Handle("/callback", app.Callback())
	mux.Handle("/both", app.WithUser(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, _ := hybrid.UserFrom(r.Context())
		for _, hc := range []*http.Client{u.UserClient(), app.Service().ServiceClient()} {
			resp, err := hc.Get(srv.DomainAPI() + "Crm_Sales_Customers?$top=1")
			if err != nil {
				http.Error(w, "failed", http.StatusBadGateway)
				return
			}
			resp.Body.Close()
			w.Header().Add("X-Caller", resp.Header.Get("X-Erpnet-Caller"))
		}
	})))
	hc, err := srv.SignIn(ts.URL+"/signin", erpnettest.Demo.Alice)
	require.NoError(t, err)
	resp, err := hc.Get(ts.URL + "/both")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, []string{"user:alice", "system:portal-system"}, resp.Header.Values("X-Caller"))
}

func TestClientSecretFileConfig(t *testing.T) {
	base := hybrid.Config{Authority: "https://demodb.my.erp.net", ClientID: "com.example/portal",
		RedirectURL: "https://portal.example.com/callback", ClientSecretFile: "/run/secrets/erpnet"}
	app, err := hybrid.New(base)
	require.NoError(t, err, "New does not read the file")
	require.NoError(t, app.Close())

	both := base
	both.ClientSecret = "s3cr3t-do-not-print"
	_, err = hybrid.New(both)
	var ce *auth.ConfigError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, "ClientSecretFile", ce.Field)
	assert.NotContains(t, err.Error(), "s3cr3t")

	// With both sides passed in, the field would configure nothing.
	users, err := authcode.New(authcode.Config{Authority: base.Authority, ClientID: base.ClientID, RedirectURL: base.RedirectURL})
	require.NoError(t, err)
	defer users.Close()
	svc, err := clientcreds.New(clientcreds.Config{Authority: base.Authority, ClientID: base.ClientID, ClientSecret: "s"})
	require.NoError(t, err)
	defer svc.Close()
	_, err = hybrid.New(hybrid.Config{Users: users, Service: svc, ClientSecretFile: "/run/secrets/erpnet"})
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, "ClientSecretFile", ce.Field)
}
