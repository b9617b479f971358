package hybrid_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/http/httptrace"
	"net/textproto"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/erpnetgo/auth/authcode"
	"github.com/erpnetgo/auth/erpnettest"
	"github.com/erpnetgo/auth/hybrid"
	"github.com/erpnetgo/auth/internal/erpnetctl"
	"github.com/erpnetgo/auth/internal/testutil"
)

func TestMain(m *testing.M) { testutil.VerifyNoLeaks(m) }

// recStore is an in-memory authcode.Store with a record of every
// operation, to prove what does (and does not) reach the user Store.
type recStore struct {
	mu    sync.Mutex
	data  map[string][]byte
	saves []savedRecord
	ops   atomic.Int64
}

type savedRecord struct {
	key   string
	value []byte
}

func newRecStore() *recStore { return &recStore{data: map[string][]byte{}} }

func (s *recStore) Load(_ context.Context, key string) ([]byte, error) {
	s.ops.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.data[key]
	if !ok {
		return nil, authcode.ErrSessionNotFound
	}
	return append([]byte(nil), v...), nil
}

func (s *recStore) Save(_ context.Context, key string, v []byte, _ time.Duration) error {
	s.ops.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.saves = append(s.saves, savedRecord{key, append([]byte(nil), v...)})
	s.data[key] = append([]byte(nil), v...)
	return nil
}

func (s *recStore) Add(_ context.Context, key string, v []byte, _ time.Duration) (bool, error) {
	s.ops.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.data[key]; ok {
		return false, nil
	}
	s.saves = append(s.saves, savedRecord{key, append([]byte(nil), v...)})
	s.data[key] = append([]byte(nil), v...)
	return true, nil
}

func (s *recStore) Delete(_ context.Context, key string) error {
	s.ops.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.data, key)
	return nil
}

// has reports whether key is stored, without counting an operation.
func (s *recStore) has(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.data[key]
	return ok
}

func (s *recStore) saved() []savedRecord {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]savedRecord(nil), s.saves...)
}

// env is one dev identity server with the demo Trusted Application (one
// app, both flows) and one hybrid App mounted on a test server.
type env struct {
	t     *testing.T
	idp   *erpnettest.Server
	srv   *httptest.Server
	app   *hybrid.App
	cfg   hybrid.Config
	store *recStore
	tr    *http.Transport
	logs  *testutil.SyncBuffer
	audit *testutil.SyncBuffer
}

// newEnv starts everything on 127.0.0.1; mod may edit the App's Config.
func newEnv(t *testing.T, mod func(*hybrid.Config)) *env {
	t.Helper()
	e := &env{t: t, logs: &testutil.SyncBuffer{}, audit: &testutil.SyncBuffer{}}
	var handler atomic.Pointer[http.Handler]
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		(*handler.Load()).ServeHTTP(w, r)
	}))
	t.Cleanup(e.srv.Close)

	e.idp = erpnettest.NewServer(t, erpnettest.Config{Apps: []erpnettest.App{{ // the demo web app, with this portal's URIs
		ID: erpnettest.Demo.WebAppID, Secret: erpnettest.Demo.WebAppSecret, SystemUser: "portal-system",
		RedirectURIs: []string{e.srv.URL + "/callback"}, PostLogoutURIs: []string{e.srv.URL + "/bye"}}}})

	e.tr = &http.Transport{MaxIdleConnsPerHost: 64}
	e.store = newRecStore()
	e.cfg = hybrid.Config{
		Authority:             e.idp.URL(),
		ClientID:              erpnettest.Demo.WebAppID,
		ClientSecret:          erpnettest.Demo.WebAppSecret,
		RedirectURL:           e.srv.URL + "/callback",
		PostLogoutRedirectURL: e.srv.URL + "/bye",
		ServiceScopes:         []string{"read"},
		Store:                 e.store,
		Keys:                  [][]byte{bytes.Repeat([]byte{9}, 32)},
		HTTPClient:            &http.Client{Transport: e.tr, Timeout: 20 * time.Second},
		Transport:             e.tr,
		Logger:                slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		AuditLogger:           slog.New(slog.NewJSONHandler(e.audit, nil)),
	}
	if mod != nil {
		mod(&e.cfg)
	}
	app, err := hybrid.New(e.cfg)
	require.NoError(t, err)
	e.app = app
	t.Cleanup(func() {
		require.NoError(t, app.Close())
		e.tr.CloseIdleConnections()
	})
	h := e.routes()
	handler.Store(&h)
	return e
}

func (e *env) apiURL() string { return e.idp.URL() + "/api/domain/odata/Crm_Sales_Customers?$top=1" }

// callAPI sends a GET through hc and returns the caller the Domain API saw.
func callAPI(ctx context.Context, hc *http.Client, u string) (string, int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return "", 0, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return "", 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.Header.Get("X-Erpnet-Caller"), resp.StatusCode, nil
}

// routes is the test portal.
func (e *env) routes() http.Handler {
	app := e.app
	mux := http.NewServeMux()
	mux.Handle("/signin", app.SignIn())
	mux.Handle("/callback", app.Callback())
	mux.Handle("/signout", app.SignOut())
	mux.HandleFunc("/bye", func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "bye") })
	mux.Handle("/me", app.WithUser(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, ok := hybrid.UserFrom(r.Context())
		if !ok {
			http.Error(w, "no user in context", http.StatusInternalServerError)
			return
		}
		_, _ = io.WriteString(w, u.Session().Subject)
	})))
	// /me2 resolves the user with App.User behind WithUser.
	mux.Handle("/me2", app.WithUser(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, err := app.User(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		caller, _, err := callAPI(r.Context(), u.UserClient(), e.apiURL())
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		_, _ = io.WriteString(w, u.Session().Subject+" "+caller)
	})))
	// /customers reads as the signed-in user.
	mux.Handle("/customers", app.WithUser(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, _ := hybrid.UserFrom(r.Context())
		caller, status, err := callAPI(r.Context(), u.UserClient(), e.apiURL())
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		w.Header().Set("X-Caller", caller)
		w.WriteHeader(status)
	})))
	// /import runs as the System User on behalf of the signed-in user.
	mux.Handle("POST /import", app.WithUser(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var caller string
		var status int
		err := app.RunAsService(r.Context(), r, "import", func(ctx context.Context, svc hybrid.ServiceAPI) error {
			var err error
			caller, status, err = callAPI(ctx, svc.ServiceClient(), e.apiURL())
			return err
		})
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		w.Header().Set("X-Caller", caller)
		w.WriteHeader(status)
	})))
	// /leak/... try to send the service token to the browser.
	serviceToken := func(r *http.Request) string {
		tok, err := app.Service().ServiceTokenSource().Token()
		if err != nil {
			panic(err)
		}
		return tok.AccessToken
	}
	mux.Handle("/leak/cookie", app.WithUser(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.SetCookie(w, &http.Cookie{Name: "oops", Value: serviceToken(r), Path: "/"})
		_, _ = io.WriteString(w, "hello")
	})))
	mux.Handle("/leak/body", app.WithUser(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "<p>token: "+serviceToken(r)+"</p>")
	})))
	mux.Handle("/leak/split", app.WithUser(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok := serviceToken(r)
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, strings.Repeat("x", 5000)+"<script>var t='"+tok[:len(tok)/2])
		http.NewResponseController(w).Flush()
		_, _ = io.WriteString(w, tok[len(tok)/2:]+"';</script>")
	})))
	mux.Handle("/leak/redirect", app.GuardResponses(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/x?t="+serviceToken(r), http.StatusFound)
	})))
	// A 103 Early Hints response first, then the token in a cookie.
	mux.Handle("/leak/after103", app.GuardResponses(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</app.css>; rel=preload; as=style")
		w.WriteHeader(http.StatusEarlyHints)
		http.SetCookie(w, &http.Cookie{Name: "oops", Value: serviceToken(r), Path: "/"})
		_, _ = io.WriteString(w, "hello")
	})))
	// The token in the headers of the 103 itself.
	mux.Handle("/leak/in103", app.GuardResponses(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</app.css?t="+serviceToken(r)+">; rel=preload; as=style")
		w.WriteHeader(http.StatusEarlyHints)
		w.Header().Del("Link")
		_, _ = io.WriteString(w, "hello")
	})))
	// The token in a declared trailer, set after the body.
	mux.Handle("/leak/trailer", app.GuardResponses(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Checksum")
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, "hello")
		http.NewResponseController(w).Flush()
		w.Header().Set("X-Checksum", serviceToken(r))
	})))
	// The token in an undeclared trailer (http.TrailerPrefix).
	mux.Handle("/leak/prefixtrailer", app.GuardResponses(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "hello")
		http.NewResponseController(w).Flush()
		w.Header().Set(http.TrailerPrefix+"X-Late", serviceToken(r))
	})))
	// The token in a cookie of a handler that writes nothing.
	mux.Handle("/leak/implicit", app.GuardResponses(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.SetCookie(w, &http.Cookie{Name: "oops", Value: serviceToken(r), Path: "/"})
	})))
	// A trailer without a token passes.
	mux.Handle("/trailer", app.GuardResponses(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Checksum")
		w.Header().Set("Link", "</app.css>; rel=preload; as=style")
		w.WriteHeader(http.StatusEarlyHints)
		_, _ = io.WriteString(w, "hello")
		w.Header().Set("X-Checksum", "abc")
		w.Header().Set(http.TrailerPrefix+"X-Late", "def")
	})))
	mux.Handle("/plain", app.GuardResponses(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, strings.Repeat("fine ", 1000))
	})))
	return mux
}

// browser is a user agent with its own cookie jar; it does not follow
// redirects, and it records every Set-Cookie it receives.
type browser struct {
	e          *env
	jar        *cookiejar.Jar
	hc         *http.Client
	tr         http.RoundTripper
	mu         sync.Mutex
	setCookies []string
}

func (e *env) browser() *browser {
	jar, _ := cookiejar.New(nil)
	tr := &http.Transport{MaxIdleConnsPerHost: 16}
	e.t.Cleanup(tr.CloseIdleConnections)
	b := &browser{e: e, jar: jar, tr: tr}
	b.hc = &http.Client{Jar: jar, Transport: b, Timeout: 20 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return b
}

// RoundTrip records the response's Set-Cookie headers.
func (b *browser) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := b.tr.RoundTrip(req)
	if err == nil {
		b.mu.Lock()
		b.setCookies = append(b.setCookies, resp.Header.Values("Set-Cookie")...)
		b.mu.Unlock()
	}
	return resp, err
}

type response struct {
	status  int
	header  http.Header
	trailer http.Header
	info    []http.Header // the headers of 1xx responses
	body    string
	err     error
}

// do sends a request; errors are returned in the response (for use from
// goroutines).
func (b *browser) do(method, u string, hdr http.Header) response {
	req, err := http.NewRequest(method, u, nil)
	if err != nil {
		return response{err: err}
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	if req.Header.Get("Accept") == "" {
		req.Header.Set("Accept", "text/html,*/*;q=0.8")
	}
	var info []http.Header
	req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
		Got1xxResponse: func(_ int, h textproto.MIMEHeader) error {
			info = append(info, http.Header(h).Clone())
			return nil
		},
	}))
	resp, err := b.hc.Do(req)
	if err != nil {
		return response{err: err, info: info}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return response{status: resp.StatusCode, header: resp.Header, trailer: resp.Trailer, info: info, body: string(body), err: err}
}

func (b *browser) get(u string) response {
	b.e.t.Helper()
	r := b.do(http.MethodGet, u, nil)
	require.NoError(b.e.t, r.err)
	return r
}

// signIn signs user in through the App's handlers and the identity server's
// sign-in form (the test kit's one sign-in driver), then follows the
// callback.
func (b *browser) signIn(user string) {
	e, t := b.e, b.e.t
	t.Helper()
	cb, err := erpnetctl.Of(e.idp).Authorize(b.hc, e.srv.URL+"/signin", user)
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(cb.String(), e.srv.URL+"/callback?"), cb.String())
	r := b.get(cb.String())
	require.Equal(t, http.StatusSeeOther, r.status, r.body)
	require.Equal(t, user, b.get(e.srv.URL+"/me").body)
}

// cookieValues returns every cookie value the browser holds or received.
func (b *browser) cookieValues() []string {
	var out []string
	seen := map[string]bool{}
	for _, base := range []string{b.e.srv.URL, b.e.idp.URL()} {
		for _, path := range []string{"/", "/callback", "/id/", "/id/account/"} {
			u, _ := url.Parse(base + path)
			for _, c := range b.jar.Cookies(u) {
				if kv := c.Name + "=" + c.Value; !seen[kv] {
					seen[kv] = true
					out = append(out, kv)
				}
			}
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return append(out, b.setCookies...)
}

// userToken returns the access token of the browser's user, through the
// App (as a handler would).
func (b *browser) userToken() string {
	b.e.t.Helper()
	ua, err := b.e.app.User(httpRequestFor(b))
	require.NoError(b.e.t, err)
	tok, err := ua.UserTokenSource().Token()
	require.NoError(b.e.t, err)
	return tok.AccessToken
}

// sessionOf returns the browser's user session, through the App.
func (b *browser) sessionOf() *authcode.Session {
	b.e.t.Helper()
	ua, err := b.e.app.User(httpRequestFor(b))
	require.NoError(b.e.t, err)
	return ua.Session()
}

// serviceToken returns the App's current service token.
func (e *env) serviceToken() string {
	e.t.Helper()
	tok, err := e.app.Service().ServiceTokenSource().Token()
	require.NoError(e.t, err)
	return tok.AccessToken
}

// httpRequestFor returns a request carrying the browser's cookies for the
// App, as a handler would receive it.
func httpRequestFor(b *browser) *http.Request {
	req := httptest.NewRequest(http.MethodGet, b.e.srv.URL+"/", nil)
	u, _ := url.Parse(b.e.srv.URL + "/")
	for _, c := range b.jar.Cookies(u) {
		req.AddCookie(c)
	}
	return req
}

// closeRecorder is a request body that records Close.
type closeRecorder struct {
	io.Reader
	closed atomic.Bool
}

func (c *closeRecorder) Close() error { c.closed.Store(true); return nil }
