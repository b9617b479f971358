package authcode

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/erpnetgo/auth"
	"github.com/erpnetgo/auth/internal/testutil"
)

// hangServer stands in front of the identity server: it forwards every
// request, except those to the paths it is told to hang, which block until
// the test ends (whether or not the client is still there), as a hung
// identity server does.
type hangServer struct {
	*httptest.Server
	proxyTr *http.Transport
	mu      sync.Mutex
	paths   map[string]bool
	entered chan string
	release chan struct{}
}

func newHangServer(t *testing.T, target string) *hangServer {
	t.Helper()
	u, err := url.Parse(target)
	require.NoError(t, err)
	h := &hangServer{proxyTr: &http.Transport{}, paths: map[string]bool{},
		entered: make(chan string, 16), release: make(chan struct{})}
	proxy := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) { pr.SetURL(u) }, Transport: h.proxyTr}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.serve(proxy, w, r) }))
	t.Cleanup(func() {
		h.Server.Close()
		h.proxyTr.CloseIdleConnections()
	})
	t.Cleanup(func() { close(h.release) }) // first: the test has ended
	return h
}

func (h *hangServer) serve(proxy http.Handler, w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	hang := h.paths[r.URL.Path]
	h.mu.Unlock()
	if !hang {
		proxy.ServeHTTP(w, r)
		return
	}
	select {
	case h.entered <- r.URL.Path:
	default:
	}
	<-h.release
}

// hang makes requests to path block from now on.
func (h *hangServer) hang(path string) {
	h.mu.Lock()
	h.paths[path] = true
	h.mu.Unlock()
}

// waitEntered waits until a request to a hung path has arrived.
func (h *hangServer) waitEntered(t *testing.T) string {
	t.Helper()
	select {
	case p := <-h.entered:
		return p
	case <-time.After(time.Minute):
		t.Fatal("no request reached the hung server")
		return ""
	}
}

// via rewrites a discovery document so that the endpoints named in
// fields go through h.
func (h *hangServer) via(base *string, fields ...string) func(map[string]any) {
	return func(doc map[string]any) {
		for _, f := range fields {
			if s, ok := doc[f].(string); ok {
				doc[f] = h.URL + strings.TrimPrefix(s, *base)
			}
		}
	}
}

// closedEnv is an env whose discovery sends fields through a hangServer.
func closedEnv(t *testing.T, fields ...string) (*env, *hangServer) {
	var base string
	var h *hangServer
	e := newEnv(t, withDiscoveryRewrite(func(doc map[string]any) { h.via(&base, fields...)(doc) }),
		// No client timeout: only Close can end a request to the hung server.
		withClient(func(c *Config) { c.HTTPClient.Timeout = 0 }))
	base = e.idp.URL()
	h = newHangServer(t, base)
	return e, h
}

// waitDone waits for an operation to end after Close. The limit is a guard
// against hanging the suite, not a measurement: the operation ends as soon
// as Close cancels it.
func waitDone[T any](t *testing.T, done <-chan T) T {
	t.Helper()
	select {
	case v := <-done:
		return v
	case <-time.After(time.Minute):
		t.Fatal("still running a minute after Close")
		var zero T
		return zero
	}
}

// requireNothingLeft checks with goleak that no goroutine started since
// before is still running, apart from the hung server's own handlers:
// nothing of the Client outlived Close.
func requireNothingLeft(t *testing.T, before goleak.Option, e *env, h *hangServer, transports ...*http.Transport) {
	t.Helper()
	for _, tr := range append(transports, e.tr, h.proxyTr) {
		tr.CloseIdleConnections()
	}
	requireNoLeak(t, before, goleak.IgnoreAnyFunction("github.com/erpnetgo/auth/authcode.(*hangServer).serve"))
}

// requireNoLeak checks that no goroutine outlived Client.Close (with
// testutil.FindLeaks' patience for connection goroutines).
func requireNoLeak(t *testing.T, opts ...goleak.Option) {
	t.Helper()
	require.NoError(t, testutil.FindLeaks(opts...), "goroutines outlived Client.Close")
}

func TestCloseEndsCallbackWaitingOnJWKS(t *testing.T) {
	testCloseEndsCallback(t, "jwks_uri")
}

func TestCloseEndsCallbackWaitingOnTokenEndpoint(t *testing.T) {
	testCloseEndsCallback(t, "token_endpoint")
}

func testCloseEndsCallback(t *testing.T, field string) {
	e, h := closedEnv(t, field)
	b := e.browser()
	cb := e.authorize(b, e.startSignIn(b, ""))
	doc, err := e.c.disco.Get(context.Background())
	require.NoError(t, err)
	hungURL := doc.JWKSURI
	if field == "token_endpoint" {
		hungURL = doc.TokenEndpoint
	}
	require.True(t, strings.HasPrefix(hungURL, h.URL), hungURL)
	h.hang(mustURL(hungURL).Path)

	before := goleak.IgnoreCurrent()
	// The browser waits as long as it takes (no timeout): only Close can
	// end the callback.
	tr := &http.Transport{}
	hc := &http.Client{Jar: b.jar, Transport: tr, CheckRedirect: b.hc.CheckRedirect}
	done := make(chan int, 1)
	go func() {
		resp, err := hc.Get(cb)
		if err != nil {
			done <- -1
			return
		}
		resp.Body.Close()
		done <- resp.StatusCode
	}()
	h.waitEntered(t)
	require.NoError(t, e.c.Close())
	status := waitDone(t, done)
	assert.GreaterOrEqual(t, status, 400, "the callback failed")
	requireNothingLeft(t, before, e, h, tr)
	assert.Equal(t, 0, e.sessionsInStore())
}

func TestCloseEndsRefreshWaitingOnTokenEndpoint(t *testing.T) {
	e, h := closedEnv(t, "token_endpoint")
	b := e.browser()
	e.mustSignIn(b, "")
	s := e.session(b)
	doc, err := e.c.disco.Get(context.Background())
	require.NoError(t, err)
	h.hang(mustURL(doc.TokenEndpoint).Path)
	e.advance(time.Hour + time.Minute)

	before := goleak.IgnoreCurrent()
	// A token request and an app request (RequireUser) both wait on the
	// refresh.
	tokDone := make(chan error, 1)
	go func() {
		_, err := e.c.TokenSource(context.Background(), s).Token()
		tokDone <- err
	}()
	tr := &http.Transport{}
	hc := &http.Client{Jar: b.jar, Transport: tr, CheckRedirect: b.hc.CheckRedirect}
	reqDone := make(chan int, 1)
	go func() {
		resp, err := hc.Get(e.app.URL + "/me")
		if err != nil {
			reqDone <- -1
			return
		}
		resp.Body.Close()
		reqDone <- resp.StatusCode
	}()
	h.waitEntered(t)
	require.NoError(t, e.c.Close())
	assert.ErrorIs(t, waitDone(t, tokDone), auth.ErrClosed)
	assert.Equal(t, http.StatusServiceUnavailable, waitDone(t, reqDone), "a closed Client forwards no request")
	requireNothingLeft(t, before, e, h, tr)
}

func TestCloseEndsLoopbackSignIn(t *testing.T) {
	e := cliEnv(t)
	before := goleak.IgnoreCurrent()
	opened := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		_, err := e.c.LoopbackSignIn(context.Background(), LoopbackOptions{
			// The user never comes back from the browser.
			OpenBrowser: func(string) error { close(opened); return nil },
			Output:      &strings.Builder{},
		})
		done <- err
	}()
	select {
	case <-opened:
	case err := <-done:
		t.Fatal("the loopback sign-in ended before opening the browser:", err)
	}
	require.NoError(t, e.c.Close())
	assert.ErrorIs(t, waitDone(t, done), auth.ErrClosed)
	e.tr.CloseIdleConnections()
	requireNoLeak(t, before)
}
