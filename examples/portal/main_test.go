package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/erpnetgo/auth/erpnettest"
	"github.com/erpnetgo/auth/internal/htmlform"
	"github.com/erpnetgo/auth/internal/testutil"
)

func TestMain(m *testing.M) { testutil.VerifyNoLeaks(m) }

func readPage(t *testing.T, resp *http.Response, err error) string {
	t.Helper()
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(b))
	return string(b)
}

// TestPortalShowsBothIdentities runs the portal's handler in-process
// against the dev identity server: alice signs in and reads her customers
// with her token; the import she triggers, and the scheduled one, run as
// the System User; the page and the audit log say so.
func TestPortalShowsBothIdentities(t *testing.T) {
	var handler atomic.Pointer[http.Handler]
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		(*handler.Load()).ServeHTTP(w, r)
	}))
	defer ts.Close()
	idp := erpnettest.NewServer(t)

	logs := &testutil.SyncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	cfg := devAppConfig(idp, ts.URL)
	cfg.HTTPClient = &http.Client{Transport: tr, Timeout: 20 * time.Second}
	calls := &apiCalls{base: tr}
	cfg.Transport = calls
	p, err := newPortal(cfg, log)
	require.NoError(t, err)
	defer p.Close()
	h := p.Handler()
	handler.Store(&h)

	read := func(resp *http.Response, err error) string { t.Helper(); return readPage(t, resp, err) }

	// Sign in (through the identity server's form) and see the customers,
	// read as alice.
	browser, err := idp.SignIn(ts.URL+"/", erpnettest.Demo.Alice)
	require.NoError(t, err)
	page := read(browser.Get(ts.URL + "/"))
	assert.Contains(t, page, "Signed in as <strong>Alice Anderson</strong> (alice)")
	assert.Contains(t, page, "read as user:alice")
	assert.Contains(t, page, "Acme Manufacturing Ltd")
	assert.Contains(t, page, "no import yet")

	// alice triggers the import: it runs as the System User.
	page = read(browser.Post(ts.URL+"/import", "application/x-www-form-urlencoded", nil))
	assert.Regexp(t, `import ran as system:portal-system \(triggered by alice at \d\d:\d\d:\d\d\): 3 customers`, page)
	assert.Contains(t, page, "read as user:alice", "the user's own reads are still hers")

	// The background import runs as the System User too.
	ctx, cancel := context.WithCancel(t.Context())
	loopDone := make(chan struct{})
	go func() {
		defer close(loopDone)
		p.importLoop(ctx, 20*time.Millisecond)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(page, "(scheduled, at ") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		page = read(browser.Get(ts.URL + "/"))
	}
	cancel()
	select {
	case <-loopDone:
	case <-time.After(5 * time.Second):
		t.Fatal("the import loop did not stop")
	}
	assert.Regexp(t, `import ran as system:portal-system \(scheduled, at \d\d:\d\d:\d\d\): 3 customers`, page)

	// The Domain API saw exactly two identities, each where intended, with
	// tokens of the one Trusted Application.
	assert.Equal(t, map[string]bool{"user:alice": true, "system:portal-system": true}, calls.callers())
	assert.Equal(t, map[string]bool{erpnettest.Demo.WebAppID: true}, calls.clientIDs())

	// The audit log tells who did what, and never shows a token.
	audit := logs.String()
	assert.Contains(t, audit, `msg="hybrid: service job finished" job=import`)
	assert.Regexp(t, `job=import run=\w+ trigger=user triggered_by=alice issuer=\S+ acting_as=system_user client_id=com.example/webapp .*outcome=ok`, audit)
	assert.Regexp(t, `job=import run=\w+ trigger=background acting_as=system_user client_id=com.example/webapp .*outcome=ok`, audit)
	assert.NotContains(t, audit, "eyJ", "no JWT in the log")

	// Cross-site POSTs are refused.
	req, _ := http.NewRequest(http.MethodPost, ts.URL+"/import", nil)
	req.Header.Set("Origin", "https://evil.example")
	resp, err := browser.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusForbidden, resp.StatusCode)

	// Sign out: back on the signed-out page, and the home page asks to sign in.
	page = read(browser.Post(ts.URL+"/signout", "application/x-www-form-urlencoded", nil))
	assert.Contains(t, page, "You are signed out")
	page = read(browser.Get(ts.URL + "/"))
	assert.Contains(t, page, `action="/id/account/login"`, "the identity server's sign-in form")
}

// apiCalls records, for every Domain API call of the portal, the caller the
// Domain API reported (X-Erpnet-Caller) and the client_id in the access
// token sent.
type apiCalls struct {
	base    http.RoundTripper
	mu      sync.Mutex
	caller  map[string]bool
	clients map[string]bool
}

func (a *apiCalls) RoundTrip(r *http.Request) (*http.Response, error) {
	client := "(no JWT)"
	if parts := strings.Split(strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "), "."); len(parts) == 3 {
		var claims struct {
			ClientID string `json:"client_id"`
		}
		if b, err := base64.RawURLEncoding.DecodeString(parts[1]); err == nil && json.Unmarshal(b, &claims) == nil {
			client = claims.ClientID
		}
	}
	resp, err := a.base.RoundTrip(r)
	if err == nil {
		a.mu.Lock()
		if a.caller == nil {
			a.caller, a.clients = map[string]bool{}, map[string]bool{}
		}
		a.caller[resp.Header.Get("X-Erpnet-Caller")] = true
		a.clients[client] = true
		a.mu.Unlock()
	}
	return resp, err
}

func (a *apiCalls) callers() map[string]bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.caller
}

func (a *apiCalls) clientIDs() map[string]bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.clients
}

// asBrowser sends what a browser sends when it loads a page.
type asBrowser struct{ base http.RoundTripper }

func (b asBrowser) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Header.Get("Accept") == "" {
		r = r.Clone(r.Context())
		r.Header.Set("Accept", "text/html,application/xhtml+xml,*/*;q=0.8")
	}
	return b.base.RoundTrip(r)
}

// TestRunSignInFormAndCleanShutdown runs the program as `go run` would
// (dev identity server in-process, listening on a free port), signs bob
// in through the HTML form, and stops it as SIGINT would.
func TestRunSignInFormAndCleanShutdown(t *testing.T) {
	t.Setenv("ERPNET_AUTHORITY", "")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	baseCh := make(chan string, 1)
	done := make(chan error, 1)
	logs := &testutil.SyncBuffer{}
	go func() {
		done <- run(ctx, slog.New(slog.NewTextHandler(logs, nil)), "127.0.0.1:0", time.Hour, func(b string) { baseCh <- b })
	}()
	var base string
	select {
	case base = <-baseCh:
	case err := <-done:
		t.Fatal("run ended:", err)
	case <-time.After(10 * time.Second):
		t.Fatal("the portal did not start")
	}

	read := func(resp *http.Response, err error) string { t.Helper(); return readPage(t, resp, err) }
	jar, _ := cookiejar.New(nil)
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	browser := &http.Client{Jar: jar, Transport: asBrowser{tr}, Timeout: 20 * time.Second}
	// Unsigned, the home page leads to the identity server's sign-in form.
	resp, err := browser.Get(base + "/")
	formURL := *resp.Request.URL // where the redirects ended
	page := readPage(t, resp, err)
	form := htmlform.Parse([]byte(page))
	require.NotNil(t, form, page)
	require.NotEmpty(t, form.Values.Get("request"), page)
	require.NotEmpty(t, form.Values.Get("csrf"), page)
	action, err := formURL.Parse(form.Action)
	require.NoError(t, err)
	require.Equal(t, "/id/account/login", action.Path)
	form.Values.Set("username", erpnettest.Demo.Bob)
	form.Values.Set("password", erpnettest.Demo.BobPassword)
	form.Values.Set("action", "login")
	page = read(browser.PostForm(action.String(), form.Values))
	assert.Contains(t, page, "read as user:bob")
	page = read(browser.Post(base+"/import", "application/x-www-form-urlencoded", nil))
	assert.Regexp(t, `import ran as system:portal-system \(triggered by bob at `, page)

	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(15 * time.Second):
		t.Fatal("run did not stop")
	}
	assert.Contains(t, logs.String(), "stopping: signal received")
	assert.Regexp(t, `job=import .*trigger=background .*outcome=ok`, logs.String(), "the first scheduled import ran at start")
}

// TestPageCSPAllowsSignOutRedirect: the page's forms may lead to the
// identity server (Sign out answers with a redirect to its end-session
// endpoint, and browsers check form-action on every redirect after a form
// submission); examples/browsertest checks this in Chromium.
func TestPageCSPAllowsSignOutRedirect(t *testing.T) {
	assert.Equal(t, "default-src 'none'; style-src 'unsafe-inline'; form-action 'self' https://demodb.my.erp.net",
		pageCSP("https://demodb.my.erp.net/id/"))
	assert.Equal(t, "default-src 'none'; style-src 'unsafe-inline'; form-action 'self' http://127.0.0.1:5080",
		pageCSP("http://127.0.0.1:5080"))
	assert.Equal(t, "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'", pageCSP("::not a url"))
}
