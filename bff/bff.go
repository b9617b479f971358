package bff

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"slices"
	"strings"

	"github.com/erpnetgo/auth"
	"github.com/erpnetgo/auth/authcode"
	"github.com/erpnetgo/auth/instances"
	"github.com/erpnetgo/auth/internal/config"
	"github.com/erpnetgo/auth/internal/hook"
	"github.com/erpnetgo/auth/internal/peek"
)

// Paths the handler serves.
const (
	pathLogin  = "/bff/login"
	pathUser   = "/bff/user"
	pathLogout = "/bff/logout"
	pathAPI    = "/bff/api/"
)

// csrfHeader is the anti-forgery header; its value must be "1".
const csrfHeader = "X-CSRF"

// defaultMethods are forwarded when Config.Methods is empty.
var defaultMethods = []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}

// Config configures the handler New returns.
type Config struct {
	// Client signs users in and calls the Domain API as them. Required
	// unless Instances is set; it needs a RedirectURL, and its Callback
	// handler stays mounted there. Its Hooks receive the BFF's events, its
	// Store keeps the sessions.
	Client *authcode.Client
	// Instances, instead of Client, serves the users of many ERP.net
	// instances (see package instances): /bff/login signs the user in at
	// the instance the registry's Resolve names (by default the "instance"
	// query parameter), and /bff/api/ forwards to the Domain API of the
	// instance the user signed in at. The registry's Callback stays
	// mounted at its RedirectURL.
	Instances *instances.Registry
	// Claims names the ID token claims /bff/user returns besides sub and
	// name, e.g. "email" or "preferred_username"; none by default. Only
	// what is listed reaches the browser.
	Claims []string
	// Methods are the HTTP methods /bff/api/ forwards; empty means GET,
	// HEAD, POST, PUT, PATCH and DELETE. Others are answered 405.
	Methods []string
	// Logger receives the BFF's diagnostics (refused requests, Domain API
	// failures); nil means the Client's Logger. Tokens, cookies and request
	// paths are never logged.
	Logger *slog.Logger
}

// handler is the BFF.
type handler struct {
	users   users
	ac      *peek.BFFClient
	log     *slog.Logger
	rep     *hook.Reporter
	claims  []string
	methods []string
	allow   string // the Allow header of a 405
	proxy   *httputil.ReverseProxy
}

// New validates cfg and returns the BFF's handler, to be mounted at /bff/
// (see the package documentation for its endpoints). It does no network
// I/O.
func New(cfg Config) (http.Handler, error) {
	var u users
	var client any
	field := "Client"
	switch {
	case cfg.Client != nil && cfg.Instances != nil:
		return nil, config.Err("Instances", "must be empty when Client is set (set only one)")
	case cfg.Client != nil:
		client = cfg.Client
	case cfg.Instances != nil:
		field, client = "Instances", peek.RegistryClient(cfg.Instances)
	default:
		return nil, config.Err("Client", "is required (the *authcode.Client that signs users in), or Instances")
	}
	ac, ok := peek.BFFOf(client)
	if !ok {
		return nil, config.Err(field, "is not usable (built by New?)")
	}
	if !ac.Web {
		return nil, config.Err(field, "needs a RedirectURL: the BFF signs users in with its SignIn and Callback handlers")
	}
	if cfg.Instances != nil {
		u = many{cfg.Instances}
	} else {
		u = single{cfg.Client, ac}
	}
	h := &handler{users: u, ac: ac, log: cfg.Logger, rep: ac.Report}
	if h.log == nil {
		h.log = ac.Logger
	}
	for i, c := range cfg.Claims {
		switch {
		case c == "" || strings.ContainsAny(c, " \t\r\n\""):
			return nil, config.Err(config.Index("Claims", i), "must be a claim name")
		case c == "logoutUrl" || c == "sessionExpiresIn":
			return nil, config.Err(config.Index("Claims", i), "names a field /bff/user sets itself")
		case c != "sub" && c != "name" && !slices.Contains(h.claims, c):
			h.claims = append(h.claims, c)
		}
	}
	h.methods = defaultMethods
	if len(cfg.Methods) > 0 {
		h.methods = nil
		for i, m := range cfg.Methods {
			if !validMethod(m) {
				return nil, config.Err(config.Index("Methods", i), "must be an upper-case HTTP method other than CONNECT, TRACE and TRACK")
			}
			if !slices.Contains(h.methods, m) {
				h.methods = append(h.methods, m)
			}
		}
	}
	h.allow = strings.Join(h.methods, ", ")
	h.proxy = h.newProxy()
	return h, nil
}

func validMethod(m string) bool {
	switch m {
	case "", http.MethodConnect, http.MethodTrace, "TRACK":
		return false
	}
	for i := 0; i < len(m); i++ {
		if c := m[i]; c < 'A' || c > 'Z' {
			return false
		}
	}
	return true
}

// ServeHTTP routes the BFF's endpoints.
func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch p := r.URL.Path; {
	case p == pathLogin:
		h.login(w, r)
	case p == pathUser:
		h.user(w, r)
	case p == pathLogout:
		h.logout(w, r)
	case strings.HasPrefix(p, pathAPI):
		h.api(w, r)
	default:
		writeJSON(w, http.StatusNotFound, errorBody("not_found", "no such BFF endpoint (/bff/login, /bff/user, /bff/logout, /bff/api/...)"))
	}
}

// users is what the BFF needs of whatever signs users in: an
// *authcode.Client (single), or an *instances.Registry (many).
type users interface {
	signIn() http.Handler
	signOut() http.Handler
	// session returns the user's session, or authcode.ErrNoSession.
	session(r *http.Request) (*authcode.Session, error)
	// sessionID returns the id of the session r's cookie names, without
	// a Store round trip where the cookie alone tells.
	sessionID(r *http.Request) (string, bool)
	// hasCookie reports whether r carries a session cookie at all (a
	// cookie whose session is gone means the session ended).
	hasCookie(r *http.Request) bool
	// alive gets s's access token, refreshing it if needed: an error
	// matching auth.ErrReauthRequired says the session is dead.
	alive(ctx context.Context, s *authcode.Session) error
	// transport sends requests to the Domain API as the user of s.
	transport(ctx context.Context, s *authcode.Session) http.RoundTripper
	// apiRoot is the Domain API root of s's instance, ending in "/".
	apiRoot(ctx context.Context, s *authcode.Session) (string, error)
}

// single is one *authcode.Client.
type single struct {
	c  *authcode.Client
	ac *peek.BFFClient
}

func (u single) signIn() http.Handler  { return u.c.SignIn() }
func (u single) signOut() http.Handler { return u.c.SignOut() }

func (u single) session(r *http.Request) (*authcode.Session, error) { return u.c.UserSession(r) }
func (u single) sessionID(r *http.Request) (string, bool)           { return u.ac.SessionID(r) }
func (u single) hasCookie(r *http.Request) bool {
	_, ok := u.ac.SessionID(r)
	return ok
}

func (u single) alive(ctx context.Context, s *authcode.Session) error {
	_, err := u.c.TokenSource(ctx, s).Token()
	return err
}

func (u single) transport(ctx context.Context, s *authcode.Session) http.RoundTripper {
	return u.c.UserClient(ctx, s).Transport
}

func (u single) apiRoot(ctx context.Context, _ *authcode.Session) (string, error) {
	return u.c.DomainAPI(ctx)
}

// many is an *instances.Registry: each session belongs to the instance
// its user signed in at.
type many struct{ g *instances.Registry }

func (u many) signIn() http.Handler  { return u.g.SignIn() }
func (u many) signOut() http.Handler { return u.g.SignOut() }

func (u many) session(r *http.Request) (*authcode.Session, error) { return u.g.UserSession(r) }

func (u many) sessionID(r *http.Request) (string, bool) {
	s, err := u.g.UserSession(r)
	if err != nil {
		return "", false
	}
	return s.ID, true
}

func (u many) hasCookie(r *http.Request) bool {
	_, ok := peek.CookieTag(peek.RegistryClient(u.g), r)
	return ok
}

func (u many) alive(ctx context.Context, s *authcode.Session) error {
	c, _ := peek.ClientOf(s).(*authcode.Client)
	if c == nil {
		return authcode.ErrNoSession
	}
	_, err := c.TokenSource(ctx, s).Token()
	return err
}

func (u many) transport(ctx context.Context, s *authcode.Session) http.RoundTripper {
	return u.g.UserClient(ctx, s).Transport
}

func (u many) apiRoot(ctx context.Context, s *authcode.Session) (string, error) {
	return u.g.DomainAPI(ctx, s)
}

// ---- answers ----

type errBody struct {
	Error       string `json:"error"`
	Description string `json:"error_description"`
}

func errorBody(code, desc string) errBody { return errBody{code, desc} }

// writeJSON writes v with the headers every BFF answer has.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":"server_error","error_description":"the answer could not be encoded"}`)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// navigation reports whether r is a browser loading a page (it gets an
// HTML page, not JSON).
func navigation(r *http.Request) bool {
	if m := r.Header.Get("Sec-Fetch-Mode"); m != "" {
		return m == "navigate"
	}
	return r.Header.Get(csrfHeader) == "" && strings.Contains(r.Header.Get("Accept"), "text/html")
}

// refuse answers a request the BFF does not serve, before anything is sent
// anywhere, and reports it (bff.refused). People get a plain page, scripts
// JSON.
func (h *handler) refuse(w http.ResponseWriter, r *http.Request, status int, code, desc, title, msg string) {
	h.log.Info("bff: request refused", "endpoint", endpoint(r), "status", status, "reason", code)
	h.rep.Emit(r.Context(), auth.Event{Name: "bff.refused", StatusCode: status})
	if navigation(r) {
		h.ac.Page(w, status, title, msg, "")
		return
	}
	writeJSON(w, status, errorBody(code, desc))
}

// endpoint names r's endpoint for logs (never the path of an API call: it
// may hold personal data).
func endpoint(r *http.Request) string {
	if strings.HasPrefix(r.URL.Path, pathAPI) {
		return pathAPI
	}
	return r.URL.Path
}

// antiForgery reports whether r carries the anti-forgery header (and does
// not say it comes from another site); otherwise it answers 401.
func (h *handler) antiForgery(w http.ResponseWriter, r *http.Request) bool {
	if hasAntiForgery(r) {
		return true
	}
	h.refuse(w, r, http.StatusUnauthorized, "antiforgery_required",
		"this endpoint needs the header X-CSRF: 1, sent by the application's own scripts",
		"Not allowed", "This address is used by the application's own pages; it cannot be opened directly or from another site.")
	return false
}

func hasAntiForgery(r *http.Request) bool {
	return r.Header.Get(csrfHeader) == "1" && r.Header.Get("Sec-Fetch-Site") != "cross-site"
}

func (h *handler) methodNotAllowed(w http.ResponseWriter, r *http.Request, allow string) {
	w.Header().Set("Allow", allow)
	h.refuse(w, r, http.StatusMethodNotAllowed, "method_not_allowed", "this endpoint accepts "+allow,
		"Not allowed", "This address cannot be used that way.")
}

// signInAgain answers 401: the SPA sends the browser to /bff/login.
func signInAgain(w http.ResponseWriter, code string) {
	desc := "not signed in: send the browser to /bff/login"
	if code == "reauth_required" {
		desc = "the session has ended (signed out elsewhere, expired or revoked): send the browser to /bff/login to sign in again"
	}
	writeJSON(w, http.StatusUnauthorized, errorBody(code, desc))
}

// unavailable answers 503 for a failure that should pass.
func (h *handler) unavailable(w http.ResponseWriter, r *http.Request, what string, err error) {
	h.log.Warn("bff: "+what, "endpoint", endpoint(r), "error", err.Error())
	writeJSON(w, http.StatusServiceUnavailable, errorBody("temporarily_unavailable", what+"; try again later"))
}

// session returns the user's session, or answers 401 (signed out) or 503.
func (h *handler) session(w http.ResponseWriter, r *http.Request) (*authcode.Session, bool) {
	s, err := h.users.session(r)
	switch {
	case err == nil:
		return s, true
	case errors.Is(err, authcode.ErrNoSession):
		code := "login_required"
		if h.users.hasCookie(r) {
			// The cookie names a session the Store no longer holds.
			code = "reauth_required"
		}
		signInAgain(w, code)
	default:
		h.unavailable(w, r, "the session cannot be read right now", err)
	}
	return nil, false
}
