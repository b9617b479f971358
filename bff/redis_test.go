package bff

import (
	"bytes"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/erpnetgo/auth/authcode"
	"github.com/erpnetgo/auth/authcode/redisstore"
	"github.com/erpnetgo/auth/erpnettest"
	"github.com/erpnetgo/auth/internal/erpnetctl"
	"github.com/erpnetgo/auth/internal/redistest"
)

// Two replicas of the BFF share their users' sessions through
// authcode/redisstore on a real redis-server: a sign-in on one serves
// the other, 20 calls at expiry spread over both redeem the (one-time)
// refresh token once, and a sign-out on one ends the session on both.
func TestReplicasShareSessionsOnRedis(t *testing.T) {
	rds := redistest.Start(t)
	clk := &clock{}
	var handlers [2]atomic.Pointer[http.Handler]
	var sites [2]*httptest.Server
	for i := range sites {
		sites[i] = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			(*handlers[i].Load()).ServeHTTP(rw, r)
		}))
		t.Cleanup(sites[i].Close)
	}
	idp := erpnettest.NewServer(t, erpnettest.Config{Apps: []erpnettest.App{{ID: appID, Secret: appSecret,
		RedirectURIs:   []string{sites[0].URL + "/callback", sites[1].URL + "/callback"},
		PostLogoutURIs: []string{sites[0].URL + "/", sites[1].URL + "/"}}}})
	erpnetctl.Of(idp).AutoSignIn(alice)
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	for i, site := range sites {
		store, err := redisstore.New(redisstore.Config{Addr: rds.Addr(), Keys: [][]byte{bytes.Repeat([]byte{9}, 32)}})
		require.NoError(t, err)
		t.Cleanup(func() { _ = store.Close() })
		ac, err := authcode.New(authcode.Config{
			Authority: idp.URL(), ClientID: appID, ClientSecret: appSecret,
			RedirectURL: site.URL + "/callback", PostLogoutRedirectURL: site.URL + "/",
			Keys: [][]byte{cookieKey}, Store: store, Now: clk.Now,
			HTTPClient: &http.Client{Transport: tr}, Transport: tr,
		})
		require.NoError(t, err)
		t.Cleanup(func() { _ = ac.Close() })
		h, err := New(Config{Client: ac})
		require.NoError(t, err)
		mux := http.NewServeMux()
		mux.Handle("/callback", ac.Callback())
		mux.Handle("/bff/", h)
		var root http.Handler = mux
		handlers[i].Store(&root)
	}

	// One browser: cookies of 127.0.0.1 go to both ports, as they would go
	// to either replica behind one load balancer.
	jar, _ := cookiejar.New(nil)
	btr := &http.Transport{}
	t.Cleanup(btr.CloseIdleConnections)
	hc := &http.Client{Jar: jar, Transport: btr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	w := &world{t: t, app: sites[0], idp: idp}
	b := &browser{w: w, hc: hc}
	require.Equal(t, "/", b.signIn(""))

	u1 := b.get(sites[1].URL + "/bff/user")
	require.Equal(t, http.StatusOK, u1.status, "replica 2 knows the sign-in of replica 1: %s", u1.body)
	assert.Equal(t, alice, u1.json(t)["sub"])
	logout := u1.json(t)["logoutUrl"]
	assert.Equal(t, logout, b.get(sites[0].URL + "/bff/user").json(t)["logoutUrl"], "the sid is the same on every replica")

	clk.off.Add(int64(61 * time.Minute))
	idp.Advance(61 * time.Minute)
	statuses := make(chan int, 20)
	start := make(chan struct{})
	for i := range 20 {
		go func() {
			<-start
			req, _ := http.NewRequest(http.MethodGet, sites[i%2].URL+"/bff/api/Crm_Sales_Customers", nil)
			req.Header.Set("X-CSRF", "1")
			resp, err := hc.Do(req)
			if err != nil {
				statuses <- 0
				return
			}
			resp.Body.Close()
			statuses <- resp.StatusCode
		}()
	}
	close(start)
	for range 20 {
		assert.Equal(t, http.StatusOK, <-statuses)
	}
	assert.Equal(t, 1, erpnetctl.Of(idp).Grants("refresh_token"), "one redemption across both replicas")

	// Sign out on replica 2; replica 1 no longer knows the session.
	stolen := jar.Cookies(mustURL(sites[0].URL))
	require.NotEmpty(t, stolen)
	r := b.do(http.MethodGet, sites[1].URL+logout.(string), nil)
	require.Equal(t, http.StatusSeeOther, r.status, r.body)
	require.True(t, strings.HasPrefix(r.header.Get("Location"), idp.Authority()+"/connect/endsession?"))
	for i, site := range sites {
		u := b.get(site.URL + "/bff/user")
		assert.Equal(t, http.StatusUnauthorized, u.status, "replica %d", i+1)
		assert.Equal(t, "login_required", u.json(t)["error"], "the browser dropped the cookie")
		// A copy of the cookie taken before the sign-out is dead too.
		var cookie []string
		for _, c := range stolen {
			cookie = append(cookie, c.Name+"="+c.Value)
		}
		req, _ := http.NewRequest(http.MethodGet, site.URL+"/bff/user", nil)
		req.Header.Set("X-CSRF", "1")
		req.Header.Set("Cookie", strings.Join(cookie, "; "))
		resp, err := (&http.Client{Transport: btr}).Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "replica %d, stolen cookie", i+1)
	}
}
