package bff

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/erpnetgo/auth"
	"github.com/erpnetgo/auth/authcode"
	"github.com/erpnetgo/auth/erpnettest"
	"github.com/erpnetgo/auth/internal/erpnetctl"
	"github.com/erpnetgo/auth/internal/testutil"
)

func TestMain(m *testing.M) { testutil.VerifyNoLeaks(m) }

// clock is the app's clock: real time plus an offset that world.advance
// moves together with the identity server's.
type clock struct{ off atomic.Int64 }

func (c *clock) Now() time.Time { return time.Now().Add(time.Duration(c.off.Load())) }

// tokenSpy records the tokens the identity server hands the app, so that
// tests can look for them where they must not be.
type tokenSpy struct {
	base   http.RoundTripper
	mu     sync.Mutex
	tokens []string
}

func (s *tokenSpy) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := s.base.RoundTrip(req)
	if err != nil || !strings.HasSuffix(req.URL.Path, "/connect/token") {
		return resp, err
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(b))
	var tr map[string]any
	if json.Unmarshal(b, &tr) == nil {
		s.mu.Lock()
		for _, k := range []string{"access_token", "refresh_token", "id_token"} {
			if v, ok := tr[k].(string); ok && v != "" {
				s.tokens = append(s.tokens, v)
			}
		}
		s.mu.Unlock()
	}
	return resp, nil
}

func (s *tokenSpy) all() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.tokens...)
}

// named returns the recorded events called name.
func named(r *testutil.Recorder, name string) []auth.Event {
	var out []auth.Event
	for _, e := range r.Events() {
		if e.Name == name {
			out = append(out, e)
		}
	}
	return out
}

// world is one identity server with its Domain API, and one app serving
// the BFF at /bff/ and the Client's Callback at /callback.
type world struct {
	t      *testing.T
	idp    *erpnettest.Server
	clk    *clock
	app    *httptest.Server
	ac     *authcode.Client
	bff    http.Handler
	spy    *tokenSpy
	ev     *testutil.Recorder
	logs   *testutil.SyncBuffer
	acfg   authcode.Config
	served []*response // every answer the app gave, for the token scan
	mu     sync.Mutex
}

type setup struct {
	client func(*authcode.Config)
	tls    bool // the app is served over https
	bff    func(*Config)
}

func withClient(f func(*authcode.Config)) func(*setup) { return func(s *setup) { s.client = f } }
func withTLS() func(*setup)                            { return func(s *setup) { s.tls = true } }
func withBFF(f func(*Config)) func(*setup)             { return func(s *setup) { s.bff = f } }

// The test app's registration with the identity server.
const (
	appID     = "com.example.test/bff"
	appSecret = "bff-s3cret:%+/="
)

var (
	cookieKey = bytes.Repeat([]byte{7}, 32)
	alice     = erpnettest.Demo.Alice
)

func newWorld(t *testing.T, opts ...func(*setup)) *world {
	t.Helper()
	var st setup
	for _, o := range opts {
		o(&st)
	}
	w := &world{t: t, clk: &clock{}, ev: &testutil.Recorder{}, logs: &testutil.SyncBuffer{}}
	var h atomic.Pointer[http.Handler]
	serve := http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) { (*h.Load()).ServeHTTP(rw, r) })
	if st.tls {
		w.app = httptest.NewTLSServer(serve)
	} else {
		w.app = httptest.NewServer(serve)
	}
	t.Cleanup(w.app.Close)
	w.idp = erpnettest.NewServer(t, erpnettest.Config{Apps: []erpnettest.App{{ID: appID, Name: "BFF test", Secret: appSecret,
		RedirectURIs: []string{w.app.URL + "/callback"}, PostLogoutURIs: []string{w.app.URL + "/"}}}})
	erpnetctl.Of(w.idp).AutoSignIn(alice)
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	w.spy = &tokenSpy{base: tr}
	w.acfg = authcode.Config{
		Authority:             w.idp.URL(),
		ClientID:              appID,
		ClientSecret:          appSecret,
		RedirectURL:           w.app.URL + "/callback",
		PostLogoutRedirectURL: w.app.URL + "/",
		Keys:                  [][]byte{cookieKey},
		HTTPClient:            &http.Client{Transport: w.spy, Timeout: 20 * time.Second},
		Transport:             tr,
		Retry:                 auth.Retry{Base: time.Millisecond, Cap: time.Millisecond},
		Logger:                slog.New(slog.NewJSONHandler(w.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Hooks:                 w.ev.Hooks(false),
		Now:                   w.clk.Now,
	}
	if st.client != nil {
		st.client(&w.acfg)
	}
	ac, err := authcode.New(w.acfg)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, ac.Close()) })
	w.ac = ac
	cfg := Config{Client: ac, Claims: []string{"email"}}
	if st.bff != nil {
		st.bff(&cfg)
	}
	w.bff, err = New(cfg)
	require.NoError(t, err)
	mux := http.NewServeMux()
	mux.Handle("/callback", ac.Callback())
	mux.Handle("/bff/", w.bff)
	mux.HandleFunc("/", func(rw http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(rw, "spa") })
	var root http.Handler = mux
	h.Store(&root)
	return w
}

// advance moves the app's and the identity server's clocks together.
func (w *world) advance(d time.Duration) {
	w.clk.off.Add(int64(d))
	w.idp.Advance(d)
}

// browser is a user agent with its own cookie jar that does not follow
// redirects. It records every answer of the app.
type browser struct {
	w  *world
	hc *http.Client
}

func (w *world) browser() *browser {
	jar, _ := cookiejar.New(nil)
	tr := &http.Transport{}
	if w.app.TLS != nil {
		tr = w.app.Client().Transport.(*http.Transport).Clone() // trusts the app's certificate
	}
	w.t.Cleanup(tr.CloseIdleConnections)
	return &browser{w: w, hc: &http.Client{Jar: jar, Transport: tr, Timeout: 20 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

type response struct {
	status int
	header http.Header
	body   string
	url    string
}

// json decodes the body.
func (r *response) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal([]byte(r.body), &m), "%d %s", r.status, r.body)
	return m
}

// do sends a request; hdr holds header name/value pairs.
func (b *browser) do(method, rawURL string, body io.Reader, hdr ...string) *response {
	b.w.t.Helper()
	if strings.HasPrefix(rawURL, "/") {
		rawURL = b.w.app.URL + rawURL
	}
	req, err := http.NewRequest(method, rawURL, body)
	require.NoError(b.w.t, err)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := b.hc.Do(req)
	require.NoError(b.w.t, err)
	defer resp.Body.Close()
	rb, err := io.ReadAll(resp.Body)
	require.NoError(b.w.t, err)
	r := &response{status: resp.StatusCode, header: resp.Header, body: string(rb), url: rawURL}
	if strings.HasPrefix(rawURL, b.w.app.URL) {
		b.w.mu.Lock()
		b.w.served = append(b.w.served, r)
		b.w.mu.Unlock()
	}
	return r
}

// get is a script's GET with the anti-forgery header.
func (b *browser) get(path string) *response {
	b.w.t.Helper()
	return b.do(http.MethodGet, path, nil, "X-CSRF", "1")
}

// signIn runs /bff/login?returnUrl=ret through the identity server (auto
// sign-in) and the callback, and returns where the callback sends the
// browser.
func (b *browser) signIn(ret string) string {
	w := b.w
	w.t.Helper()
	u := "/bff/login"
	if ret != "" {
		u += "?" + url.Values{"returnUrl": {ret}}.Encode()
	}
	r := b.do(http.MethodGet, u, nil, "Accept", "text/html", "Sec-Fetch-Mode", "navigate")
	require.Equal(w.t, http.StatusFound, r.status, r.body)
	authz := r.header.Get("Location")
	require.True(w.t, strings.HasPrefix(authz, w.idp.Authority()+"/connect/authorize?"), authz)
	r = b.do(http.MethodGet, authz, nil)
	require.Equal(w.t, http.StatusFound, r.status, r.body)
	cb := r.header.Get("Location")
	require.True(w.t, strings.HasPrefix(cb, w.app.URL+"/callback?"), cb)
	r = b.do(http.MethodGet, cb, nil, "Accept", "text/html", "Sec-Fetch-Mode", "navigate")
	require.Equal(w.t, http.StatusSeeOther, r.status, r.body)
	return r.header.Get("Location")
}

// signedIn returns a browser signed in as alice.
func (w *world) signedIn() *browser {
	w.t.Helper()
	b := w.browser()
	require.Equal(w.t, "/", b.signIn(""))
	return b
}

// domainAPICalls is how many requests reached the Domain API.
func (w *world) domainAPICalls() int { return w.idp.Requests("domainapi") }

// jwtShape matches a JWT (access and ID tokens of ERP.net are JWTs).
var jwtShape = regexp.MustCompile(`eyJ[A-Za-z0-9_-]{4,}\.eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*`)

// requireNoTokens fails if any answer the app gave carries a token the
// identity server issued, or anything shaped like a JWT or a reference
// token, in a header or body; the one exception is the id_token_hint of
// the redirect to the end-session endpoint (OpenID RP-Initiated Logout).
func (w *world) requireNoTokens() {
	w.t.Helper()
	toks := w.spy.all()
	require.NotEmpty(w.t, toks, "the spy saw no token: the scan would prove nothing")
	w.mu.Lock()
	defer w.mu.Unlock()
	require.NotEmpty(w.t, w.served)
	for _, r := range w.served {
		var hb strings.Builder
		for k, vs := range r.header {
			for _, v := range vs {
				if k == "Location" && strings.HasPrefix(v, w.idp.Authority()+"/connect/endsession?") {
					q, err := url.Parse(v)
					require.NoError(w.t, err)
					vals := q.Query()
					vals.Del("id_token_hint")
					v = vals.Encode()
				}
				hb.WriteString(k + ": " + v + "\n")
			}
		}
		all := hb.String() + "\n" + r.body
		for _, tok := range toks {
			require.NotContains(w.t, all, tok, "a token in the answer to %s", r.url)
		}
		require.False(w.t, jwtShape.MatchString(all), "a JWT in the answer to %s:\n%s", r.url, all)
		require.NotContains(w.t, all, "enrt_", "a reference token in the answer to %s", r.url)
	}
}
