package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/erpnetgo/auth/clientcreds"
	"github.com/erpnetgo/auth/erpnettest"
)

// startSite runs the web app until the test ends and returns its URL and
// its in-process identity server (nil with ERPNET_AUTHORITY set).
func startSite(t *testing.T) (string, *erpnettest.Server) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	type started struct {
		site string
		idp  *erpnettest.Server
	}
	ready := make(chan started, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, "127.0.0.1:0", slog.New(slog.DiscardHandler), func(site string, idp *erpnettest.Server) {
			ready <- started{site, idp}
		})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	select {
	case st := <-ready:
		return st.site, st.idp
	case err := <-done:
		done <- nil
		t.Fatal(err)
		return "", nil
	}
}

func TestWebAppSignInCustomersSignOut(t *testing.T) {
	t.Setenv("ERPNET_AUTHORITY", "")
	site, idp := startSite(t)
	// /customers sends the browser through the sign-in (the identity
	// server's form, filled in as alice) and back.
	browser, err := idp.SignIn(site+"/customers", erpnettest.Demo.Alice)
	if err != nil {
		t.Fatal(err)
	}
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
	// The identity server's session ended too: the next visit meets its form.
	resp, err = browser.Get(site + "/customers")
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), `action="/id/account/login"`) {
		t.Fatalf("after sign-out /customers did not lead to the sign-in form: %s\n%s", resp.Status, b)
	}
}

func TestWebAppHomeOffersSignIn(t *testing.T) {
	t.Setenv("ERPNET_AUTHORITY", "")
	site, _ := startSite(t)
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Get(site + "/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), `href="/signin?return_to=%2Fcustomers"`) {
		t.Fatalf("home page without a sign-in link: %s\n%s", resp.Status, b)
	}
}

// TestWebAppRedisNeedsOneIdentityServer: -redis without ERPNET_AUTHORITY
// would give each replica its own in-process identity server, whose
// sessions the others could not use; the program refuses and says what to
// do instead.
func TestWebAppRedisNeedsOneIdentityServer(t *testing.T) {
	t.Setenv("ERPNET_AUTHORITY", "")
	old := *redisAddr
	*redisAddr = "127.0.0.1:1"
	t.Cleanup(func() { *redisAddr = old })
	err := run(context.Background(), "127.0.0.1:0", slog.New(slog.DiscardHandler), nil)
	if err == nil || !strings.Contains(err.Error(), "-redis needs ERPNET_AUTHORITY") || !strings.Contains(err.Error(), "examples/devserver") {
		t.Fatalf("run = %v", err)
	}
}

// TestWebAppLicensesExhausted: with every license of the instance taken,
// the customers page says so in plain words (503, Retry-After), not with
// the API's error text.
func TestWebAppLicensesExhausted(t *testing.T) {
	srv := erpnettest.NewServer(t, erpnettest.Config{LicenseCount: 1})
	// A worker takes the only license slot.
	worker, err := clientcreds.New(clientcreds.Config{Authority: srv.URL(), ClientID: erpnettest.Demo.WorkerID, ClientSecret: erpnettest.Demo.WorkerSecret})
	if err != nil {
		t.Fatal(err)
	}
	defer worker.Close()
	resp, err := worker.Client(context.Background()).Get(srv.DomainAPI() + "Crm_Sales_Customers")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()

	t.Setenv("ERPNET_AUTHORITY", srv.URL())
	t.Setenv("ERPNET_CLIENT_ID", erpnettest.Demo.WebAppID)
	t.Setenv("ERPNET_CLIENT_SECRET", erpnettest.Demo.WebAppSecret)
	t.Setenv("ERPNET_CLIENT_SECRET_FILE", "")
	t.Setenv("ERPNET_REDIRECT_URL", "")
	t.Setenv("ERPNET_POST_LOGOUT_URL", "")
	t.Setenv("ERPNET_DOMAIN_API", "")
	site, _ := startSite(t)
	browser, err := srv.SignIn(site+"/customers", erpnettest.Demo.Alice)
	if err != nil {
		t.Fatal(err)
	}
	resp, err = browser.Get(site + "/customers")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("customers: %s, Retry-After %q", resp.Status, resp.Header.Get("Retry-After"))
	}
	if !strings.Contains(string(b), "All ERP.net licenses of this instance are in use; try again in a few minutes.") || strings.Contains(string(b), "MaximumLicenseCountExceeded") {
		t.Fatalf("customers page:\n%s", b)
	}
}
