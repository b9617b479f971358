package bff_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/erpnetgo/auth"
	"github.com/erpnetgo/auth/bff"
	"github.com/erpnetgo/auth/erpnettest"
	"github.com/erpnetgo/auth/instances"
)

// One BFF serves the users of two ERP.net instances (Config.Instances):
// each user signs in at their own instance through /bff/login, /bff/user
// shows them, /bff/api/ reaches their own instance's Domain API only, and
// a sign-out ends the session at its own instance.
func TestBFFServesManyInstances(t *testing.T) {
	const vendorID = "com.example/vendor"
	site := httptest.NewUnstartedServer(nil)
	base := "http://" + site.Listener.Addr().String()
	newInstance := func(name string) *erpnettest.Server {
		return erpnettest.NewServer(t, erpnettest.Config{Apps: []erpnettest.App{{
			ID: vendorID, Secret: name + "-secret", SystemUser: name + "-system",
			RedirectURIs: []string{base + "/callback"}, PostLogoutURIs: []string{base + "/"},
		}}})
	}
	acme, globex := newInstance("acme"), newInstance("globex")
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	reg, err := instances.New(instances.Config{
		ClientID: vendorID, RedirectURL: base + "/callback", PostLogoutRedirectURL: base + "/",
		Keys:       [][]byte{[]byte("0123456789abcdef0123456789abcdef")},
		HTTPClient: &http.Client{Transport: tr}, Transport: tr,
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = reg.Close() })
	ctx := context.Background()
	require.NoError(t, reg.Add(ctx, acme.URL(), "acme-secret"))
	require.NoError(t, reg.Add(ctx, globex.URL(), "globex-secret"))

	_, err = bff.New(bff.Config{Client: nil, Instances: nil})
	require.Error(t, err, "neither Client nor Instances")
	h, err := bff.New(bff.Config{Instances: reg, Claims: []string{"email"}})
	require.NoError(t, err)
	mux := http.NewServeMux()
	mux.Handle("/callback", reg.Callback())
	mux.Handle("/bff/", h)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "the SPA") })
	site.Config.Handler = mux
	site.Start()
	t.Cleanup(site.Close)

	call := func(b *http.Client, method, path string) (int, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, nil)
		req.Header.Set("X-CSRF", "1")
		resp, err := b.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		var v map[string]any
		body, _ := io.ReadAll(resp.Body)
		_ = json.Unmarshal(body, &v)
		return resp.StatusCode, v
	}
	signIn := func(at *erpnettest.Server, user string) *http.Client {
		t.Helper()
		b, err := at.SignIn(base+"/bff/login?returnUrl=%2F&instance="+url.QueryEscape(at.URL()), user)
		require.NoError(t, err)
		return b
	}

	alice := signIn(acme, erpnettest.Demo.Alice)
	bob := signIn(globex, erpnettest.Demo.Bob)
	status, u := call(alice, http.MethodGet, "/bff/user")
	require.Equal(t, http.StatusOK, status, u)
	assert.Equal(t, erpnettest.Demo.Alice, u["sub"])
	status, u = call(bob, http.MethodGet, "/bff/user")
	require.Equal(t, http.StatusOK, status, u)
	assert.Equal(t, erpnettest.Demo.Bob, u["sub"])
	logoutURL, _ := u["logoutUrl"].(string)
	require.NotEmpty(t, logoutURL)

	// Each user's API calls reach their own instance only.
	a0, g0 := acme.Requests("domainapi"), globex.Requests("domainapi")
	status, _ = call(alice, http.MethodGet, "/bff/api/Crm_Sales_Customers?$top=1")
	require.Equal(t, http.StatusOK, status)
	assert.Equal(t, a0+1, acme.Requests("domainapi"))
	assert.Equal(t, g0, globex.Requests("domainapi"))
	status, _ = call(bob, http.MethodGet, "/bff/api/Crm_Sales_Customers?$top=1")
	require.Equal(t, http.StatusOK, status)
	assert.Equal(t, a0+1, acme.Requests("domainapi"))
	assert.Equal(t, g0+1, globex.Requests("domainapi"))
	status, _ = call(alice, http.MethodGet, "/bff/api/Crm_Sales_Customers")
	require.Equal(t, http.StatusOK, status)
	assert.Equal(t, 1, acme.SessionsOpened(), "one ERP.net API session for alice's calls")

	// Without the anti-forgery header nothing is forwarded.
	req, _ := http.NewRequest(http.MethodGet, base+"/bff/api/Crm_Sales_Customers", nil)
	resp, err := alice.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	assert.Equal(t, a0+2, acme.Requests("domainapi"))

	// bob signs out: his session at globex ends, alice's at acme does not.
	noRedirect := *bob
	noRedirect.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err = noRedirect.Get(base + logoutURL)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	assert.True(t, strings.HasPrefix(resp.Header.Get("Location"), globex.Authority()+"/connect/endsession"), resp.Header.Get("Location"))
	status, u = call(bob, http.MethodGet, "/bff/user")
	assert.Equal(t, http.StatusUnauthorized, status, u)
	status, _ = call(alice, http.MethodGet, "/bff/user")
	assert.Equal(t, http.StatusOK, status)
}

// /bff/login hands the registry's Resolve the whole sign-in request: an
// app whose Resolve reads its own parameter (here tenant) signs users in
// at the instance it names.
func TestLoginReachesResolve(t *testing.T) {
	const vendorID = "com.example/vendor"
	events := make(chan auth.Event, 100)
	acme := erpnettest.NewServer(t, erpnettest.Config{Apps: []erpnettest.App{{
		ID: vendorID, Secret: "acme-secret", RedirectURIs: []string{"http://127.0.0.1/callback"},
	}}})
	reg, err := instances.New(instances.Config{
		ClientID: vendorID, RedirectURL: "http://127.0.0.1/callback",
		Keys:  [][]byte{[]byte("0123456789abcdef0123456789abcdef")},
		Hooks: &auth.Hooks{Event: func(_ context.Context, e auth.Event) { events <- e }},
		Resolve: func(r *http.Request) (string, error) {
			if r.URL.Query().Get("tenant") == "acme" {
				return acme.URL(), nil
			}
			return "", instances.ErrUnknownInstance
		},
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = reg.Close() })
	require.NoError(t, reg.Add(context.Background(), acme.URL(), "acme-secret"))
	h, err := bff.New(bff.Config{Instances: reg})
	require.NoError(t, err)

	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "http://127.0.0.1/bff/login?returnUrl=%2Forders&tenant=acme", nil))
	require.Equal(t, http.StatusFound, rec.Code, rec.Body.String())
	loc := rec.Header().Get("Location")
	assert.True(t, strings.HasPrefix(loc, acme.URL()+"/"), "sign-in sent to %q, not to acme", loc)

	// A refusal before any instance is known reports no made-up instance.
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "http://127.0.0.1/bff/user", nil)) // no X-CSRF
	require.Equal(t, http.StatusUnauthorized, rec.Code)
	refused := 0
	for len(events) > 0 {
		if e := <-events; e.Name == "bff.refused" {
			refused++
			assert.Empty(t, e.Authority, "bff.refused names an instance")
		}
	}
	assert.Equal(t, 1, refused)
}
