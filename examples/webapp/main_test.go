package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/erpnetgo/auth/internal/devserver"
)

func TestWebAppSignInCustomersSignOut(t *testing.T) {
	t.Setenv("ERPNET_AUTHORITY", "")
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, "127.0.0.1:0", slog.New(slog.DiscardHandler), func(site string, idp *devserver.Server) {
			idp.SetAutoSignIn(devserver.DemoAlice) // no human to type the password
			ready <- site
		})
	}()
	var site string
	select {
	case site = <-ready:
	case err := <-done:
		t.Fatal(err)
	}
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	jar, _ := cookiejar.New(nil)
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	// Browsers ask for HTML; RequireUser redirects them to the sign-in.
	asBrowser := roundTripper(func(r *http.Request) (*http.Response, error) {
		r = r.Clone(r.Context())
		r.Header.Set("Accept", "text/html,application/xhtml+xml")
		return tr.RoundTrip(r)
	})
	browser := &http.Client{Jar: jar, Transport: asBrowser, Timeout: 10 * time.Second}
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

	if page := get(site + "/"); !strings.Contains(page, "Sign in") {
		t.Fatalf("home page without a sign-in link:\n%s", page)
	}
	// /customers sends the browser through the sign-in and back.
	page := get(site + "/customers")
	for _, want := range []string{"Acme Manufacturing Ltd", "user:alice", "Alice Anderson", "Sign out"} {
		if !strings.Contains(page, want) {
			t.Fatalf("customers page lacks %q:\n%s", want, page)
		}
	}
	resp, err := browser.PostForm(site+"/signout", url.Values{})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), "Sign in") || !strings.Contains(string(b), "You are signed out") {
		t.Fatalf("after sign-out: %s\n%s", resp.Status, b)
	}
	// The landing page says so, with nothing left in the address bar.
	if u := resp.Request.URL.String(); u != site+"/signed-out" {
		t.Fatalf("sign-out ended at %s", u)
	}
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
