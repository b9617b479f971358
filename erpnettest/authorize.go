package erpnettest

import (
	"cmp"
	"crypto/subtle"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

const (
	sessionCookie   = "erpnet_devid_session"
	csrfCookie      = "erpnet_devid_csrf" // prefix: one cookie per sign-in attempt
	pendingLifetime = 15 * time.Minute
	codeLifetime    = time.Minute
	maxParamLen     = 2000
)

// signin is a browser's sign-in to the identity server (the sid claim).
type signin struct {
	sid, username, cookieHash string
	authTime                  time.Time
	ended                     bool
}

// authzRequest is a validated authorization request.
type authzRequest struct {
	app                                       *App
	redirectURI, state, nonce, challenge, iss string
	scopes                                    []string
	forceLogin, promptNone                    bool
	maxAge                                    int64 // -1: not given
}

// pendingLogin is an authorization request waiting for the sign-in form.
type pendingLogin struct {
	id, csrf string
	req      *authzRequest
	expires  time.Time
}

// signins is the sign-in family's state: browsers' sign-ins and the forms they wait at.
type signins struct {
	mu      sync.Mutex
	bySID   map[string]*signin
	cookies map[string]string        // sha256(cookie) -> sid
	pending map[string]*pendingLogin // by request id
}

// alive reports whether the sign-in sid exists and has not ended.
func (f *signins) alive(sid string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	si := f.bySID[sid]
	return si != nil && !si.ended
}

// end ends the live sign-ins that match and returns their sids.
func (f *signins) end(match func(*signin) bool) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var sids []string
	for _, si := range f.bySID {
		if !si.ended && match(si) {
			si.ended = true
			delete(f.cookies, si.cookieHash)
			sids = append(sids, si.sid)
		}
	}
	return sids
}

// endSignins ends sign-ins with what ends with them: their refresh tokens, the access tokens
// issued in those, and their ERP.net API sessions.
func (s *Server) endSignins(match func(*signin) bool) int {
	sids := s.signins.end(match)
	for _, sid := range sids {
		s.tokens.revokeFamilies(func(f *family) bool { return f.sid == sid })
		s.api.endSession("sid:" + sid)
	}
	return len(sids)
}

// redirectURIAllowed reports an exact, case-sensitive match, or a loopback match on any port
// for a registered http://127.0.0.1/... or http://[::1]/... URI without a port (RFC 8252 §7.3).
func redirectURIAllowed(registered []string, got string) bool {
	if got == "" || strings.Contains(got, "#") {
		return false
	}
	stripped, ok := stripLoopbackPort(got)
	return slices.Contains(registered, got) || ok && slices.Contains(registered, stripped)
}

// stripLoopbackPort turns "http://127.0.0.1:1234/x" into "http://127.0.0.1/x" (and the same
// for [::1]); ok is false when got is not a loopback URI with a valid port.
func stripLoopbackPort(got string) (string, bool) {
	for _, host := range []string{"http://127.0.0.1", "http://[::1]"} {
		rest, found := strings.CutPrefix(got, host+":")
		if !found {
			continue
		}
		i := strings.IndexFunc(rest, func(c rune) bool { return c < '0' || c > '9' })
		if i < 0 {
			i = len(rest)
		}
		port, err := strconv.Atoi(rest[:i])
		if i == 0 || i > 5 || err != nil || port < 1 || port > 65535 || i < len(rest) && rest[i] != '/' && rest[i] != '?' {
			return "", false
		}
		return host + rest[i:], true
	}
	return "", false
}

// appendQuery adds params to a redirect URI, keeping its own query.
func appendQuery(uri string, params url.Values) string {
	sep := "?"
	if strings.Contains(uri, "?") {
		sep = "&"
		if strings.HasSuffix(uri, "?") || strings.HasSuffix(uri, "&") {
			sep = ""
		}
	}
	return uri + sep + params.Encode()
}

// requestParams reads a browser endpoint's parameters from the query (GET) or the form
// (POST); on any other method or a bad form it answers with an error page and reports false.
func (s *Server) requestParams(w http.ResponseWriter, r *http.Request) (url.Values, bool) {
	noStore(w)
	switch r.Method {
	case http.MethodGet:
		return r.URL.Query(), true
	case http.MethodPost:
		f, err := parseForm(w, r)
		if err != nil {
			errorPage(w, http.StatusBadRequest, "invalid_request", err.Error())
			return nil, false
		}
		return f, true
	}
	w.Header().Set("Allow", "GET, POST")
	errorPage(w, http.StatusMethodNotAllowed, "invalid_request", "method not allowed")
	return nil, false
}

func (s *Server) authorize(w http.ResponseWriter, r *http.Request) {
	params, ok := s.requestParams(w, r)
	if !ok {
		return
	}
	if len(params["client_id"]) > 1 || len(params["redirect_uri"]) > 1 {
		errorPage(w, http.StatusBadRequest, "invalid_request", "client_id and redirect_uri must be given once")
		return
	}
	app := s.apps[params.Get("client_id")]
	redirectURI := params.Get("redirect_uri")
	switch {
	case app == nil || app.Disabled:
		errorPage(w, http.StatusBadRequest, "invalid_client", "unknown or disabled client")
		return
	case redirectURI == "":
		errorPage(w, http.StatusBadRequest, "invalid_request", "redirect_uri is required")
		return
	case !redirectURIAllowed(app.RedirectURIs, redirectURI):
		errorPage(w, http.StatusBadRequest, "invalid_request", "redirect_uri is not registered for this client")
		return
	case len(params["state"]) > 1:
		errorPage(w, http.StatusBadRequest, "invalid_request", "state must be given once")
		return
	}
	req := &authzRequest{app: app, redirectURI: redirectURI, state: params.Get("state"), nonce: params.Get("nonce"),
		maxAge: -1, iss: s.Authority()}
	fail := func(code, desc string) { s.redirectError(w, r, req, code, desc) }
	if d := firstDuplicate(params); d != "" {
		fail("invalid_request", "parameter "+d+" given more than once")
		return
	}
	challenge, method := params.Get("code_challenge"), params.Get("code_challenge_method")
	switch {
	case params.Get("request") != "":
		fail("request_not_supported", "request objects are not supported")
		return
	case params.Get("request_uri") != "":
		fail("request_uri_not_supported", "request_uri is not supported")
		return
	case params.Get("response_type") == "":
		fail("invalid_request", "response_type is required")
		return
	case params.Get("response_type") != "code":
		fail("unsupported_response_type", "only response_type=code is supported")
		return
	case params.Get("response_mode") != "" && params.Get("response_mode") != "query":
		fail("invalid_request", "only response_mode=query is supported")
		return
	case len(req.state) > maxParamLen || len(req.nonce) > maxParamLen:
		fail("invalid_request", "state or nonce too long")
		return
	}
	scopes, oerr := grantScopes(app, params.Get("scope"), nil)
	if oerr != nil {
		fail(oerr.code, oerr.desc)
		return
	}
	req.scopes = scopes
	switch {
	case challenge == "":
		fail("invalid_request", "code_challenge is required (PKCE with S256)")
		return
	case method == "":
		fail("invalid_request", "code_challenge_method is required and must be S256")
		return
	case method != "S256":
		fail("invalid_request", "transform algorithm not supported: only S256")
		return
	case !validPKCEValue(challenge) || len(challenge) != 43:
		fail("invalid_request", "malformed code_challenge")
		return
	}
	req.challenge = challenge
	for _, p := range strings.Fields(params.Get("prompt")) {
		switch p {
		case "login":
			req.forceLogin = true
		case "none":
			req.promptNone = true
		case "consent", "select_account":
		default:
			fail("invalid_request", "unsupported prompt value")
			return
		}
	}
	if req.promptNone && req.forceLogin {
		fail("invalid_request", "prompt=none cannot be combined with other values")
		return
	}
	if ma := params.Get("max_age"); ma != "" {
		n, err := strconv.ParseInt(ma, 10, 64)
		if err != nil || n < 0 {
			fail("invalid_request", "max_age must be a non-negative integer")
			return
		}
		req.maxAge = n
	}

	now := s.now()
	current := s.cookieSignin(r)
	if current != nil && req.maxAge >= 0 && now.Sub(current.authTime) > time.Duration(req.maxAge)*time.Second {
		req.forceLogin = true
	}
	if auto := s.ctl.autoUser(); auto != "" && s.user(auto) != nil {
		if current == nil || current.username != auto || req.forceLogin {
			current = s.newSignin(w, auto)
		}
		s.completeAuthorize(w, r, req, current)
		return
	}
	switch {
	case current != nil && !req.forceLogin:
		s.completeAuthorize(w, r, req, current)
	case req.promptNone:
		fail("login_required", "the user is not signed in")
	default:
		p := &pendingLogin{id: randomToken(24), req: req, expires: now.Add(pendingLifetime), csrf: randomToken(32)}
		http.SetCookie(w, &http.Cookie{Name: csrfCookieName(p.id), Value: p.csrf, Path: pathSignIn, HttpOnly: true,
			MaxAge: int(pendingLifetime / time.Second), SameSite: http.SameSiteStrictMode})
		s.signins.mu.Lock()
		if s.signins.pending == nil {
			s.signins.pending = map[string]*pendingLogin{}
		}
		for k, old := range s.signins.pending {
			if now.After(old.expires) {
				delete(s.signins.pending, k)
			}
		}
		s.signins.pending[p.id] = p
		s.signins.mu.Unlock()
		s.renderLogin(w, p, "", "")
	}
}

// user returns the named user, or nil.
func (s *Server) user(name string) *User {
	if i := slices.IndexFunc(s.users, func(u User) bool { return u.Username == name }); i >= 0 {
		return &s.users[i]
	}
	return nil
}

// validPKCEValue checks RFC 7636 unreserved characters and length 43..128.
func validPKCEValue(v string) bool {
	return len(v) >= 43 && len(v) <= 128 && strings.Trim(v,
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~") == ""
}

// redirectError sends an RFC 6749 §4.1.2.1 error back to the (validated) redirect URI.
func (s *Server) redirectError(w http.ResponseWriter, r *http.Request, req *authzRequest, code, desc string) {
	s.log.Info("erpnettest: authorize error", "client_id", req.app.ID, "error", code)
	s.redirectBack(w, r, req, url.Values{"error": {code}, "error_description": {desc}})
}

// redirectBack redirects to the request's redirect URI with v, state and iss.
func (s *Server) redirectBack(w http.ResponseWriter, r *http.Request, req *authzRequest, v url.Values) {
	if req.state != "" {
		v.Set("state", req.state)
	}
	if !s.cfg.OmitIss {
		v.Set("iss", req.iss)
	}
	http.Redirect(w, r, appendQuery(req.redirectURI, v), http.StatusFound)
}

// completeAuthorize issues a code for si and redirects back to the client.
func (s *Server) completeAuthorize(w http.ResponseWriter, r *http.Request, req *authzRequest, si *signin) {
	code := randomToken(32)
	s.codes.add(hashKey(code), &codeRecord{clientID: req.app.ID, redirectURI: req.redirectURI, challenge: req.challenge,
		nonce: req.nonce, username: si.username, sid: si.sid, authTime: si.authTime, scopes: req.scopes,
		expires: s.now().Add(codeLifetime)})
	s.log.Info("erpnettest: authorization code issued", "client_id", req.app.ID, "user", si.username)
	s.redirectBack(w, r, req, url.Values{"code": {code}})
}

// cookieSignin returns a copy of the live sign-in named by the session cookie, if any.
func (s *Server) cookieSignin(r *http.Request) *signin {
	c, err := r.Cookie(sessionCookie)
	if err != nil || c.Value == "" || len(c.Value) > 200 {
		return nil
	}
	s.signins.mu.Lock()
	defer s.signins.mu.Unlock()
	si := s.signins.bySID[s.signins.cookies[hashKey(c.Value)]]
	if si == nil || si.ended {
		return nil
	}
	cp := *si
	return &cp
}

// newSignin signs username in and sets the session cookie.
func (s *Server) newSignin(w http.ResponseWriter, username string) *signin {
	cookie := randomToken(32)
	si := &signin{sid: randomHex(16), username: username, authTime: s.now(), cookieHash: hashKey(cookie)}
	s.signins.mu.Lock()
	if s.signins.bySID == nil {
		s.signins.bySID, s.signins.cookies = map[string]*signin{}, map[string]string{}
	}
	s.signins.bySID[si.sid] = si
	s.signins.cookies[si.cookieHash] = si.sid
	s.signins.mu.Unlock()
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: cookie, Path: "/id", HttpOnly: true, SameSite: http.SameSiteLaxMode})
	s.log.Info("erpnettest: user signed in", "user", username)
	cp := *si
	return &cp
}

// csrfCookieName is the name of the CSRF cookie of the sign-in attempt requestID. Every
// attempt has its own cookie, so sign-in forms open in several tabs of one browser all work.
func csrfCookieName(requestID string) string { return csrfCookie + "_" + hashKey(requestID)[:16] }

// takePending returns the live pending sign-in id; remove also forgets it.
func (s *Server) takePending(id string, remove bool) *pendingLogin {
	s.signins.mu.Lock()
	defer s.signins.mu.Unlock()
	p := s.signins.pending[id]
	if p != nil && (remove || s.now().After(p.expires)) {
		delete(s.signins.pending, id)
	}
	if p != nil && s.now().After(p.expires) {
		return nil
	}
	return p
}

// signInForm processes the sign-in form.
func (s *Server) signInForm(w http.ResponseWriter, r *http.Request) {
	noStore(w)
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		errorPage(w, http.StatusMethodNotAllowed, "invalid_request", "method not allowed")
		return
	}
	form, err := parseForm(w, r)
	if err != nil {
		errorPage(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	if origin := r.Header.Get("Origin"); origin != "" && origin != "null" && origin != s.url &&
		origin != "http://"+r.Host && origin != "https://"+r.Host {
		errorPage(w, http.StatusForbidden, "invalid_request", "cross-origin sign-in refused")
		return
	}
	p := s.takePending(form.Get("request"), false)
	if p == nil {
		errorPage(w, http.StatusBadRequest, "invalid_request", "the sign-in request is unknown or expired; start again from the application")
		return
	}
	c, cerr := r.Cookie(csrfCookieName(p.id))
	if csrf := form.Get("csrf"); cerr != nil || csrf == "" || subtle.ConstantTimeCompare([]byte(c.Value), []byte(csrf)) != 1 ||
		subtle.ConstantTimeCompare([]byte(p.csrf), []byte(csrf)) != 1 {
		errorPage(w, http.StatusBadRequest, "invalid_request", "CSRF check failed; start again from the application")
		return
	}
	clearCSRF := &http.Cookie{Name: csrfCookieName(p.id), Value: "", Path: pathSignIn, MaxAge: -1, HttpOnly: true}
	if form.Get("action") == "cancel" {
		s.takePending(p.id, true)
		http.SetCookie(w, clearCSRF)
		s.redirectError(w, r, p.req, "access_denied", "the user cancelled the sign-in")
		return
	}
	username := form.Get("username")
	u := s.user(username)
	if u == nil || subtle.ConstantTimeCompare([]byte(hashKey(u.Password)), []byte(hashKey(form.Get("password")))) != 1 {
		s.log.Info("erpnettest: sign-in failed", "client_id", p.req.app.ID)
		s.renderLogin(w, p, username, "Invalid user name or password.")
		return
	}
	if s.takePending(p.id, true) == nil {
		errorPage(w, http.StatusBadRequest, "invalid_request", "the sign-in request was already used")
		return
	}
	http.SetCookie(w, clearCSRF)
	s.completeAuthorize(w, r, p.req, s.newSignin(w, username))
}

var loginTemplate = template.Must(template.New("login").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sign in - ERP.net dev identity server</title>
<style>body{font-family:sans-serif;max-width:26em;margin:4em auto}label{display:block;margin:.8em 0}
input[type=text],input[type=password]{width:100%;padding:.4em}.error{color:#b00}.hint{color:#666;font-size:.9em}
td{padding:.1em 1em .1em 0}.password{font-family:monospace}</style></head>
<body><h1>Sign in</h1>
<p>to <strong>{{.AppName}}</strong> ({{.ClientID}})</p>
{{if .Error}}<p class="error" role="alert" id="error">{{.Error}}</p>{{end}}
<form method="post" action="/id/account/login" autocomplete="off">
<input type="hidden" name="request" value="{{.RequestID}}">
<input type="hidden" name="csrf" value="{{.CSRF}}">
<label>User name <input type="text" name="username" value="{{.Username}}" autofocus required></label>
<label>Password <input type="password" name="password" required></label>
<button type="submit" name="action" value="login">Sign in</button>
<button type="submit" name="action" value="cancel" formnovalidate>Cancel</button>
</form>
<div class="hint" id="demo-users"><p>ERP.net development identity server (not for production). Users and passwords:</p>
<table>{{range .Users}}<tr><td class="user">{{.Username}}</td><td class="password">{{.Password}}</td><td>{{.Name}}</td></tr>{{end}}</table></div>
</body></html>
`))

// renderLogin shows the sign-in form, which lists every user with the password to type.
func (s *Server) renderLogin(w http.ResponseWriter, p *pendingLogin, username, errMsg string) {
	setPageHeaders(w, http.StatusOK)
	_ = loginTemplate.Execute(w, map[string]any{
		"AppName": cmp.Or(p.req.app.Name, p.req.app.ID), "ClientID": p.req.app.ID, "Error": errMsg,
		"RequestID": p.id, "CSRF": p.csrf, "Username": username, "Users": s.users,
	})
}

var pageTemplate = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{.Title}} - ERP.net dev identity server</title></head>
<body><h1>{{.Title}}</h1>{{if .Code}}<p id="error" data-error="{{.Code}}"><strong>{{.Code}}</strong>: {{.Desc}}</p>
{{else}}<p id="signed-out">You are now signed out.</p>{{end}}</body></html>
`))

// errorPage shows an error to the user without redirecting anywhere.
func errorPage(w http.ResponseWriter, status int, code, desc string) {
	setPageHeaders(w, status)
	_ = pageTemplate.Execute(w, map[string]string{"Title": "Sign-in error", "Code": code, "Desc": desc})
}

func setPageHeaders(w http.ResponseWriter, status int) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Content-Security-Policy", "frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
}
