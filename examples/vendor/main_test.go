package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/erpnetgo/auth/erpnettest"
)

// Two instances served at once, a third installed through the Marketplace
// while the app runs.
func TestVendor(t *testing.T) {
	t.Setenv("ERPNET_INSTANCES", "")
	ctx, cancel := context.WithCancel(context.Background())
	type started struct {
		app string
		d   *demo
	}
	ready := make(chan started, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, "127.0.0.1:0", slog.New(slog.DiscardHandler), func(app string, d *demo) { ready <- started{app, d} })
	}()
	var st started
	select {
	case st = <-ready:
	case err := <-done:
		t.Fatal(err)
	}
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	app, d := st.app, st.d
	page := func(c *http.Client, u string) string {
		t.Helper()
		resp, err := c.Get(u)
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
	signIn := func(name, user string) *http.Client {
		t.Helper()
		srv := d.instances[name]
		c, err := srv.SignIn(app+"/signin?instance="+url.QueryEscape(srv.URL()), user)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	alice, bob := signIn("acme", erpnettest.Demo.Alice), signIn("globex", erpnettest.Demo.Bob)
	for _, tc := range []struct {
		c          *http.Client
		name, want string
	}{{alice, "acme", "user:alice"}, {bob, "globex", "user:bob"}} {
		p := page(tc.c, app+"/customers")
		if !strings.Contains(p, "Acme Manufacturing Ltd") || !strings.Contains(p, tc.want) || !strings.Contains(p, d.instances[tc.name].URL()) {
			t.Fatalf("%s's customers page:\n%s", tc.name, p)
		}
		if d.instances[tc.name].SessionsOpened() != 1 {
			t.Fatalf("%s: %d sessions opened", tc.name, d.instances[tc.name].SessionsOpened())
		}
	}
	// Not signed in: RequireUser sends the browser to choose an instance.
	req, _ := http.NewRequest(http.MethodGet, app+"/customers", nil)
	req.Header.Set("Accept", "text/html")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), "Sign in here") {
		t.Fatalf("/customers without a session: %s\n%s", resp.Status, b)
	}
	// initech is not served yet.
	if _, err := d.instances["initech"].SignIn(app+"/signin?instance="+url.QueryEscape(d.instances["initech"].URL()), erpnettest.Demo.Alice); err == nil {
		t.Fatal("signed in at initech before it was installed")
	}
	// The Marketplace installs the app on initech; the next sign-in works.
	resp, err = alice.PostForm(app+"/demo/install", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("install: %s", resp.Status)
	}
	carol := signIn("initech", erpnettest.Demo.Alice)
	if p := page(carol, app+"/customers"); !strings.Contains(p, d.instances["initech"].URL()) {
		t.Fatalf("initech customers page:\n%s", p)
	}
	// Every instance as its System User: one token each.
	p := page(alice, app+"/service")
	for _, name := range []string{"acme", "globex", "initech"} {
		if !strings.Contains(p, "system:"+name+"-system") {
			t.Fatalf("service page lacks %s:\n%s", name, p)
		}
		if n := d.instances[name].Requests("token"); n != 2 { // the sign-in's code, the service token
			t.Fatalf("%s: %d token requests; want 2", name, n)
		}
	}
	// Sign out at globex.
	resp, err = bob.PostForm(app+"/signout", url.Values{})
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.Request.URL.String() != app+"/signed-out" || !strings.Contains(string(b), "You are signed out") {
		t.Fatalf("sign-out ended at %s:\n%s", resp.Request.URL, b)
	}
	if d.instances["globex"].Requests("revocation") != 1 || d.instances["acme"].Requests("revocation") != 0 {
		t.Fatal("sign-out did not end the session at globex only")
	}
}
