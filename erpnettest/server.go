package erpnettest

import (
	"cmp"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/erpnetgo/auth/internal/clock"
)

// Config adds Trusted Applications and users to a Server and tunes it. The zero value gives
// a server with the demo applications and users only.
type Config struct {
	// Apps are Trusted Applications registered besides the demo ones; one with a demo
	// application's ID replaces it.
	Apps []App
	// Users are users registered besides the demo ones; one with a demo user's name
	// replaces it.
	Users []User
	// Addr is the host:port to listen on; empty means 127.0.0.1 on a free port.
	Addr string
	// AccessTokenLifetime is the lifetime of access tokens; zero means 1 hour (as ERP.net).
	AccessTokenLifetime time.Duration
	// IDTokenLifetime is the lifetime of ID tokens; zero means 5 minutes (as ERP.net).
	IDTokenLifetime time.Duration
	// RefreshTokenLifetime is the absolute lifetime of a sign-in's refresh tokens, counted
	// from the sign-in; zero means 30 days for confidential and 24 hours for public
	// applications (as ERP.net).
	RefreshTokenLifetime time.Duration
	// LicenseCount caps the ERP.net API sessions open at once on the Domain API; when all are
	// taken it answers 403 MaximumLicenseCountExceeded. Zero means unlimited.
	LicenseCount int
	// Logger receives the server's diagnostics (sign-ins, token issues, faults, sessions);
	// nil discards them. Secrets are never logged.
	Logger *slog.Logger
	// OmitIss leaves the RFC 9207 iss parameter out of authorization responses (and its
	// advertisement out of discovery), as ERP.net versions that predate it do. By default the
	// server sends it, so an app can refuse another instance's code before redeeming it.
	OmitIss bool
}

// App is a Trusted Application: an OAuth client registration.
type App struct {
	// ID is the client_id, the application's ApplicationUri, e.g. "com.example/app".
	ID string
	// Name is the display name shown on the sign-in page; empty means ID.
	Name string
	// Secret is the client secret of a confidential application; empty makes the
	// application public (it must not send a secret, and PKCE protects it).
	Secret string
	// RedirectURIs are the sign-in redirect URIs, matched exactly and case-sensitively,
	// except that http://127.0.0.1/<path> or http://[::1]/<path> (no port) matches any port.
	RedirectURIs []string
	// PostLogoutURIs are the post-logout redirect URIs, matched like RedirectURIs.
	PostLogoutURIs []string
	// SystemUser, when set, allows the System User: client credentials tokens and SATs of
	// this application act as this user.
	SystemUser string
	// Scopes are the allowed scopes, from openid, profile, read, update, offline_access and
	// DomainApi; empty allows them all.
	Scopes []string
	// AccessTokenLifetime overrides Config.AccessTokenLifetime for this application.
	AccessTokenLifetime time.Duration
	// RefreshTokenLifetime overrides Config.RefreshTokenLifetime for this application.
	RefreshTokenLifetime time.Duration
	// Disabled makes the identity server refuse the application (ERP.net's IsEnabled off).
	Disabled bool
}

// User is an ERP.net user who signs in with a password.
type User struct {
	// Username is the sign-in name and the sub claim of the user's tokens.
	Username string
	// Password is what the sign-in form accepts.
	Password string
	// Name is the display name (the name claim).
	Name string
	// Email is the e-mail address (the email claim).
	Email string
	// Administrator marks an ERP.net administrator.
	Administrator bool
}

// The demo registrations; Demo names them for users.
const (
	webAppID, webAppSecret = "com.example/webapp", "webapp-secret"
	workerID, workerSecret = "com.example/worker", "w0rker:s3cret%+/="
	cliID                  = "com.example/cli"
)

// Demo names the demo Trusted Applications and users every Server has (see the package
// documentation for what each may do). Treat it as read-only: changing it changes nothing
// on any Server.
var Demo = struct {
	// WebAppID and WebAppSecret are a confidential web application with a System User.
	WebAppID, WebAppSecret string
	// WorkerID and WorkerSecret are a confidential background service (client credentials).
	WorkerID, WorkerSecret string
	// CLIID is a public native application (loopback redirect, no secret).
	CLIID string
	// Alice is an administrator; AlicePassword is her password.
	Alice, AlicePassword string
	// Bob is an ordinary user; BobPassword is his password.
	Bob, BobPassword string
}{
	WebAppID: webAppID, WebAppSecret: webAppSecret,
	WorkerID: workerID, WorkerSecret: workerSecret,
	CLIID: cliID,
	Alice: "alice", AlicePassword: "alice-password",
	Bob: "bob", BobPassword: "bob-password",
}

// demoApps and demoUsers are what every Server starts with.
func demoApps() []App {
	return []App{
		{ID: webAppID, Name: "Example Web App", Secret: webAppSecret, SystemUser: "portal-system",
			RedirectURIs: []string{"http://127.0.0.1:8080/callback", "http://localhost:8080/callback", "http://127.0.0.1/callback"},
			PostLogoutURIs: []string{"http://127.0.0.1:8080/", "http://localhost:8080/", "http://127.0.0.1/",
				"http://127.0.0.1/signed-out"}},
		{ID: workerID, Name: "Example Worker", Secret: workerSecret, SystemUser: "worker-system", Scopes: []string{"read", "update"}},
		{ID: cliID, Name: "Example CLI", RedirectURIs: []string{"http://127.0.0.1/callback"},
			Scopes: []string{"openid", "profile", "read", "update", "offline_access"}},
	}
}

func demoUsers() []User {
	return []User{
		{Username: "alice", Password: "alice-password", Name: "Alice Anderson", Email: "alice@example.com", Administrator: true},
		{Username: "bob", Password: "bob-password", Name: "Bob Brown", Email: "bob@example.com"},
	}
}

// Server is a running ERP.net-shaped identity server and Domain API. Its methods are safe
// for concurrent use.
type Server struct {
	url   string // the instance root
	cfg   Config // lifetimes defaulted
	apps  map[string]*App
	users []User // in the sign-in page's order
	log   *slog.Logger
	tb    testing.TB      // panicTB for a Server made by Start
	tr    *http.Transport // shared by the clients SignIn returns

	offset atomic.Int64   // Advance, in nanoseconds
	counts []atomic.Int64 // requests per endpoint
	panics atomic.Int64   // recovered handler panics (the server's own tests assert none)
	active atomic.Int64   // requests being served
	hashes sync.Map       // app ID -> sha256 of its current secret
	faults struct {       // queued per endpoint
		mu sync.Mutex
		q  map[int][]Fault
	}

	// The state, one part per endpoint family, each under its own lock. Locks nest only
	// in this order: codes, tokens, signins; keys, refs, api and ctl take no other.
	keys    keyRing
	signins signins
	codes   codes
	tokens  tokens
	refs    refTokens
	api     domainAPI
	ctl     control

	httpSrv   *http.Server
	ln        net.Listener
	done      chan struct{} // closed by Close: injected latencies end
	lifeMu    sync.RWMutex
	closed    bool
	inflight  sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

// NewServer starts a Server for a test on 127.0.0.1 and closes it with tb.Cleanup. At most
// one Config may be given; none means the demo applications and users only. A bad Config
// or a failure to listen ends the test with tb.Fatal. Programs and Example functions use
// Start instead.
func NewServer(tb testing.TB, cfg ...Config) *Server {
	if tb == nil {
		panic("erpnettest: NewServer needs a testing.TB; without one use Start and Close")
	}
	tb.Helper()
	if len(cfg) > 1 {
		tb.Fatalf("erpnettest: NewServer takes at most one Config, got %d", len(cfg))
	}
	s, err := Start(append(cfg, Config{})[0])
	if err != nil {
		tb.Fatal(err)
	}
	s.tb = tb
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Errorf("erpnettest: close: %v", err)
		}
	})
	return s
}

// Start starts a Server that runs until Close, for programs and Example functions; tests
// use NewServer. Methods of a Server made by Start panic where those of one made by
// NewServer would fail the test.
func Start(cfg Config) (*Server, error) {
	s, err := newServer(cfg)
	if err != nil {
		return nil, fmt.Errorf("erpnettest: invalid config: %w", err)
	}
	ln, err := net.Listen("tcp", cmp.Or(cfg.Addr, "127.0.0.1:0"))
	if err != nil {
		return nil, fmt.Errorf("erpnettest: listen: %w", err)
	}
	s.url, s.ln = "http://"+ln.Addr().String(), ln
	s.httpSrv = &http.Server{Handler: http.HandlerFunc(s.serve), ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelDebug)}
	go func() { _ = s.httpSrv.Serve(ln) }()
	s.log.Info("erpnettest: listening", "url", s.url)
	return s, nil
}

// newServer checks cfg and builds a Server that does not listen yet.
func newServer(cfg Config) (*Server, error) {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if cfg.AccessTokenLifetime < 0 || cfg.IDTokenLifetime < 0 || cfg.RefreshTokenLifetime < 0 {
		bad("token lifetimes must not be negative")
	}
	if cfg.LicenseCount < 0 {
		bad("LicenseCount must not be negative")
	}
	cfg.AccessTokenLifetime = cmp.Or(cfg.AccessTokenLifetime, time.Hour)
	cfg.IDTokenLifetime = cmp.Or(cfg.IDTokenLifetime, 5*time.Minute)
	s := &Server{cfg: cfg, apps: map[string]*App{}, tb: panicTB{}, log: cmp.Or(cfg.Logger, slog.New(slog.DiscardHandler)),
		done: make(chan struct{}), tr: &http.Transport{MaxIdleConnsPerHost: 8}, counts: make([]atomic.Int64, len(endpoints))}
	demo := demoApps()
	for i, a := range append(demo, cfg.Apps...) {
		i -= len(demo)
		switch {
		case a.ID == "":
			bad("Apps[%d]: ID is required", i)
			continue
		case strings.ContainsAny(a.ID, " \t\r\n"):
			bad("Apps[%d]: invalid ID %q", i, a.ID)
			continue
		case a.AccessTokenLifetime < 0 || a.RefreshTokenLifetime < 0:
			bad("Apps[%d]: token lifetimes must not be negative", i)
		}
		for _, ru := range append(slices.Clone(a.RedirectURIs), a.PostLogoutURIs...) {
			if u, err := url.Parse(ru); err != nil || u.Scheme == "" || strings.Contains(ru, "#") {
				bad("Apps[%d]: invalid redirect URI %q (absolute URI without fragment required)", i, ru)
			}
		}
		for _, sc := range a.Scopes {
			if !slices.Contains(allScopes, sc) {
				bad("Apps[%d]: unknown scope %q", i, sc)
			}
		}
		a.RedirectURIs, a.PostLogoutURIs, a.Scopes = slices.Clone(a.RedirectURIs), slices.Clone(a.PostLogoutURIs), slices.Clone(a.Scopes)
		s.apps[a.ID] = &a
		if a.Secret != "" {
			s.hashes.Store(a.ID, hashOf(a.Secret))
		} else {
			s.hashes.Delete(a.ID)
		}
	}
	for i, u := range append(demoUsers(), cfg.Users...) {
		if u.Username == "" || strings.TrimSpace(u.Username) != u.Username {
			bad("Users[%d]: invalid Username %q", i-len(demoUsers()), u.Username)
			continue
		}
		if j := slices.IndexFunc(s.users, func(v User) bool { return v.Username == u.Username }); j >= 0 {
			s.users[j] = u
		} else {
			s.users = append(s.users, u)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	k, err := pooledKey(0)
	if err != nil {
		return nil, err
	}
	s.keys.keys, s.api.data, s.api.sessions = []*signingKey{k}, demoData(), map[string]*apiSession{}
	s.signins.bySID, s.signins.cookies, s.signins.pending = map[string]*signin{}, map[string]string{}, map[string]*pendingLogin{}
	s.codes.m, s.refs.m, s.faults.q, s.ctl.grants = map[string]*codeRecord{}, map[string]*refRecord{}, map[int][]Fault{}, map[string]int{}
	s.tokens.access, s.tokens.refresh, s.tokens.families = map[string]*accessRecord{}, map[string]*refreshRecord{}, map[string]*family{}
	return s, nil
}

// URL returns the instance root, e.g. "http://127.0.0.1:41234", without a trailing slash:
// what an app is given as its ERP.net instance (its Authority). ERP.net auto-discovery is
// at URL()+"/sys/auto-discovery".
func (s *Server) URL() string { return s.url }

// Authority returns the identity server's URL, URL()+"/id": the issuer of its tokens, with
// OpenID Connect discovery at Authority()+"/.well-known/openid-configuration".
func (s *Server) Authority() string { return s.url + "/id" }

// DomainAPI returns the Domain API (OData) service root, URL()+"/api/domain/odata/", with a
// trailing slash: append an entity set name such as "Crm_Sales_Customers".
func (s *Server) DomainAPI() string { return s.url + pathOData + "/" }

// Close stops the server, waits for the requests in flight and closes the idle connections
// of the clients SignIn returned. It is idempotent, and does nothing on a nil *Server;
// NewServer's cleanup calls it.
func (s *Server) Close() error {
	if s == nil {
		return nil
	}
	s.closeOnce.Do(func() {
		close(s.done)
		s.closeErr = s.httpSrv.Close()
		_ = s.ln.Close() // at once, even if Serve has not started
		s.lifeMu.Lock()
		s.closed = true
		s.lifeMu.Unlock()
		s.inflight.Wait()
		s.tr.CloseIdleConnections()
	})
	return s.closeErr
}

// Advance moves the server's clock forward by d: tokens, codes, sessions and reference
// tokens expire by this clock. It does not move the app's clock: an app that caches tokens
// by its own (its Config.Now) keeps using one it believes fresh until the server refuses
// it. Give the app and the server one clock: a func the app's Config.Now reads, moved
// together with Advance (README, "Testing your app").
func (s *Server) Advance(d time.Duration) {
	if d > 0 {
		s.offset.Add(int64(d))
	}
	// Apps in this process whose clock follows this server's see what the move made due.
	clock.Poke()
}

func (s *Server) now() time.Time { return time.Now().Add(time.Duration(s.offset.Load())) }

// SessionsOpened returns how many ERP.net API sessions the Domain API has opened since the
// server started. The first call with a token opens one; further calls with the same token
// reuse it until it has been idle for 20 minutes (a client credentials session ends after
// an hour). An app that fetches a token per request opens an API session per request.
func (s *Server) SessionsOpened() int { return int(s.api.opened.Load()) }

// Requests returns how many requests reached the named endpoint (see the package
// documentation for the names), faulted ones included.
func (s *Server) Requests(endpoint string) int {
	if i := s.endpoint(endpoint); i >= 0 {
		return int(s.counts[i].Load())
	}
	return 0
}

// fail reports a misuse of the Server: it fails the test, or panics (Start's panicTB).
func (s *Server) fail(format string, args ...any) {
	s.tb.Helper()
	s.tb.Fatalf("erpnettest: "+format, args...)
}

// panicTB is the testing.TB of a Server or Marketplace made without one: its Fatalf panics.
type panicTB struct{ testing.TB }

func (panicTB) Helper()                           {}
func (panicTB) Fatalf(format string, args ...any) { panic(fmt.Sprintf(format, args...)) }

// Paths served.
const (
	pathDiscovery  = "/id/.well-known/openid-configuration"
	pathJWKS       = pathDiscovery + "/jwks"
	pathAuthorize  = "/id/connect/authorize"
	pathToken      = "/id/connect/token"
	pathUserinfo   = "/id/connect/userinfo"
	pathRevocation = "/id/connect/revocation"
	pathIntrospect = "/id/connect/introspect"
	pathEndSession = "/id/connect/endsession"
	pathOData      = "/api/domain/odata"
	pathSignIn     = "/id/account/login"
	pathFavicon    = "/favicon.ico"
)

// endpoints are the server's endpoints, by the names the package documentation gives.
var endpoints = [...]struct {
	name, path string
	serve      func(*Server, http.ResponseWriter, *http.Request)
}{
	{"discovery", pathDiscovery, (*Server).discovery},
	{"jwks", pathJWKS, (*Server).jwks},
	{"authorize", pathAuthorize, (*Server).authorize},
	{"signin", pathSignIn, (*Server).signInForm},
	{"token", pathToken, (*Server).token},
	{"userinfo", pathUserinfo, (*Server).userinfo},
	{"revocation", pathRevocation, (*Server).revocation},
	{"introspect", pathIntrospect, (*Server).introspect},
	{"endsession", pathEndSession, (*Server).endSession},
	{"autodiscovery", "/sys/auto-discovery", (*Server).autoDiscovery},
	{"domainapi", pathOData, (*Server).domainAPI},
}

// endpoint returns the index of the named endpoint, or fails the test (-1).
func (s *Server) endpoint(name string) int {
	norm := strings.NewReplacer("-", "", "_", "").Replace(strings.ToLower(strings.TrimSpace(name)))
	for i, ep := range endpoints {
		if ep.name == norm {
			return i
		}
	}
	s.tb.Helper()
	s.fail("unknown endpoint %q (want discovery, jwks, authorize, signin, token, userinfo, revocation, introspect, endsession, autodiscovery or domainapi)", name)
	return -1
}

// route returns the index of the endpoint serving path, or -1.
func route(path string) int {
	for i, ep := range endpoints {
		if path == ep.path || ep.path == pathOData && strings.HasPrefix(path, pathOData+"/") {
			return i
		}
	}
	return -1
}

// serve counts a request, applies its endpoint's next fault and serves it.
func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	s.lifeMu.RLock()
	closed := s.closed
	if !closed {
		s.inflight.Add(1) // registered in flight, unless Close has begun
	}
	s.lifeMu.RUnlock()
	if closed {
		http.Error(w, "server closed", http.StatusServiceUnavailable)
		return
	}
	s.active.Add(1)
	defer func() { s.active.Add(-1); s.inflight.Done() }()
	sw := &statusWriter{ResponseWriter: w}
	defer func() {
		if rec := recover(); rec != nil {
			if rec == http.ErrAbortHandler {
				panic(rec)
			}
			s.panics.Add(1)
			s.log.Error("erpnettest: handler panic", "path", r.URL.Path, "panic", fmt.Sprint(rec))
			if sw.code == 0 {
				writeAPIError(sw, http.StatusInternalServerError, "InternalServerError", "internal server error")
			}
		}
		s.log.Debug("erpnettest: request", "method", r.Method, "path", r.URL.Path, "status", sw.status())
	}()
	if r.URL.Path == pathFavicon {
		// No icon, and no error in the browser console of every page the server shows.
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			sw.WriteHeader(http.StatusMethodNotAllowed)
			return
		}
		sw.Header().Set("Cache-Control", "public, max-age=86400")
		sw.WriteHeader(http.StatusNoContent)
		return
	}
	i := route(r.URL.Path)
	if i < 0 || endpoints[i].name == "revocation" && s.ctl.knobs().NoRevocation {
		writeJSON(sw, http.StatusNotFound, map[string]any{"error": "not_found", "error_description": "no such endpoint"})
		return
	}
	s.counts[i].Add(1)
	if endpoints[i].name == "token" {
		s.ctl.countGrant(r)
	}
	if f, ok := s.nextFault(i); ok && s.applyFault(sw, r, i, f) {
		return
	}
	endpoints[i].serve(s, sw, r)
}

// statusWriter records the status; Unwrap lets http.ResponseController reach the
// connection (Flush, Hijack).
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	w.code = cmp.Or(w.code, code)
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	w.code = cmp.Or(w.code, http.StatusOK)
	return w.ResponseWriter.Write(p)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *statusWriter) status() int { return cmp.Or(w.code, http.StatusOK) }

// --- small helpers ---

func randomHex(n int) string { return strings.ToUpper(hex.EncodeToString(randomBytes(n))) }

func randomToken(n int) string { return b64url(randomBytes(n)) }

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go ≥ 1.24)
	return b
}

func hashKey(v string) string {
	sum := sha256.Sum256([]byte(v))
	return hex.EncodeToString(sum[:])
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// writeAPIError writes the ERP.net error shape {"error":{"code":...,"message":...}}.
func writeAPIError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]any{"code": code, "message": msg}})
}

func noStore(w http.ResponseWriter) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
}

// methodNotAllowed answers 405 with Allow when r's method is not among allowed.
func methodNotAllowed(w http.ResponseWriter, r *http.Request, allowed ...string) bool {
	if slices.Contains(allowed, r.Method) {
		return false
	}
	w.Header().Set("Allow", strings.Join(allowed, ", "))
	writeJSON(w, http.StatusMethodNotAllowed, map[string]any{"error": "invalid_request", "error_description": "method not allowed"})
	return true
}

// maxFormBytes limits every form body the server parses.
const maxFormBytes = 64 << 10

// parseForm parses a POST body (application/x-www-form-urlencoded, at most maxFormBytes).
func parseForm(w http.ResponseWriter, r *http.Request) (url.Values, error) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		return nil, errors.New("malformed or oversized form body")
	}
	return r.PostForm, nil
}

// firstDuplicate returns the name of a parameter given more than once (RFC 6749 §3.1).
func firstDuplicate(v url.Values) string {
	for k, vals := range v {
		if len(vals) > 1 {
			return k
		}
	}
	return ""
}
