package main

import (
	"context"
	"encoding/base64"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/erpnetgo/auth/erpnettest"
	"github.com/erpnetgo/auth/internal/redistest" // a redis-server of its own; erpnettest has no Redis
)

// TestWebAppReplicasShareSessionsInRedis follows the two-replica recipe in
// the program's doc comment: one Redis, one identity server for both
// replicas (erpnettest here, as examples/devserver there), the same ERPNET_*
// settings. A user signed in through replica A is served by replica B
// without a second sign-in; signed out through B, the session is gone on A
// too, even for a cookie kept from before (another tab), and the identity
// server's session has ended (the next visit meets its form).
func TestWebAppReplicasShareSessionsInRedis(t *testing.T) {
	rs := redistest.Start(t)
	old := *redisAddr
	*redisAddr = rs.Addr()
	t.Cleanup(func() { *redisAddr = old })

	idp := erpnettest.NewServer(t)
	t.Setenv("ERPNET_AUTHORITY", idp.URL())
	t.Setenv("ERPNET_CLIENT_ID", erpnettest.Demo.WebAppID)
	t.Setenv("ERPNET_CLIENT_SECRET", erpnettest.Demo.WebAppSecret)
	t.Setenv("ERPNET_REDIRECT_URL", "") // each replica's own /callback
	t.Setenv("ERPNET_POST_LOGOUT_URL", "")
	t.Setenv("ERPNET_DOMAIN_API", "")
	t.Setenv("ERPNET_COOKIE_KEY", base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef")))
	t.Setenv("ERPNET_SESSION_KEY", "") // derived from the cookie key

	ctx, cancel := context.WithCancel(context.Background())
	const replicas = 2
	sites := make([]string, replicas)
	done := make(chan error, replicas)
	running := 0
	defer func() {
		cancel()
		for range running {
			if err := <-done; err != nil {
				t.Error(err)
			}
		}
	}()
	for i := range replicas {
		ready := make(chan string, 1)
		running++
		go func() {
			// Port 0: the demo web application accepts any 127.0.0.1 port.
			done <- run(ctx, "127.0.0.1:0", slog.New(slog.DiscardHandler), func(site string, idp *erpnettest.Server) {
				if idp != nil {
					t.Errorf("replica %d started an identity server of its own", i)
				}
				ready <- site
			})
		}()
		select {
		case sites[i] = <-ready:
		case err := <-done:
			running--
			t.Fatal(err)
		}
	}

	// A browser: one cookie jar for 127.0.0.1, whose cookies go to both
	// replicas' ports (a load balancer in front of them would do the same).
	browser, err := idp.SignIn(sites[0]+"/customers", erpnettest.Demo.Alice)
	if err != nil {
		t.Fatal(err)
	}
	jar := browser.Jar
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	get := func(u string) string {
		t.Helper()
		resp, err := browser.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %s\n%s", u, resp.Status, b)
		}
		return string(b)
	}
	// Signed in through replica 0.
	if page := get(sites[0] + "/customers"); !strings.Contains(page, "user:alice") {
		t.Fatalf("replica 0 customers page:\n%s", page)
	}
	signIns := idp.Requests("authorize")
	// Replica 1 knows the user from Redis: no second sign-in.
	if page := get(sites[1] + "/customers"); !strings.Contains(page, "user:alice") || !strings.Contains(page, "Alice Anderson") {
		t.Fatalf("replica 1 does not share the session:\n%s", page)
	}
	if n := idp.Requests("authorize"); n != signIns {
		t.Fatalf("replica 1 sent the browser to sign in again")
	}
	// An hour later the access token has expired: replica 1 redeems the
	// refresh token once and saves the rotated one in Redis, where replica 0
	// finds it (a refresh token is one-time: had replica 0 kept the old one,
	// its refresh would fail and the user would be signed out).
	idp.Advance(61 * time.Minute)
	tokens := idp.Requests("token")
	if page := get(sites[1] + "/customers"); !strings.Contains(page, "user:alice") {
		t.Fatalf("replica 1 after the refresh:\n%s", page)
	}
	if page := get(sites[0] + "/customers"); !strings.Contains(page, "user:alice") {
		t.Fatalf("replica 0 after replica 1's refresh:\n%s", page)
	}
	if n := idp.Requests("token") - tokens; n != 1 {
		t.Fatalf("token requests for one expired session on two replicas = %d, want 1 refresh", n)
	}
	// The session in Redis is sealed.
	keys, err := rs.Do("KEYS", "*")
	if err != nil || !strings.Contains(keys, "erpnet:authcode:") {
		t.Fatalf("no session in Redis: %q %v", keys, err)
	}
	for _, k := range strings.Split(keys, "\n") {
		if v, _ := rs.Do("GET", k); strings.Contains(v, "eyJ") || strings.Contains(v, "alice") {
			t.Fatalf("Redis holds %s in clear", k)
		}
	}
	// Sign out through replica 1: the session is gone from Redis, so
	// replica 0 refuses even the old cookie (say, from another tab).
	u0, _ := url.Parse(sites[0])
	oldCookies := jar.Cookies(u0)
	resp, err := browser.PostForm(sites[1]+"/signout", url.Values{})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	req, _ := http.NewRequest(http.MethodGet, sites[0]+"/", nil)
	for _, c := range oldCookies {
		req.AddCookie(c)
	}
	resp, err = tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if len(oldCookies) == 0 || strings.Contains(string(b), "Sign out") || !strings.Contains(string(b), "Sign in") {
		t.Fatalf("replica 0 still knows the signed-out session (%d cookies):\n%s", len(oldCookies), b)
	}
	// Sign-out on replica 1 ended the identity server's session too: the
	// same browser on replica 0 meets the sign-in form.
	if page := get(sites[0] + "/customers"); !strings.Contains(page, `action="/id/account/login"`) {
		t.Fatalf("after sign-out on replica 1, replica 0 did not lead to the sign-in form:\n%s", page)
	}
}
