package instances_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/erpnetgo/auth/authcode"
	"github.com/erpnetgo/auth/erpnettest"
	"github.com/erpnetgo/auth/instances"
	"github.com/erpnetgo/auth/internal/erpnetctl"
	"github.com/erpnetgo/auth/internal/testutil"
)

func TestMain(m *testing.M) { testutil.VerifyNoLeaks(m) }

// clientID is the Trusted Application's ApplicationUri on every instance.
const clientID = "com.example/vendor"

// instance is one erpnettest server acting as a customer's instance, with
// the vendor's app registered under clientID and its own secret.
type instance struct {
	*erpnettest.Server
	secret string
}

func newInstance(t testing.TB, name string, cfg ...erpnettest.Config) *instance {
	t.Helper()
	var c erpnettest.Config
	if len(cfg) > 0 {
		c = cfg[0]
	}
	secret := name + "-secret:%+/="
	c.Apps = append(c.Apps, erpnettest.App{
		ID: clientID, Name: "Vendor app", Secret: secret, SystemUser: name + "-system",
		RedirectURIs: []string{"http://127.0.0.1/callback"}, PostLogoutURIs: []string{"http://127.0.0.1/"},
	})
	return &instance{Server: erpnettest.NewServer(t, c), secret: secret}
}

// app is the vendor's app under test: a Registry behind httptest.
type app struct {
	t    testing.TB
	reg  *instances.Registry
	ts   *httptest.Server
	logs *testutil.SyncBuffer
	wire *wire
}

// newApp serves a Registry made from cfg (RedirectURL, ClientID, Logger
// and HTTPClient filled in when empty).
func newApp(t testing.TB, cfg instances.Config) *app {
	t.Helper()
	ts := httptest.NewUnstartedServer(nil)
	a := &app{t: t, ts: ts, logs: new(testutil.SyncBuffer), wire: newWire()}
	if cfg.ClientID == "" {
		cfg.ClientID = clientID
	}
	if cfg.RedirectURL == "" {
		cfg.RedirectURL = "http://" + ts.Listener.Addr().String() + "/callback"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(a.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Transport: a.wire, Timeout: 30 * time.Second}
	}
	if cfg.Keys == nil {
		cfg.Keys = [][]byte{[]byte("0123456789abcdef0123456789abcdef")}
	}
	reg, err := instances.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	a.reg = reg
	mux := http.NewServeMux()
	mux.Handle("/signin", reg.SignIn())
	mux.Handle("/callback", reg.Callback())
	mux.Handle("/signout", reg.SignOut())
	mux.Handle("/me", reg.RequireUser(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := authcode.SessionFromContext(r.Context())
		_ = json.NewEncoder(w).Encode(map[string]string{"subject": s.Subject, "issuer": s.Issuer})
	})))
	mux.Handle("/customers", reg.RequireUser(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := authcode.SessionFromContext(r.Context())
		api, err := reg.DomainAPI(r.Context(), s)
		if err != nil {
			http.Error(w, "no domain api", http.StatusBadGateway)
			return
		}
		resp, err := reg.UserClient(r.Context(), s).Get(api + "Crm_Sales_Customers?$top=2")
		if err != nil {
			http.Error(w, "api call failed", http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, resp.Body)
	})))
	ts.Config.Handler = mux
	ts.Start()
	t.Cleanup(func() {
		ts.Close()
		if err := reg.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		a.wire.tr.CloseIdleConnections()
	})
	return a
}

func (a *app) url(path string) string { return a.ts.URL + path }

// signInURL is the app's sign-in address for an instance.
func (a *app) signInURL(in *instance) string {
	return a.url("/signin?instance=" + url.QueryEscape(in.URL()))
}

// signIn signs user in at in through the app and returns the browser.
func (a *app) signIn(in *instance, user string) *http.Client {
	a.t.Helper()
	c, err := in.SignIn(a.signInURL(in), user)
	if err != nil {
		a.t.Fatal(err)
	}
	return c
}

// me returns what /me says for browser c: its status and, when 200, the
// issuer and subject.
func (a *app) me(c *http.Client) (status int, issuer, subject string) {
	a.t.Helper()
	c2 := *c
	c2.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := c2.Get(a.url("/me"))
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	var v struct{ Issuer, Subject string }
	if resp.StatusCode == http.StatusOK {
		if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
			a.t.Fatal(err)
		}
	}
	return resp.StatusCode, v.Issuer, v.Subject
}

// wire records, per host, the client credentials of every request to a
// token or revocation endpoint the registry sends.
type wire struct {
	tr *http.Transport
	mu sync.Mutex
	// creds maps a host to the secrets sent there.
	creds map[string]map[string]bool
}

func newWire() *wire { return &wire{tr: &http.Transport{}, creds: map[string]map[string]bool{}} }

func (w *wire) RoundTrip(r *http.Request) (*http.Response, error) {
	if strings.HasSuffix(r.URL.Path, "/connect/token") || strings.HasSuffix(r.URL.Path, "/connect/revocation") {
		secret := ""
		if _, p, ok := r.BasicAuth(); ok {
			secret, _ = url.QueryUnescape(p)
		} else if r.Body != nil {
			b, _ := io.ReadAll(r.Body)
			r.Body = io.NopCloser(strings.NewReader(string(b)))
			q, _ := url.ParseQuery(string(b))
			secret = q.Get("client_secret")
		}
		w.mu.Lock()
		if w.creds[r.URL.Host] == nil {
			w.creds[r.URL.Host] = map[string]bool{}
		}
		w.creds[r.URL.Host][secret] = true
		w.mu.Unlock()
	}
	return w.tr.RoundTrip(r)
}

// secretsSentTo returns the secrets sent to in's token and revocation
// endpoints.
func (w *wire) secretsSentTo(in *instance) []string {
	u, _ := url.Parse(in.URL())
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	for s := range w.creds[u.Host] {
		out = append(out, s)
	}
	return out
}

// browser is a cookie jar client that does not follow redirects.
func browser(t testing.TB) *http.Client {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Jar: jar, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Transport:     &http.Transport{}}
}

// get sends a GET accepting HTML, as a browser navigates.
func get(t testing.TB, c *http.Client, u string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	req.Header.Set("Accept", "text/html")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

// startSignIn starts a sign-in at in in a fresh browser and returns the
// browser (holding the attempt's cookie) and the authorize redirect.
func (a *app) startSignIn(in *instance) (*http.Client, *url.URL) {
	a.t.Helper()
	b := browser(a.t)
	resp := get(a.t, b, a.signInURL(in))
	if resp.StatusCode != http.StatusFound {
		a.t.Fatalf("sign-in at %s: %s", in.URL(), resp.Status)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || !strings.HasPrefix(loc.String(), in.Authority()) {
		a.t.Fatalf("sign-in at %s redirected to %q", in.URL(), resp.Header.Get("Location"))
	}
	return b, loc
}

// authorize drives a sign-in at in up to the identity server's redirect
// back to the app, and returns that callback's query without calling it.
func (a *app) authorize(in *instance, user string) url.Values {
	a.t.Helper()
	return a.authorizeIn(browser(a.t), in, user)
}

// authorizeIn is authorize in browser b (a client that does not follow
// redirects), through the test kit's one sign-in driver.
func (a *app) authorizeIn(b *http.Client, in *instance, user string) url.Values {
	a.t.Helper()
	cb, err := erpnetctl.Of(in.Server).Authorize(b, a.signInURL(in), user)
	if err != nil {
		a.t.Fatal(err)
	}
	if !strings.HasPrefix(cb.String(), a.url("/callback")) {
		a.t.Fatalf("authorize at %s redirected to %s", in.URL(), cb.Redacted())
	}
	return cb.Query()
}

// fakeClock is a clock tests move by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock { return &fakeClock{t: time.Now()} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// mapStore is an authcode.Store (and RefreshLocker) over a map, whose keys
// a test can count.
type mapStore struct {
	mu    sync.Mutex
	m     map[string][]byte
	locks sync.Map // key → *sync.Mutex
}

func newMapStore() *mapStore { return &mapStore{m: map[string][]byte{}} }

func (s *mapStore) Load(_ context.Context, k string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[k]
	if !ok {
		return nil, authcode.ErrSessionNotFound
	}
	return append([]byte(nil), v...), nil
}

func (s *mapStore) Save(_ context.Context, k string, v []byte, _ time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[k] = append([]byte(nil), v...)
	return nil
}

func (s *mapStore) Add(_ context.Context, k string, v []byte, _ time.Duration) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.m[k]; ok {
		return false, nil
	}
	s.m[k] = append([]byte(nil), v...)
	return true, nil
}

func (s *mapStore) Delete(_ context.Context, k string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, k)
	return nil
}

func (s *mapStore) LockRefresh(ctx context.Context, k string) (func(), error) {
	v, _ := s.locks.LoadOrStore(k, new(sync.Mutex))
	mu := v.(*sync.Mutex)
	mu.Lock()
	return mu.Unlock, nil
}

// count returns how many keys contain sub.
func (s *mapStore) count(sub string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for k := range s.m {
		if strings.Contains(k, sub) {
			n++
		}
	}
	return n
}

// mapSecrets is a SecretStore over a map, shared by "replicas".
type mapSecrets struct {
	mu sync.Mutex
	m  map[string][]byte
}

func (s *mapSecrets) Load(_ context.Context, root string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m[root], nil
}

func (s *mapSecrets) Save(_ context.Context, root string, v []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[string][]byte{}
	}
	s.m[root] = append([]byte(nil), v...)
	return nil
}

func (s *mapSecrets) dump() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return fmt.Sprint(s.m)
}

// totalRequests sums in's requests over every endpoint.
func totalRequests(in *instance) int {
	n := 0
	for _, ep := range []string{"discovery", "jwks", "authorize", "signin", "token", "userinfo", "revocation", "introspect", "endsession", "autodiscovery", "domainapi"} {
		n += in.Requests(ep)
	}
	return n
}
