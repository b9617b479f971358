package authcode

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/erpnetgo/auth/authcode/internal/sessions"
	"github.com/erpnetgo/auth/erpnettest"
	"github.com/erpnetgo/auth/internal/erpnetctl"
	"github.com/erpnetgo/auth/internal/keylock"
	"github.com/erpnetgo/auth/internal/testutil"
)

func TestMain(m *testing.M) { testutil.VerifyNoLeaks(m) }

// Trusted Applications registered with the test identity server, besides
// the demo ones.
const (
	webID     = "com.example.test/web"
	webSecret = "web-s3cret:%+/="
	spaID     = "com.example.test/spa"
	testUser  = "alice" // erpnettest.Demo.Alice
)

// testClock is the Client's clock in tests: real time plus an offset that
// env.advance moves together with the identity server's clock.
type testClock struct{ off atomic.Int64 }

func (c *testClock) Now() time.Time { return time.Now().Add(time.Duration(c.off.Load())) }

// recorder is a RoundTripper that records token-endpoint requests and can
// rewrite the discovery document.
type recorder struct {
	base      http.RoundTripper
	mu        sync.Mutex
	tokenReqs []recordedReq
	// rewriteDiscovery, if set, edits the discovery document.
	rewriteDiscovery func(map[string]any)
	// around, if set, is called with each token request's form before it
	// is sent and after its answer came back (sent true).
	around atomic.Pointer[func(ctx context.Context, form url.Values, sent bool)]
}

// onToken sets the recorder's around hook (nil removes it).
func (r *recorder) onToken(f func(ctx context.Context, form url.Values, sent bool)) {
	if f == nil {
		r.around.Store(nil)
		return
	}
	r.around.Store(&f)
}

type recordedReq struct {
	URL    string
	Header http.Header
	Form   url.Values
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	var around func(context.Context, url.Values, bool)
	var form url.Values
	if req.Method == http.MethodPost && req.Body != nil && (strings.HasSuffix(req.URL.Path, "/token") || strings.Contains(req.URL.Path, "revoc")) {
		b, _ := io.ReadAll(req.Body)
		req.Body.Close()
		form, _ = url.ParseQuery(string(b))
		r.mu.Lock()
		r.tokenReqs = append(r.tokenReqs, recordedReq{URL: req.URL.String(), Header: req.Header.Clone(), Form: form})
		r.mu.Unlock()
		req.Body = io.NopCloser(bytes.NewReader(b))
		if f := r.around.Load(); f != nil && strings.HasSuffix(req.URL.Path, "/token") {
			around = *f
			around(req.Context(), form, false)
		}
	}
	resp, err := r.base.RoundTrip(req)
	if around != nil {
		around(req.Context(), form, true)
	}
	if err == nil && r.rewriteDiscovery != nil && strings.HasSuffix(req.URL.Path, "/.well-known/openid-configuration") {
		var doc map[string]any
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if json.Unmarshal(b, &doc) == nil {
			r.rewriteDiscovery(doc)
			b, _ = json.Marshal(doc)
		}
		resp.Body = io.NopCloser(bytes.NewReader(b))
		resp.ContentLength = int64(len(b))
		resp.Header.Del("Content-Length")
	}
	return resp, err
}

func (r *recorder) requests() []recordedReq {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]recordedReq(nil), r.tokenReqs...)
}

// env is one identity server, one app (a Client mounted on a test server)
// and the knobs tests turn.
type env struct {
	t     testing.TB
	idp   *erpnettest.Server
	app   *httptest.Server
	c     *Client
	cfg   Config
	store Store // Config.Store, or the Client's own memory store
	clk   *testClock
	rec   *recorder
	tr    *http.Transport
	logs  *testutil.SyncBuffer
	// api, when set, replaces the Domain API URL the /api route calls.
	api string
}

type envOption func(*envSetup)

type envSetup struct {
	idp     func(*erpnettest.Config)
	client  func(*Config)
	public  bool
	store   func(*mapStore) Store
	rewrite func(map[string]any)
}

func withIDP(f func(*erpnettest.Config)) envOption { return func(s *envSetup) { s.idp = f } }
func withClient(f func(*Config)) envOption         { return func(s *envSetup) { s.client = f } }
func withPublicClient() envOption                  { return func(s *envSetup) { s.public = true } }

// withStore gives the Client a Store of its own (as Redis is), made by f
// from a map store on the test clock; without it the Client uses its
// default memory store, as in production.
func withStore(f func(*mapStore) Store) envOption {
	return func(s *envSetup) { s.store = f }
}

// withSharedStore gives the Client a map store that other Clients made
// from e.cfg ("replicas") share.
func withSharedStore() envOption { return withStore(func(m *mapStore) Store { return m }) }
func withDiscoveryRewrite(f func(map[string]any)) envOption {
	return func(s *envSetup) { s.rewrite = f }
}

// newEnv starts an identity server and an app on 127.0.0.1.
func newEnv(t testing.TB, opts ...envOption) *env {
	t.Helper()
	var setup envSetup
	for _, o := range opts {
		o(&setup)
	}
	e := &env{t: t, clk: &testClock{}, logs: &testutil.SyncBuffer{}}
	var handler atomic.Pointer[http.Handler]
	e.app = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		(*handler.Load()).ServeHTTP(w, r)
	}))
	t.Cleanup(e.app.Close)

	dcfg := erpnettest.Config{Apps: []erpnettest.App{
		{ID: webID, Secret: webSecret, RedirectURIs: []string{e.app.URL + "/callback"}, PostLogoutURIs: []string{e.app.URL + "/bye"}},
		{ID: spaID, RedirectURIs: []string{e.app.URL + "/callback"}, PostLogoutURIs: []string{e.app.URL + "/bye"}},
	}}
	if setup.idp != nil {
		setup.idp(&dcfg)
	}
	e.idp = erpnettest.NewServer(t, dcfg)
	erpnetctl.Of(e.idp).AutoSignIn(testUser)
	// Discovery documents are cached per authority for the process; a port
	// reused by a later test must not see this server's (or an earlier
	// one's) document.

	e.tr = &http.Transport{}
	e.rec = &recorder{base: e.tr, rewriteDiscovery: setup.rewrite}
	if setup.store != nil {
		e.store = setup.store(newMapStore(e.clk.Now))
	}
	e.cfg = Config{
		Authority:             e.idp.URL(),
		ClientID:              webID,
		ClientSecret:          webSecret,
		RedirectURL:           e.app.URL + "/callback",
		PostLogoutRedirectURL: e.app.URL + "/bye",
		Store:                 e.store,
		Keys:                  [][]byte{bytes.Repeat([]byte{7}, 32)},
		HTTPClient:            &http.Client{Transport: e.rec, Timeout: 20 * time.Second},
		Logger:                slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Now:                   e.clk.Now,
	}
	if setup.public {
		e.cfg.ClientID, e.cfg.ClientSecret = spaID, ""
	}
	if setup.client != nil {
		setup.client(&e.cfg)
	}
	c, err := New(e.cfg)
	require.NoError(t, err)
	e.c = c
	if e.store == nil {
		e.store = c.sessions.Store()
	}
	t.Cleanup(func() {
		require.NoError(t, c.Close())
		e.tr.CloseIdleConnections()
	})
	h := e.routes(c)
	handler.Store(&h)
	return e
}

// routes is the test app.
func (e *env) routes(c *Client) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/signin", c.SignIn())
	mux.Handle("/callback", c.Callback())
	mux.Handle("/signout", c.SignOut())
	mux.HandleFunc("/bye", func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "bye") })
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "home") })
	mux.Handle("/me", c.RequireUser(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := SessionFromContext(r.Context())
		_ = json.NewEncoder(w).Encode(map[string]any{"sub": s.Subject, "name": s.Name, "email": s.Email, "path": r.URL.RequestURI()})
	})))
	mux.Handle("/api", c.RequireUser(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := SessionFromContext(r.Context())
		target := e.idp.URL() + "/api/domain/odata/Crm_Sales_Customers?$top=2"
		if e.api != "" {
			target = e.api
		}
		resp, err := c.UserClient(r.Context(), s).Get(target)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		w.Header().Set("X-Caller", resp.Header.Get("X-Erpnet-Caller"))
		w.WriteHeader(resp.StatusCode)
	})))
	return mux
}

// advance moves the Client's and the identity server's clocks together
// (the server's Advance fires what the move made due on every clock).
func (e *env) advance(d time.Duration) {
	e.clk.off.Add(int64(d))
	e.idp.Advance(d)
}

// browser is a user agent with its own cookie jar that does not follow
// redirects.
type browser struct {
	t   testing.TB
	jar *cookiejar.Jar
	hc  *http.Client
}

func (e *env) browser() *browser {
	jar, _ := cookiejar.New(nil)
	tr := &http.Transport{}
	e.t.Cleanup(tr.CloseIdleConnections)
	return &browser{t: e.t, jar: jar, hc: &http.Client{Jar: jar, Transport: tr, Timeout: 20 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

type response struct {
	*http.Response
	body string
}

func (b *browser) do(method, u string, hdr http.Header) *response {
	b.t.Helper()
	req, err := http.NewRequest(method, u, nil)
	require.NoError(b.t, err)
	for k, v := range hdr {
		req.Header[k] = v
	}
	if req.Header.Get("Accept") == "" {
		req.Header.Set("Accept", "text/html,application/xhtml+xml,*/*;q=0.8")
	}
	resp, err := b.hc.Do(req)
	require.NoError(b.t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(b.t, err)
	return &response{Response: resp, body: string(body)}
}

func (b *browser) get(u string) *response { b.t.Helper(); return b.do(http.MethodGet, u, nil) }

// startSignIn asks the app to sign in and returns the authorize URL.
func (e *env) startSignIn(b *browser, returnTo string) string {
	e.t.Helper()
	u := e.app.URL + "/signin"
	if returnTo != "" {
		u += "?" + url.Values{"return_to": {returnTo}}.Encode()
	}
	r := b.get(u)
	require.Equal(e.t, http.StatusFound, r.StatusCode, r.body)
	loc := r.Header.Get("Location")
	require.True(e.t, strings.HasPrefix(loc, e.idp.Authority()+"/connect/authorize?"), loc)
	return loc
}

// authorize sends the browser to the identity server (auto sign-in) and
// returns the callback URL it redirects to.
func (e *env) authorize(b *browser, authURL string) string {
	e.t.Helper()
	r := b.get(authURL)
	require.Equal(e.t, http.StatusFound, r.StatusCode, r.body)
	loc := r.Header.Get("Location")
	require.True(e.t, strings.HasPrefix(loc, e.app.URL+"/callback?"), loc)
	return loc
}

// signIn runs the whole flow and returns the callback's response.
func (e *env) signIn(b *browser, returnTo string) *response {
	e.t.Helper()
	return b.get(e.authorize(b, e.startSignIn(b, returnTo)))
}

// mustSignIn signs in and checks the redirect back to returnTo.
func (e *env) mustSignIn(b *browser, returnTo string) {
	e.t.Helper()
	r := e.signIn(b, returnTo)
	require.Equal(e.t, http.StatusSeeOther, r.StatusCode, r.body)
	want := returnTo
	if want == "" {
		want = "/"
	}
	require.Equal(e.t, want, r.Header.Get("Location"))
}

// session returns the browser's Session as the Client sees it.
func (e *env) session(b *browser) *Session {
	e.t.Helper()
	s, err := e.sessionErr(b)
	require.NoError(e.t, err)
	return s
}

func (e *env) sessionErr(b *browser) (*Session, error) {
	return e.sessionWith(e.c, b)
}

func (e *env) sessionWith(c *Client, b *browser) (*Session, error) {
	req := httptest.NewRequest(http.MethodGet, e.app.URL+"/", nil)
	u, _ := url.Parse(e.app.URL + "/")
	for _, ck := range b.jar.Cookies(u) {
		req.AddCookie(ck)
	}
	return c.UserSession(req)
}

// record loads the session's record from the store.
func (e *env) record(s *Session) *sessions.Record {
	e.t.Helper()
	b, err := e.store.Load(context.Background(), s.sn.Key)
	require.NoError(e.t, err)
	rec, err := sessions.Decode(b)
	require.NoError(e.t, err)
	return rec
}

// sessionsInStore counts stored sessions.
func (e *env) sessionsInStore() int {
	keys := e.c.sessions.MemoryKeys()
	if ms, ok := e.store.(interface{ keys() []string }); ok {
		keys = ms.keys()
	}
	n := 0
	for _, k := range keys {
		if strings.Contains(k, "/session/") {
			n++
		}
	}
	return n
}

// cookie returns the browser's cookie named name for the app's path.
func (b *browser) cookie(u, name string) *http.Cookie {
	pu, _ := url.Parse(u)
	for _, c := range b.jar.Cookies(pu) {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// mapStore is a Store of the test's own, shared by "replicas" the way
// Redis is (without a refresh lock), with its TTLs on the test clock.
type mapStore struct {
	now func() time.Time
	mu  sync.Mutex
	m   map[string]mapItem
}

type mapItem struct {
	v   []byte
	exp time.Time
}

func newMapStore(now func() time.Time) *mapStore { return &mapStore{now: now, m: map[string]mapItem{}} }

func (s *mapStore) get(key string) ([]byte, bool) {
	it, ok := s.m[key]
	if ok && !it.exp.IsZero() && !s.now().Before(it.exp) {
		delete(s.m, key)
		return nil, false
	}
	return it.v, ok
}

func (s *mapStore) Load(ctx context.Context, key string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.get(key)
	if !ok {
		return nil, ErrSessionNotFound
	}
	return bytes.Clone(v), nil
}

func (s *mapStore) put(key string, v []byte, ttl time.Duration) {
	it := mapItem{v: bytes.Clone(v)}
	if ttl > 0 {
		it.exp = s.now().Add(ttl)
	}
	s.m[key] = it
}

func (s *mapStore) Save(ctx context.Context, key string, v []byte, ttl time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.put(key, v, ttl)
	return nil
}

func (s *mapStore) Add(ctx context.Context, key string, v []byte, ttl time.Duration) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.get(key); ok {
		return false, nil
	}
	s.put(key, v, ttl)
	return true, nil
}

func (s *mapStore) Delete(ctx context.Context, key string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, key)
	return nil
}

func (s *mapStore) keys() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for k := range s.m {
		out = append(out, k)
	}
	return out
}

// flakyStore wraps a map store with switchable failures and an optional
// hook in Save.
type flakyStore struct {
	*mapStore
	failLoad atomic.Bool
	failSave atomic.Bool
	saves    atomic.Int32
	onSave   func(key string)
}

var errStoreDown = errors.New("store is down (test)")

// signedInOnFlakyStore is an env whose Client keeps its sessions in a
// flakyStore, with a user signed in.
func signedInOnFlakyStore(t *testing.T) (*env, *flakyStore, *browser, *Session) {
	t.Helper()
	var fs *flakyStore
	e := newEnv(t, withStore(func(m *mapStore) Store {
		fs = &flakyStore{mapStore: m}
		return fs
	}))
	b := e.browser()
	e.mustSignIn(b, "")
	return e, fs, b, e.session(b)
}

func (f *flakyStore) Load(ctx context.Context, key string) ([]byte, error) {
	if f.failLoad.Load() {
		return nil, errStoreDown
	}
	return f.mapStore.Load(ctx, key)
}

func (f *flakyStore) Save(ctx context.Context, key string, v []byte, ttl time.Duration) error {
	if f.onSave != nil {
		f.onSave(key)
	}
	if f.failSave.Load() {
		return errStoreDown
	}
	f.saves.Add(1)
	return f.mapStore.Save(ctx, key, v, ttl)
}

// lockingStore is a map store shared between "replicas" that implements
// RefreshLocker with the SDK's per-key lock.
type lockingStore struct {
	*mapStore
	locks keylock.Map
	taken atomic.Int32
}

func (l *lockingStore) LockRefresh(ctx context.Context, key string) (func(), error) {
	unlock, err := l.locks.Lock(ctx, key)
	if err == nil {
		l.taken.Add(1)
	}
	return unlock, err
}

// logLine returns the log records that mention ref (an error page's
// reference), or "" when there are none.
func (e *env) logLine(ref string) string {
	var out []string
	for _, l := range strings.Split(e.logs.String(), "\n") {
		if strings.Contains(l, `"ref":"`+ref+`"`) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// assertNoGoErrorText checks that a page shows none of the SDK's error
// strings (they start with "authcode:" or "erpnet auth:").
func assertNoGoErrorText(t testing.TB, body string) {
	t.Helper()
	assert.NotContains(t, body, "authcode:")
	assert.NotContains(t, body, "erpnet auth:")
}
