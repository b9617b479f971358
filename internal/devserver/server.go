// Package devserver is a local OAuth 2.0 / OpenID Connect identity server that behaves like an
// ERP.net "Instance ID" (issuer <root>/id), plus a small Domain API (OData) stand-in, so the SDK
// can be developed, tested and demonstrated without an ERP.net instance.
//
// A Server is an http.Handler (New) or a listening server on 127.0.0.1 (Start, StartTest). It
// keeps everything in memory, signs RS256 JWTs with 2048-bit keys from a process-wide pool, and
// offers test controls: request counters, an adjustable clock (Advance), key rotation, fault
// injection, ID token tampering, reference tokens (PAT/SAT) and an audit of Domain API calls.
//
// Deliberate choices:
//   - PKCE (S256) is required for every authorization request, confidential clients included.
//   - Refresh tokens rotate on every use; a refresh token family has an absolute lifetime counted
//     from the code exchange (Config.RefreshTokenLifetime).
//   - Revoked JWT access tokens (code replay, refresh token reuse, revocation endpoint) and
//     access tokens of an ended sign-in are refused by the Domain API, userinfo and introspection.
//   - Every sign-in attempt has its own CSRF token and cookie, so sign-in forms open in several
//     tabs of one browser all work; the sign-in page lists the users and their passwords.
//   - A redirect or post-logout URI registered for http://127.0.0.1 or http://[::1] without a
//     port matches any port (RFC 8252 §7.3).
package devserver

import (
	"github.com/erpnetgo/auth/internal/clock"

	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Endpoint identifies one of the server's endpoints for Count and InjectFaults.
type Endpoint int

const (
	// Discovery is GET /id/.well-known/openid-configuration.
	Discovery Endpoint = iota
	// JWKS is GET /id/.well-known/openid-configuration/jwks.
	JWKS
	// Authorize is /id/connect/authorize.
	Authorize
	// Token is POST /id/connect/token.
	Token
	// Userinfo is /id/connect/userinfo.
	Userinfo
	// Revocation is POST /id/connect/revocation (RFC 7009).
	Revocation
	// Introspect is POST /id/connect/introspect (RFC 7662).
	Introspect
	// EndSession is /id/connect/endsession.
	EndSession
	// AutoDiscovery is GET /sys/auto-discovery.
	AutoDiscovery
	// DomainAPI is everything under /api/domain/odata/.
	DomainAPI
	// SignIn is POST /id/account/login, the HTML sign-in form's target.
	SignIn

	numEndpoints
)

var endpointNames = [numEndpoints]string{"Discovery", "JWKS", "Authorize", "Token", "Userinfo",
	"Revocation", "Introspect", "EndSession", "AutoDiscovery", "DomainAPI", "SignIn"}

// String returns the endpoint's name.
func (e Endpoint) String() string {
	if e >= 0 && e < numEndpoints {
		return endpointNames[e]
	}
	return fmt.Sprintf("Endpoint(%d)", int(e))
}

// Paths served.
const (
	pathDiscovery     = "/id/.well-known/openid-configuration"
	pathJWKS          = "/id/.well-known/openid-configuration/jwks"
	pathAuthorize     = "/id/connect/authorize"
	pathToken         = "/id/connect/token"
	pathUserinfo      = "/id/connect/userinfo"
	pathRevocation    = "/id/connect/revocation"
	pathIntrospect    = "/id/connect/introspect"
	pathEndSession    = "/id/connect/endsession"
	pathAutoDiscovery = "/sys/auto-discovery"
	pathSignIn        = "/id/account/login"
	pathODataRoot     = "/api/domain/odata"
)

// maxFormBytes limits every form body the server parses.
const maxFormBytes = 64 << 10

// Server is the development identity server. It is an http.Handler; all methods are safe for
// concurrent use.
type Server struct {
	cfg     Config
	log     *slog.Logger
	apps    map[string]*App
	users   map[string]*User
	baseURL string // fixed root URL, or "" to derive it from each request

	offset atomic.Int64 // Advance, in nanoseconds
	counts [numEndpoints]atomic.Int64
	panics atomic.Int64 // recovered handler panics (tests assert zero)
	active atomic.Int64 // handlers running now

	sessionsOpened atomic.Int64 // ERP.net sessions opened by the Domain API, ever
	rotated        sync.Map     // app id -> secret hash stored by SetSecret

	keysMu sync.RWMutex
	keys   []*signingKey // the last one is current
	keyIdx int           // pool index of the current key

	mu          sync.Mutex
	grantCounts map[string]int
	autoSignIn  string
	faults      map[Endpoint][]Fault
	tamper      *IDTokenTamper
	signins     map[string]*signin       // by sid
	cookies     map[string]string        // sha256(cookie) -> sid
	pending     map[string]*pendingLogin // by request id
	codes       map[string]*codeRecord   // by sha256(code)
	refresh     map[string]*refreshRecord
	families    map[string]*family
	access      map[string]*accessRecord // by jti
	reftokens   map[string]*refRecord    // by sha256(token)
	sessions    map[string]*apiSession   // by session key
	apiCalls    []APICall
	data        map[string][]map[string]any
	lastSweep   time.Time

	lifeMu    sync.RWMutex
	closed    bool
	inflight  sync.WaitGroup
	done      chan struct{}
	closeOnce sync.Once
	closeErr  error
	httpSrv   *http.Server
	serveDone chan struct{}
}

// New validates cfg and returns a Server that does not listen; serve it with any http.Server
// (or httptest). With an empty cfg.BaseURL the root URL is derived from each request's Host.
func New(cfg Config) (*Server, error) {
	cfg, apps, users, err := normalize(cfg)
	if err != nil {
		return nil, fmt.Errorf("devserver: invalid config: %w", err)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	key, err := pooledKey(0)
	if err != nil {
		return nil, fmt.Errorf("devserver: signing key: %w", err)
	}
	s := &Server{
		cfg:         cfg,
		log:         log,
		apps:        apps,
		users:       users,
		baseURL:     cfg.BaseURL,
		keys:        []*signingKey{key},
		grantCounts: map[string]int{},
		faults:      map[Endpoint][]Fault{},
		signins:     map[string]*signin{},
		cookies:     map[string]string{},
		pending:     map[string]*pendingLogin{},
		codes:       map[string]*codeRecord{},
		refresh:     map[string]*refreshRecord{},
		families:    map[string]*family{},
		access:      map[string]*accessRecord{},
		reftokens:   map[string]*refRecord{},
		sessions:    map[string]*apiSession{},
		data:        demoData(),
		done:        make(chan struct{}),
	}
	return s, nil
}

// Start creates a Server and serves it over plain HTTP on 127.0.0.1:0, or on the host:port of
// cfg.BaseURL when set, until Close. With an empty cfg.BaseURL (or port 0 in it), URL() reports
// the address actually listened on.
func Start(cfg Config) (*Server, error) {
	addr := "127.0.0.1:0"
	portZero := false
	if cfg.BaseURL != "" {
		b, err := normalizeBaseURL(cfg.BaseURL)
		if err != nil {
			return nil, fmt.Errorf("devserver: invalid config: %w", err)
		}
		u, _ := url.Parse(b)
		addr = u.Host
		portZero = u.Port() == "0"
		if u.Port() == "" {
			if u.Scheme == "https" {
				addr = net.JoinHostPort(u.Hostname(), "443")
			} else {
				addr = net.JoinHostPort(u.Hostname(), "80")
			}
		}
	}
	s, err := New(cfg)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("devserver: listen: %w", err)
	}
	switch {
	case s.baseURL == "":
		s.baseURL = "http://" + ln.Addr().String()
	case portZero: // "http://host:0": report the port actually chosen
		u, _ := url.Parse(s.baseURL)
		_, port, _ := net.SplitHostPort(ln.Addr().String())
		s.baseURL = u.Scheme + "://" + net.JoinHostPort(u.Hostname(), port)
	}
	s.cfg.BaseURL = s.baseURL
	s.httpSrv = &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	s.serveDone = make(chan struct{})
	go func() {
		defer close(s.serveDone)
		if err := s.httpSrv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("devserver: serve", "err", err)
		}
	}()
	s.log.Info("devserver: listening", "url", s.baseURL, "issuer", s.Issuer())
	return s, nil
}

// StartTest starts a Server for a test and registers Close with tb.Cleanup; it calls tb.Fatal
// on error.
func StartTest(tb testing.TB, cfg Config) *Server {
	tb.Helper()
	s, err := Start(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Errorf("devserver: close: %v", err)
		}
	})
	return s
}

// URL returns the instance root URL without a trailing slash ("" for a Server made by New with
// an empty BaseURL, whose root is derived per request).
func (s *Server) URL() string { return s.baseURL }

// Issuer returns URL()+"/id" ("" when URL() is "").
func (s *Server) Issuer() string {
	if s.baseURL == "" {
		return ""
	}
	return s.baseURL + "/id"
}

// Close stops the listener (if any), aborts injected latencies, waits for every in-flight
// request handler and returns. It is idempotent.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		close(s.done)
		if s.httpSrv != nil {
			if err := s.httpSrv.Close(); err != nil {
				s.closeErr = err
			}
			<-s.serveDone
		}
		s.lifeMu.Lock()
		s.closed = true
		s.lifeMu.Unlock()
		s.inflight.Wait()
	})
	return s.closeErr
}

// enter registers an in-flight handler; it reports false once Close has begun.
func (s *Server) enter() bool {
	s.lifeMu.RLock()
	defer s.lifeMu.RUnlock()
	if s.closed {
		return false
	}
	select {
	case <-s.done:
		return false
	default:
	}
	s.inflight.Add(1)
	return true
}

// Count returns how many requests reached ep since the last ResetCounts (faulted ones included).
func (s *Server) Count(ep Endpoint) int {
	if ep < 0 || ep >= numEndpoints {
		return 0
	}
	return int(s.counts[ep].Load())
}

// ResetCounts zeroes every endpoint counter and grant counter.
func (s *Server) ResetCounts() {
	for i := range s.counts {
		s.counts[i].Store(0)
	}
	s.mu.Lock()
	s.grantCounts = map[string]int{}
	s.mu.Unlock()
}

// GrantCount returns how many token requests carried grant_type=grantType, failed ones and
// faulted ones included.
func (s *Server) GrantCount(grantType string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.grantCounts[grantType]
}

// Advance moves the server's clock forward by d (on top of Config.Now). Every expiry decision
// uses this clock.
func (s *Server) Advance(d time.Duration) {
	if d > 0 {
		s.offset.Add(int64(d))
	}
	// Apps in this process whose clock follows this server's (Config.Now =
	// the server's Now) see what the move made due at once.
	clock.Poke()
}

func (s *Server) now() time.Time {
	var t time.Time
	if s.cfg.Now != nil {
		t = s.cfg.Now()
	} else {
		t = time.Now()
	}
	return t.Add(time.Duration(s.offset.Load()))
}

// base returns the instance root for r.
func (s *Server) base(r *http.Request) string {
	if s.baseURL != "" {
		return s.baseURL
	}
	host := r.Host
	if host == "" || len(host) > 255 || strings.IndexFunc(host, func(c rune) bool {
		return !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune(".-:[]", c))
	}) >= 0 {
		host = "127.0.0.1"
	}
	return "http://" + host
}

func (s *Server) issuer(r *http.Request) string { return s.base(r) + "/id" }

func route(path string) (Endpoint, bool) {
	switch path {
	case pathDiscovery:
		return Discovery, true
	case pathJWKS:
		return JWKS, true
	case pathAuthorize:
		return Authorize, true
	case pathToken:
		return Token, true
	case pathUserinfo:
		return Userinfo, true
	case pathRevocation:
		return Revocation, true
	case pathIntrospect:
		return Introspect, true
	case pathEndSession:
		return EndSession, true
	case pathAutoDiscovery:
		return AutoDiscovery, true
	case pathSignIn:
		return SignIn, true
	}
	if path == pathODataRoot || strings.HasPrefix(path, pathODataRoot+"/") {
		return DomainAPI, true
	}
	return 0, false
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !s.enter() {
		http.Error(w, "server closed", http.StatusServiceUnavailable)
		return
	}
	s.active.Add(1)
	defer func() {
		s.active.Add(-1)
		s.inflight.Done()
	}()
	start := time.Now()
	sw := &statusWriter{ResponseWriter: w}
	defer func() {
		if rec := recover(); rec != nil {
			if rec == http.ErrAbortHandler {
				panic(rec)
			}
			s.panics.Add(1)
			s.log.Error("devserver: handler panic", "path", r.URL.Path, "panic", fmt.Sprint(rec))
			if !sw.wrote {
				writeAPIError(sw, http.StatusInternalServerError, "InternalServerError", "internal server error")
			}
		}
		s.log.Debug("devserver: request", "method", r.Method, "path", r.URL.Path, "status", sw.status(), "duration", time.Since(start))
	}()

	if r.URL.Path == pathFavicon {
		serveFavicon(sw, r)
		return
	}
	ep, ok := route(r.URL.Path)
	if !ok || (ep == Revocation && s.cfg.DisableRevocation) {
		writeJSON(sw, http.StatusNotFound, map[string]any{"error": "not_found", "error_description": "no such endpoint"})
		return
	}
	s.counts[ep].Add(1)
	if ep == Token {
		s.countGrant(r)
	}
	if f, ok := s.nextFault(ep); ok {
		if s.applyFault(sw, r, ep, f) {
			return
		}
	}
	switch ep {
	case Discovery:
		s.handleDiscovery(sw, r)
	case JWKS:
		s.handleJWKS(sw, r)
	case Authorize:
		s.handleAuthorize(sw, r)
	case SignIn:
		s.handleSignIn(sw, r)
	case Token:
		s.handleToken(sw, r)
	case Userinfo:
		s.handleUserinfo(sw, r)
	case Revocation:
		s.handleRevocation(sw, r)
	case Introspect:
		s.handleIntrospect(sw, r)
	case EndSession:
		s.handleEndSession(sw, r)
	case AutoDiscovery:
		s.handleAutoDiscovery(sw, r)
	case DomainAPI:
		s.handleDomainAPI(sw, r)
	}
}

// countGrant buffers the token request body (bounded) to count its grant_type before any fault
// is applied, then restores the body for the handler.
func (s *Server) countGrant(r *http.Request) {
	grant := ""
	if r.Body != nil && r.Method == http.MethodPost {
		body, err := io.ReadAll(io.LimitReader(r.Body, maxFormBytes+1))
		_ = r.Body.Close()
		r.Body = io.NopCloser(bytes.NewReader(body))
		if err == nil && len(body) <= maxFormBytes {
			if vals, err := url.ParseQuery(string(body)); err == nil {
				grant = vals.Get("grant_type")
			}
		}
	}
	if len(grant) > 100 {
		grant = grant[:100]
	}
	s.mu.Lock()
	s.grantCounts[grant]++
	s.mu.Unlock()
}

// statusWriter records the status code; Unwrap lets http.ResponseController reach the
// underlying writer (Flush, Hijack).
type statusWriter struct {
	http.ResponseWriter
	code  int
	wrote bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.code = code
		w.wrote = true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if !w.wrote {
		w.code = http.StatusOK
		w.wrote = true
	}
	return w.ResponseWriter.Write(p)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *statusWriter) status() int {
	if !w.wrote {
		return http.StatusOK
	}
	return w.code
}

// --- small helpers ---

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go ≥ 1.24)
	return strings.ToUpper(hex.EncodeToString(b))
}

func randomToken(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b64url(b)
}

func hashKey(v string) string {
	sum := sha256.Sum256([]byte(v))
	return hex.EncodeToString(sum[:])
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		body = []byte(`{"error":{"code":"InternalServerError","message":"encoding failed"}}`)
	}
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

// parseForm parses a POST body (application/x-www-form-urlencoded, at most maxFormBytes).
func parseForm(w http.ResponseWriter, r *http.Request) (url.Values, error) {
	if r.Body == nil {
		return url.Values{}, nil
	}
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

// sleepCtx waits for d, the request's cancellation or the server's Close, whichever is first.
func (s *Server) sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	case <-s.done:
		return false
	}
}
