package main

import (
	"context"
	"encoding/base64"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/erpnetgo/auth/internal/devserver"
	"github.com/erpnetgo/auth/internal/redistest"
)

// Two replicas run with -redis share the user's sign-in: signed in through
// one, served by the other, signed out through the other.
func TestWebAppReplicasShareSessionsInRedis(t *testing.T) {
	rs := redistest.Start(t)
	old := *redisAddr
	*redisAddr = rs.Addr()
	t.Cleanup(func() { *redisAddr = old })

	addrs := []string{freeAddr(t), freeAddr(t)}
	dcfg := devserver.Demo()
	for i := range dcfg.Apps {
		if dcfg.Apps[i].ApplicationURI == devserver.DemoWebAppID {
			for _, a := range addrs {
				dcfg.Apps[i].RedirectURIs = append(dcfg.Apps[i].RedirectURIs, "http://"+a+"/callback")
				dcfg.Apps[i].PostLogoutRedirectURIs = append(dcfg.Apps[i].PostLogoutRedirectURIs, "http://"+a+"/")
			}
		}
	}
	idp := devserver.StartTest(t, dcfg)
	idp.SetAutoSignIn(devserver.DemoAlice)
	t.Setenv("ERPNET_AUTHORITY", idp.URL())
	t.Setenv("ERPNET_CLIENT_ID", devserver.DemoWebAppID)
	t.Setenv("ERPNET_CLIENT_SECRET", devserver.DemoWebAppSecret)
	t.Setenv("ERPNET_REDIRECT_URL", "")
	t.Setenv("ERPNET_POST_LOGOUT_URL", "")
	t.Setenv("ERPNET_DOMAIN_API", "")
	t.Setenv("ERPNET_COOKIE_KEY", base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef")))
	t.Setenv("ERPNET_SESSION_KEY", "") // derived from the cookie key

	ctx, cancel := context.WithCancel(context.Background())
	sites := make([]string, len(addrs))
	done := make(chan error, len(addrs))
	for i, a := range addrs {
		ready := make(chan string, 1)
		go func() {
			done <- run(ctx, a, slog.New(slog.DiscardHandler), func(site string, _ *devserver.Server) { ready <- site })
		}()
		select {
		case sites[i] = <-ready:
		case err := <-done:
			t.Fatal(err)
		}
	}
	defer func() {
		cancel()
		for range addrs {
			if err := <-done; err != nil {
				t.Error(err)
			}
		}
	}()

	jar, _ := cookiejar.New(nil) // cookies are per host, not per port: both replicas get them
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	browser := &http.Client{Jar: jar, Timeout: 10 * time.Second, Transport: roundTripper(func(r *http.Request) (*http.Response, error) {
		r = r.Clone(r.Context())
		r.Header.Set("Accept", "text/html")
		return tr.RoundTrip(r)
	})}
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

	// Sign in through replica 0.
	if page := get(sites[0] + "/customers"); !strings.Contains(page, "user:alice") {
		t.Fatalf("replica 0 customers page:\n%s", page)
	}
	signIns := idp.Count(devserver.Authorize)
	// Replica 1 knows the user from Redis: no second sign-in.
	if page := get(sites[1] + "/customers"); !strings.Contains(page, "user:alice") || !strings.Contains(page, "Sign out") {
		t.Fatalf("replica 1 does not share the session:\n%s", page)
	}
	if n := idp.Count(devserver.Authorize); n != signIns {
		t.Fatalf("replica 1 sent the browser to sign in again")
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
}

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
