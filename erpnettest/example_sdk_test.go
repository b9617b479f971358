package erpnettest_test

// Examples and tests that use the SDK's packages (clientcreds, authcode, reftoken) live in
// this file, so they are easy to port when those APIs change.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/erpnetgo/auth"

	"github.com/erpnetgo/auth/authcode"
	"github.com/erpnetgo/auth/clientcreds"
	"github.com/erpnetgo/auth/erpnettest"
	"github.com/erpnetgo/auth/reftoken"
)

// A background worker keeps working through an outage of the token endpoint: the server
// answers the first three token requests with 503, the worker's Source retries and gets its
// token on the fourth.
func ExampleServer_InjectFault() {
	srv, err := erpnettest.Start(erpnettest.Config{}) // in a test: erpnettest.NewServer(t)
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	srv.InjectFault("token", erpnettest.Fault{Status: http.StatusServiceUnavailable, Times: 3})

	src, err := clientcreds.New(clientcreds.Config{
		Authority:    srv.URL(),
		ClientID:     erpnettest.Demo.WorkerID,
		ClientSecret: erpnettest.Demo.WorkerSecret,
		Scopes:       []string{"read"},
		Retry:        auth.Retry{Attempts: 5, Base: time.Millisecond, Cap: 10 * time.Millisecond},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer src.Close()

	resp, err := src.Client(context.Background()).Get(srv.DomainAPI() + "Crm_Sales_Customers?$top=1")
	if err != nil {
		log.Fatal(err)
	}
	resp.Body.Close()
	fmt.Println(resp.Status, "as", resp.Header.Get("X-Erpnet-Caller"))
	fmt.Println("token requests:", srv.Requests("token"))
	fmt.Println("ERP.net sessions opened:", srv.SessionsOpened())
	// Output:
	// 200 OK as system:worker-system
	// token requests: 4
	// ERP.net sessions opened: 1
}

// A web handler protected by authcode, tested with a signed-in user: SignIn goes through the
// app's sign-in, the identity server's form and the app's callback, and returns a client
// whose cookies carry bob's session.
func ExampleServer_SignIn() {
	srv, err := erpnettest.Start(erpnettest.Config{}) // in a test: erpnettest.NewServer(t)
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()

	mux := http.NewServeMux()
	app := httptest.NewServer(mux)
	defer app.Close()
	auth, err := authcode.New(authcode.Config{
		Authority:    srv.URL(),
		ClientID:     erpnettest.Demo.WebAppID,
		ClientSecret: erpnettest.Demo.WebAppSecret,
		RedirectURL:  app.URL + "/callback", // the demo web app accepts any 127.0.0.1 port
	})
	if err != nil {
		log.Fatal(err)
	}
	defer auth.Close()
	mux.Handle("/signin", auth.SignIn())
	mux.Handle("/callback", auth.Callback())
	mux.Handle("/hello", auth.RequireUser(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := authcode.SessionFromContext(r.Context())
		fmt.Fprintf(w, "Hello, %s (%s)!", s.Name, s.Subject)
	})))

	browser, err := srv.SignIn(app.URL+"/signin", erpnettest.Demo.Bob)
	if err != nil {
		log.Fatal(err)
	}
	resp, err := browser.Get(app.URL + "/hello")
	if err != nil {
		log.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println(string(page))
	// Output: Hello, Bob Brown (bob)!
}

// A personal access token stops working the moment it is revoked: the Domain API answers
// 401, which reftoken reports as ErrTokenRejected.
func ExampleServer_RevokeToken() {
	srv, err := erpnettest.Start(erpnettest.Config{}) // in a test: erpnettest.NewServer(t)
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()

	raw := srv.MintPAT(erpnettest.Demo.Alice, "read")
	tok, err := reftoken.Parse(raw)
	if err != nil {
		log.Fatal(err)
	}
	client, err := tok.Client(reftoken.Config{Authority: srv.URL(), Header: reftoken.Bearer})
	if err != nil {
		log.Fatal(err)
	}
	defer client.CloseIdleConnections()
	get := func() error {
		resp, err := client.Get(srv.DomainAPI() + "General_Contacts")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		return reftoken.CheckResponse(resp)
	}

	fmt.Println("before:", get())
	srv.RevokeToken(raw)
	err = get()
	fmt.Println("after:", errors.Is(err, reftoken.ErrTokenRejected))
	// Output:
	// before: <nil>
	// after: true
}

// TestSignInThroughRequireUser signs in from a protected page (RequireUser sends the browser
// to the sign-in) and checks the session's user for each demo user.
func TestSignInThroughRequireUser(t *testing.T) {
	srv := erpnettest.NewServer(t)
	app, auth := newWebApp(t, srv, erpnettest.Demo.WebAppID, erpnettest.Demo.WebAppSecret)
	_ = auth
	for _, user := range []string{erpnettest.Demo.Alice, erpnettest.Demo.Bob} {
		browser, err := srv.SignIn(app.URL+"/hello", user)
		if err != nil {
			t.Fatal(err)
		}
		if got := getPage(t, browser, app.URL+"/hello"); !strings.Contains(got, "("+user+")") {
			t.Errorf("page for %s: %q", user, got)
		}
	}
	if n := srv.Requests("signin"); n != 2 {
		t.Errorf("sign-in form posts = %d, want 2", n)
	}
}

// A registered app of the test's own, a public one, with a registered user.
func TestSignInOwnPublicApp(t *testing.T) {
	srv := erpnettest.NewServer(t, erpnettest.Config{
		Apps:  []erpnettest.App{{ID: "com.acme/spa", RedirectURIs: []string{"http://127.0.0.1/auth/cb"}}},
		Users: []erpnettest.User{{Username: "carol", Password: "c@rol pw", Name: "Carol Clark"}},
	})
	mux := http.NewServeMux()
	app := httptest.NewServer(mux)
	t.Cleanup(app.Close)
	auth, err := authcode.New(authcode.Config{Authority: srv.URL(), ClientID: "com.acme/spa", RedirectURL: app.URL + "/auth/cb"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { auth.Close() })
	mux.Handle("/auth/signin", auth.SignIn())
	mux.Handle("/auth/cb", auth.Callback())
	mux.Handle("/me", auth.RequireUser(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, authcode.SessionFromContext(r.Context()).Name)
	})))
	browser, err := srv.SignIn(app.URL+"/auth/signin", "carol")
	if err != nil {
		t.Fatal(err)
	}
	if got := getPage(t, browser, app.URL+"/me"); got != "Carol Clark" {
		t.Errorf("page = %q", got)
	}
}

// SignIn's errors say where it stopped, without secrets.
func TestSignInErrors(t *testing.T) {
	srv := erpnettest.NewServer(t, erpnettest.Config{
		Users: []erpnettest.User{{Username: "alice", Password: "new-password"}},
	})
	app, _ := newWebApp(t, srv, erpnettest.Demo.WebAppID, erpnettest.Demo.WebAppSecret)

	if _, err := srv.SignIn(app.URL+"/signin", "mallory"); err == nil || !strings.Contains(err.Error(), "unknown user") {
		t.Errorf("unknown user: %v", err)
	}
	if _, err := srv.SignIn(app.URL+"/public", "bob"); err == nil || !strings.Contains(err.Error(), "instead of sending the browser") {
		t.Errorf("page that does not sign in: %v", err)
	}
	// The identity server is down: the app's sign-in cannot reach discovery.
	srv.InjectFault("discovery", erpnettest.Fault{Status: 503, Times: 20})
	if _, err := srv.SignIn(app.URL+"/signin", "bob"); err == nil {
		t.Error("sign-in with discovery down succeeded")
	} else {
		assertNoSecret(t, err.Error())
	}
	srv.ClearFaults()

	// An app whose client secret is wrong fails at the callback (code exchange).
	bad, _ := newWebApp(t, srv, erpnettest.Demo.WebAppID, "wrong-secret")
	_, err := srv.SignIn(bad.URL+"/signin", "bob")
	if err == nil || !strings.Contains(err.Error(), "callback") {
		t.Errorf("wrong secret: %v", err)
	} else {
		assertNoSecret(t, err.Error())
	}
	// The authorize request of an unregistered redirect URI is refused.
	other, _ := newWebApp(t, srv, "com.example/worker", erpnettest.Demo.WorkerSecret)
	if _, err := srv.SignIn(other.URL+"/signin", "bob"); err == nil {
		t.Error("sign-in for an app without redirect URIs succeeded")
	}
}

func assertNoSecret(t *testing.T, msg string) {
	t.Helper()
	for _, s := range []string{erpnettest.Demo.WebAppSecret, "wrong-secret", "bob-password", "code=", "state="} {
		if strings.Contains(msg, s) {
			t.Errorf("error %q contains %q", msg, s)
		}
	}
}

// A user whose password changes must sign in again: the app's refresh fails.
func TestRevokeUserEndsSession(t *testing.T) {
	srv := erpnettest.NewServer(t, erpnettest.Config{AccessTokenLifetime: 10 * time.Minute})
	app, _ := newWebApp(t, srv, erpnettest.Demo.WebAppID, erpnettest.Demo.WebAppSecret)
	browser, err := srv.SignIn(app.URL+"/signin", erpnettest.Demo.Alice)
	if err != nil {
		t.Fatal(err)
	}
	if got := getPage(t, browser, app.URL+"/customers"); !strings.Contains(got, "user:alice") {
		t.Fatalf("customers page: %q", got)
	}
	srv.RevokeUser(erpnettest.Demo.Alice)
	if n := srv.LicensesInUse(); n != 0 {
		t.Errorf("licenses in use after RevokeUser = %d", n)
	}
	resp, err := browser.Get(app.URL + "/customers")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		t.Error("the revoked user's access token still works")
	}
}

// A worker under a 429 with Retry-After and a 503 retries and counts its requests.
func TestWorkerSurvives429(t *testing.T) {
	srv := erpnettest.NewServer(t)
	srv.InjectFault("token", erpnettest.Fault{Status: http.StatusTooManyRequests, RetryAfter: time.Nanosecond})
	srv.InjectFault("token", erpnettest.Fault{Status: http.StatusServiceUnavailable})
	src, err := clientcreds.New(clientcreds.Config{Authority: srv.URL(), ClientID: erpnettest.Demo.WorkerID,
		ClientSecret: erpnettest.Demo.WorkerSecret, Retry: auth.Retry{Attempts: 3, Base: time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	if _, err := src.Token(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := srv.Requests("token"); n != 3 {
		t.Errorf("token requests = %d, want 3", n)
	}
	// A cached token: no more token requests, one ERP.net session for many calls.
	for range 5 {
		resp, err := src.Client(context.Background()).Get(srv.DomainAPI() + "General_Contacts")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	if n, s := srv.Requests("token"), srv.SessionsOpened(); n != 3 || s != 1 {
		t.Errorf("token requests = %d, sessions = %d; want 3 and 1", n, s)
	}
}

// A SAT acts as the application's System User; LicenseCount limits sessions.
func TestSATAndLicenses(t *testing.T) {
	srv := erpnettest.NewServer(t, erpnettest.Config{LicenseCount: 1})
	sat, err := reftoken.Parse(srv.MintSAT(erpnettest.Demo.WorkerID))
	if err != nil {
		t.Fatal(err)
	}
	pat, err := reftoken.Parse(srv.MintPAT(erpnettest.Demo.Bob))
	if err != nil {
		t.Fatal(err)
	}
	call := func(tok reftoken.Token) (string, error) {
		c, err := tok.Client(reftoken.Config{Authority: srv.URL(), Header: reftoken.APIKey})
		if err != nil {
			t.Fatal(err)
		}
		defer c.CloseIdleConnections()
		resp, err := c.Get(srv.DomainAPI() + "Crm_Sales_Customers")
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		return resp.Header.Get("X-Erpnet-Caller"), reftoken.CheckResponse(resp)
	}
	if who, err := call(sat); err != nil || who != "sat:worker-system" {
		t.Fatalf("SAT: %q %v", who, err)
	}
	// The refusal (403 MaximumLicenseCountExceeded) is retried once, then
	// reported as such.
	if _, err := call(pat); !errors.Is(err, auth.ErrLicenseExhausted) {
		t.Errorf("second session with one license: %v", err)
	}
	if n := srv.LicensesInUse(); n != 1 {
		t.Errorf("licenses in use = %d", n)
	}
	srv.Advance(21 * time.Minute) // the SAT's session idles out
	if _, err := call(pat); err != nil {
		t.Errorf("after the idle timeout: %v", err)
	}
	if n := srv.SessionsOpened(); n != 2 {
		t.Errorf("sessions opened = %d, want 2", n)
	}
}

// newWebApp serves an authcode app on httptest with /signin, /callback, /hello (signed-in
// users), /customers (the Domain API as the user) and /public.
func newWebApp(t *testing.T, srv *erpnettest.Server, id, secret string) (*httptest.Server, *authcode.Client) {
	t.Helper()
	mux := http.NewServeMux()
	app := httptest.NewServer(mux)
	t.Cleanup(app.Close)
	auth, err := authcode.New(authcode.Config{Authority: srv.URL(), ClientID: id, ClientSecret: secret, RedirectURL: app.URL + "/callback"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { auth.Close() })
	mux.Handle("/signin", auth.SignIn())
	mux.Handle("/callback", auth.Callback())
	mux.HandleFunc("/public", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "public") })
	mux.Handle("/hello", auth.RequireUser(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := authcode.SessionFromContext(r.Context())
		fmt.Fprintf(w, "Hello, %s (%s)!", s.Name, s.Subject)
	})))
	mux.Handle("/customers", auth.RequireUser(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := authcode.SessionFromContext(r.Context())
		resp, err := auth.UserClient(r.Context(), s).Get(srv.DomainAPI() + "Crm_Sales_Customers")
		if err != nil {
			http.Error(w, "Domain API unavailable", http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		w.WriteHeader(resp.StatusCode)
		fmt.Fprint(w, resp.Header.Get("X-Erpnet-Caller"))
	})))
	return app, auth
}

func getPage(t *testing.T, c *http.Client, u string) string {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s %s", u, resp.Status, b)
	}
	return string(b)
}
