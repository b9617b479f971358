package bff_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/erpnetgo/auth"
	"github.com/erpnetgo/auth/authcode"
	"github.com/erpnetgo/auth/bff"
	"github.com/erpnetgo/auth/clientcreds"
	"github.com/erpnetgo/auth/erpnettest"
)

// When every ERP.net license of the instance is in use, an API call
// through the BFF is tried once more, then answered 503 license_exhausted
// in JSON the SPA can show in plain words; no token reaches the browser.
func TestLicenseExhaustedThroughTheBFF(t *testing.T) {
	srv := erpnettest.NewServer(t, erpnettest.Config{LicenseCount: 1})
	// A worker holds the one license.
	worker, err := clientcreds.New(clientcreds.Config{Authority: srv.URL(), ClientID: erpnettest.Demo.WorkerID,
		ClientSecret: erpnettest.Demo.WorkerSecret})
	require.NoError(t, err)
	t.Cleanup(func() { worker.Close() })
	resp, err := worker.Client(context.Background()).Get(srv.DomainAPI() + "Crm_Sales_Customers")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)

	site := httptest.NewUnstartedServer(nil)
	base := "http://" + site.Listener.Addr().String()
	ac, err := authcode.New(authcode.Config{Authority: srv.URL(), ClientID: erpnettest.Demo.WebAppID,
		ClientSecret: erpnettest.Demo.WebAppSecret, RedirectURL: base + "/callback",
		Retry: auth.Retry{Base: time.Millisecond, Cap: time.Millisecond}})
	require.NoError(t, err)
	t.Cleanup(func() { ac.Close() })
	h, err := bff.New(bff.Config{Client: ac})
	require.NoError(t, err)
	mux := http.NewServeMux()
	mux.Handle("/callback", ac.Callback())
	mux.Handle("/bff/", h)
	site.Config.Handler = mux
	site.Start()
	t.Cleanup(site.Close)

	b, err := srv.SignIn(base+"/bff/login", erpnettest.Demo.Alice)
	require.NoError(t, err)
	before := srv.Requests("domainapi")
	req, _ := http.NewRequest(http.MethodGet, base+"/bff/api/Crm_Sales_Customers", nil)
	req.Header.Set("X-CSRF", "1")
	resp, err = b.Do(req)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, "%s", body)
	var e map[string]string
	require.NoError(t, json.Unmarshal(body, &e))
	assert.Equal(t, "license_exhausted", e["error"])
	assert.Contains(t, e["error_description"], "All ERP.net licenses of this instance are in use")
	assert.Equal(t, before+2, srv.Requests("domainapi"), "one call and one delayed retry, no loop")
	assert.Equal(t, 1, srv.LicensesInUse())
}
