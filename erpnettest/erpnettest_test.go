package erpnettest_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/erpnetgo/auth/erpnettest"
	"github.com/erpnetgo/auth/internal/testutil"
)

func TestMain(m *testing.M) { testutil.VerifyNoLeaks(m) }

// tokenRequest asks for a client credentials token with the demo worker's credentials.
func tokenRequest(t *testing.T, srv *erpnettest.Server, c *http.Client) (*http.Response, []byte, error) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, srv.Authority()+"/connect/token",
		strings.NewReader(url.Values{"grant_type": {"client_credentials"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(erpnettest.Demo.WorkerID), url.QueryEscape(erpnettest.Demo.WorkerSecret))
	resp, err := c.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, b, err
}

func newClient(t *testing.T) *http.Client {
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

func TestFaults(t *testing.T) {
	srv := erpnettest.NewServer(t)
	c := newClient(t)
	srv.InjectFault("token", erpnettest.Fault{Status: 503, Times: 2})
	srv.InjectFault("Token", erpnettest.Fault{Status: 429, RetryAfter: 1500 * time.Millisecond})
	srv.InjectFault("TOKEN", erpnettest.Fault{Malformed: true})
	srv.InjectFault("token", erpnettest.Fault{Empty: true, Status: 502})
	srv.InjectFault("token", erpnettest.Fault{Oversized: true})
	srv.InjectFault("token", erpnettest.Fault{Drop: true})
	srv.InjectFault("token", erpnettest.Fault{Latency: time.Millisecond})

	for i := range 2 {
		resp, body, err := tokenRequest(t, srv, c)
		if err != nil || resp.StatusCode != 503 || !strings.Contains(string(body), "temporarily_unavailable") {
			t.Fatalf("503 #%d: %v %v %s", i, resp, err, body)
		}
	}
	resp, _, err := tokenRequest(t, srv, c)
	if err != nil || resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "2" {
		t.Fatalf("429: %v %v", resp, err)
	}
	resp, body, err := tokenRequest(t, srv, c)
	if err != nil || resp.StatusCode != 200 || json.Valid(body) {
		t.Fatalf("malformed: %v %v %s", resp, err, body)
	}
	resp, body, err = tokenRequest(t, srv, c)
	if err != nil || resp.StatusCode != 502 || len(body) != 0 {
		t.Fatalf("empty: %v %v %s", resp, err, body)
	}
	resp, body, err = tokenRequest(t, srv, c)
	if err != nil || resp.StatusCode != 200 || len(body) != 10<<20 {
		t.Fatalf("oversized: %v %v %d", resp, err, len(body))
	}
	if _, _, err = tokenRequest(t, srv, c); err == nil {
		t.Fatal("dropped connection: no error")
	}
	resp, body, err = tokenRequest(t, srv, c) // latency only: then served
	if err != nil || resp.StatusCode != 200 || !strings.Contains(string(body), "access_token") {
		t.Fatalf("latency: %v %v %s", resp, err, body)
	}
	resp, _, err = tokenRequest(t, srv, c) // the queue is empty: healthy
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("healthy: %v %v", resp, err)
	}
	if n := srv.Requests("token"); n != 9 {
		t.Errorf("token requests = %d, want 9", n)
	}

	// Per endpoint, with the names' spellings.
	srv.InjectFault("domain-api", erpnettest.Fault{Status: 500})
	srv.InjectFault("auto_discovery", erpnettest.Fault{Status: 404})
	srv.InjectFault("jwks", erpnettest.Fault{Status: 503})
	srv.InjectFault("end-session", erpnettest.Fault{Status: 503})
	for path, want := range map[string]int{
		"/api/domain/odata/Crm_Sales_Customers": 500, "/sys/auto-discovery": 404,
		"/id/.well-known/openid-configuration/jwks": 503, "/id/connect/endsession": 503,
		"/id/.well-known/openid-configuration": 200,
	} {
		resp, err := c.Get(srv.URL() + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("%s: %d, want %d", path, resp.StatusCode, want)
		}
	}
	for _, ep := range []string{"domainapi", "autodiscovery", "jwks", "endsession", "discovery"} {
		if n := srv.Requests(ep); n != 1 {
			t.Errorf("Requests(%q) = %d, want 1", ep, n)
		}
	}

	// ClearFaults empties every queue.
	srv.InjectFault("discovery", erpnettest.Fault{Status: 503, Times: 5})
	srv.ClearFaults()
	resp, err = c.Get(srv.Authority() + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("after ClearFaults: %d", resp.StatusCode)
	}
}

// fakeTB records Fatal calls (run in their own goroutine, as FailNow ends it).
type fakeTB struct {
	testing.TB
	mu    sync.Mutex
	fatal []string
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Fatal(args ...any) {
	f.mu.Lock()
	f.fatal = append(f.fatal, fmt.Sprint(args...))
	f.mu.Unlock()
}
func (f *fakeTB) Fatalf(format string, args ...any) { f.Fatal(fmt.Sprintf(format, args...)) }
func (f *fakeTB) Errorf(format string, args ...any) { f.Fatal(fmt.Sprintf(format, args...)) }
func (f *fakeTB) Cleanup(fn func())                 { f.TB.Cleanup(fn) }

func TestMisuseFailsTheTest(t *testing.T) {
	tb := &fakeTB{TB: t}
	srv := erpnettest.NewServer(tb)
	srv.InjectFault("tokens", erpnettest.Fault{Status: 503})
	srv.InjectFault("token", erpnettest.Fault{Malformed: true, Empty: true})
	srv.InjectFault("token", erpnettest.Fault{Status: 1000})
	srv.InjectFault("token", erpnettest.Fault{Drop: true, Status: 503})
	_ = srv.Requests("nope")
	_ = srv.MintPAT("mallory")
	_ = srv.MintSAT(erpnettest.Demo.CLIID) // no System User
	_ = srv.MintPAT(erpnettest.Demo.Bob, "openid")
	want := []string{`unknown endpoint "tokens"`, "at most one of", "not an HTTP status", "dropped connection",
		`unknown endpoint "nope"`, `unknown user "mallory"`, "System User", `scope "openid"`}
	if len(tb.fatal) != len(want) {
		t.Fatalf("fatal calls: %q", tb.fatal)
	}
	for i, w := range want {
		if !strings.Contains(tb.fatal[i], w) || !strings.HasPrefix(tb.fatal[i], "erpnettest: ") {
			t.Errorf("fatal %d = %q, want it to contain %q", i, tb.fatal[i], w)
		}
	}
	// Nothing was queued.
	if _, _, err := tokenRequest(t, srv, newClient(t)); err != nil {
		t.Fatal(err)
	}

	// A Server made by Start panics instead.
	s2, err := erpnettest.Start(erpnettest.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	func() {
		defer func() {
			if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), "unknown user") {
				t.Errorf("recovered %v", r)
			}
		}()
		s2.MintPAT("mallory")
	}()
	func() {
		defer func() {
			if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), "Start") {
				t.Errorf("recovered %v", r)
			}
		}()
		erpnettest.NewServer(nil)
	}()
}

func TestConfig(t *testing.T) {
	srv := erpnettest.NewServer(t, erpnettest.Config{
		Apps: []erpnettest.App{
			{ID: erpnettest.Demo.WorkerID, Secret: "rotated", SystemUser: "svc", Scopes: []string{"read"}, AccessTokenLifetime: 90 * time.Second},
			{ID: "com.acme/off", Secret: "x", SystemUser: "off", Disabled: true},
		},
		Users:               []erpnettest.User{{Username: "dave", Password: "pw"}},
		AccessTokenLifetime: 2 * time.Minute,
	})
	c := newClient(t)
	// The demo worker was replaced: its old secret no longer works.
	resp, _, err := tokenRequest(t, srv, c)
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("old secret: %v %v", resp, err)
	}
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {erpnettest.Demo.WorkerID}, "client_secret": {"rotated"}}
	resp, err = c.PostForm(srv.Authority()+"/connect/token", form)
	if err != nil {
		t.Fatal(err)
	}
	var tok struct {
		ExpiresIn int    `json:"expires_in"`
		Scope     string `json:"scope"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&tok)
	resp.Body.Close()
	if tok.ExpiresIn != 90 || tok.Scope != "read" {
		t.Errorf("token: %+v", tok)
	}
	form.Set("client_id", "com.acme/off")
	form.Set("client_secret", "x")
	resp, err = c.PostForm(srv.Authority()+"/connect/token", form)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		t.Error("a disabled app got a token")
	}
	if srv.MintPAT("dave") == "" || srv.MintPAT(erpnettest.Demo.Alice) == "" {
		t.Error("no PAT")
	}

	_, err = erpnettest.Start(erpnettest.Config{Apps: []erpnettest.App{{Secret: "x"}}})
	if err == nil || !strings.Contains(err.Error(), "ID is required") {
		t.Errorf("app without ID: %v", err)
	}
	_, err = erpnettest.Start(erpnettest.Config{Apps: []erpnettest.App{{ID: "a", Scopes: []string{"sec"}}}})
	if err == nil || !strings.HasPrefix(err.Error(), "erpnettest: ") || strings.Contains(err.Error(), "erpnettest: erpnettest") {
		t.Errorf("unknown scope: %v", err)
	}
}

func TestRotateKeys(t *testing.T) {
	srv := erpnettest.NewServer(t)
	c := newClient(t)
	kids := func() int {
		resp, err := c.Get(srv.Authority() + "/.well-known/openid-configuration/jwks")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var set struct{ Keys []struct{ Kid string } }
		if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
			t.Fatal(err)
		}
		return len(set.Keys)
	}
	if n := kids(); n != 1 {
		t.Fatalf("keys = %d", n)
	}
	srv.RotateKeys()
	if n := kids(); n != 2 {
		t.Errorf("keys after rotation = %d, want 2 (old one in its grace period)", n)
	}
	srv.Advance(61 * time.Minute)
	if n := kids(); n != 1 {
		t.Errorf("keys after the grace period = %d, want 1", n)
	}
	if n := srv.Requests("jwks"); n != 3 {
		t.Errorf("jwks requests = %d", n)
	}
}

func TestCloseIsIdempotent(t *testing.T) {
	srv, err := erpnettest.Start(erpnettest.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if resp, err := http.Get(srv.URL() + "/sys/auto-discovery"); err == nil {
		resp.Body.Close()
		t.Error("the server still answers after Close")
	}
}

// Close on nil is a no-op, for the Marketplace as for the Server: a
// program that failed half-way through its set-up can close what it has.
func TestCloseOnNil(t *testing.T) {
	var srv *erpnettest.Server
	var m *erpnettest.Marketplace
	if err := srv.Close(); err != nil {
		t.Error(err)
	}
	if err := m.Close(); err != nil {
		t.Error(err)
	}
}

// Demo names what the server registers: the demo users sign in with their passwords, the
// worker gets a token with its secret, and the web application and the CLI are known.
func TestDemoMatchesServer(t *testing.T) {
	d := erpnettest.Demo
	srv := erpnettest.NewServer(t)
	c := newClient(t)
	if resp, _, err := tokenRequest(t, srv, c); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("the worker's token: %v %v", resp, err)
	}
	for id, secret := range map[string]string{d.WebAppID: d.WebAppSecret, d.CLIID: ""} {
		form := url.Values{"grant_type": {"client_credentials"}, "client_id": {id}}
		if secret != "" {
			form.Set("client_secret", secret)
		}
		resp, err := c.PostForm(srv.Authority()+"/connect/token", form)
		if err != nil {
			t.Fatal(err)
		}
		var body struct{ Error string }
		_ = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if want := map[string]string{d.WebAppID: "", d.CLIID: "unauthorized_client"}[id]; body.Error != want {
			t.Errorf("%s: error %q, want %q", id, body.Error, want)
		}
	}
	// The sign-in page lists the users with their passwords.
	q := url.Values{"client_id": {d.CLIID}, "redirect_uri": {"http://127.0.0.1:1234/callback"}, "response_type": {"code"},
		"code_challenge": {strings.Repeat("a", 43)}, "code_challenge_method": {"S256"}}
	resp, err := c.Get(srv.Authority() + "/connect/authorize?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, s := range []string{d.Alice, d.AlicePassword, d.Bob, d.BobPassword} {
		if !strings.Contains(string(page), ">"+s+"<") {
			t.Errorf("the sign-in page does not list %q", s)
		}
	}
	app, _ := newWebApp(t, srv, d.WebAppID, d.WebAppSecret)
	for _, user := range []string{d.Alice, d.Bob} {
		if _, err := srv.SignIn(app.URL+"/signin", user); err != nil {
			t.Errorf("%s: %v", user, err)
		}
	}
}
