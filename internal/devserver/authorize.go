package devserver

import (
	"crypto/subtle"
	"html/template"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

const (
	sessionCookie   = "erpnet_devid_session"
	csrfCookie      = "erpnet_devid_csrf" // prefix: one cookie per sign-in attempt
	pendingLifetime = 15 * time.Minute
	maxParamLen     = 2000
)

// authzRequest is a validated authorization request.
type authzRequest struct {
	app         *App
	redirectURI string
	state       string
	nonce       string
	challenge   string
	scopes      []string
	forceLogin  bool
	promptNone  bool
	maxAge      int64 // -1: not given
	issuer      string
}

// pendingLogin is an authorization request waiting for the sign-in form.
type pendingLogin struct {
	id      string
	csrf    string
	req     *authzRequest
	expires time.Time
}

// SetAutoSignIn makes /authorize sign username in without the form while set ("" restores the
// form). With prompt=login or an exceeded max_age it still starts a fresh sign-in (new sid and
// auth_time). An unknown user name is ignored (the form is shown).
func (s *Server) SetAutoSignIn(username string) {
	s.mu.Lock()
	s.autoSignIn = username
	s.mu.Unlock()
}

// redirectURIAllowed reports an exact, case-sensitive match, or a loopback match on any port
// for a registered http://127.0.0.1/... or http://[::1]/... URI without a port (RFC 8252 §7.3).
func redirectURIAllowed(registered []string, got string) bool {
	if got == "" || strings.Contains(got, "#") {
		return false
	}
	for _, reg := range registered {
		if reg == got {
			return true
		}
	}
	stripped, ok := stripLoopbackPort(got)
	if !ok {
		return false
	}
	for _, reg := range registered {
		if reg == stripped {
			return true
		}
	}
	return false
}

// stripLoopbackPort turns "http://127.0.0.1:1234/x" into "http://127.0.0.1/x" (and the same
// for [::1]); ok is false when got is not a loopback URI with a valid port.
func stripLoopbackPort(got string) (string, bool) {
	for _, host := range []string{"http://127.0.0.1", "http://[::1]"} {
		rest, found := strings.CutPrefix(got, host+":")
		if !found {
			continue
		}
		i := 0
		for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
			i++
		}
		if i == 0 || i > 5 {
			return "", false
		}
		port, err := strconv.Atoi(rest[:i])
		if err != nil || port < 1 || port > 65535 {
			return "", false
		}
		tail := rest[i:]
		if tail != "" && tail[0] != '/' && tail[0] != '?' {
			return "", false
		}
		return host + tail, true
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

// requestParams reads a browser endpoint's parameters from the query (GET)
// or the form (POST); on any other method or a bad form it answers with an
// error page and reports false.
func (s *Server) requestParams(w http.ResponseWriter, r *http.Request) (url.Values, bool) {
	switch r.Method {
	case http.MethodGet:
		return r.URL.Query(), true
	case http.MethodPost:
		f, err := parseForm(w, r)
		if err != nil {
			s.errorPage(w, http.StatusBadRequest, "invalid_request", err.Error())
			return nil, false
		}
		return f, true
	default:
		w.Header().Set("Allow", "GET, POST")
		s.errorPage(w, http.StatusMethodNotAllowed, "invalid_request", "method not allowed")
		return nil, false
	}
}

func (s *Server) handleAuthorize(w http.ResponseWriter, r *http.Request) {
	noStore(w)
	params, ok := s.requestParams(w, r)
	if !ok {
		return
	}
	if len(params["client_id"]) > 1 || len(params["redirect_uri"]) > 1 {
		s.errorPage(w, http.StatusBadRequest, "invalid_request", "client_id and redirect_uri must be given once")
		return
	}
	clientID := params.Get("client_id")
	app := s.apps[clientID]
	if clientID == "" || app == nil || app.Disabled {
		s.errorPage(w, http.StatusBadRequest, "invalid_client", "unknown or disabled client")
		return
	}
	redirectURI := params.Get("redirect_uri")
	if redirectURI == "" {
		s.errorPage(w, http.StatusBadRequest, "invalid_request", "redirect_uri is required")
		return
	}
	if !redirectURIAllowed(app.RedirectURIs, redirectURI) {
		s.errorPage(w, http.StatusBadRequest, "invalid_request", "redirect_uri is not registered for this client")
		return
	}
	if len(params["state"]) > 1 {
		s.errorPage(w, http.StatusBadRequest, "invalid_request", "state must be given once")
		return
	}
	req := &authzRequest{
		app:         app,
		redirectURI: redirectURI,
		state:       params.Get("state"),
		maxAge:      -1,
		issuer:      s.issuer(r),
	}
	fail := func(code, desc string) { s.redirectError(w, r, req, code, desc) }

	if d := firstDuplicate(params); d != "" {
		fail("invalid_request", "parameter "+d+" given more than once")
		return
	}
	if params.Get("request") != "" {
		fail("request_not_supported", "request objects are not supported")
		return
	}
	if params.Get("request_uri") != "" {
		fail("request_uri_not_supported", "request_uri is not supported")
		return
	}
	switch rt := params.Get("response_type"); rt {
	case "":
		fail("invalid_request", "response_type is required")
		return
	case "code":
	default:
		fail("unsupported_response_type", "only response_type=code is supported")
		return
	}
	if rm := params.Get("response_mode"); rm != "" && rm != "query" {
		fail("invalid_request", "only response_mode=query is supported")
		return
	}
	if len(req.state) > maxParamLen || len(params.Get("nonce")) > maxParamLen {
		fail("invalid_request", "state or nonce too long")
		return
	}
	req.nonce = params.Get("nonce")
	scopes, oerr := grantScopes(app, params.Get("scope"), nil)
	if oerr != nil {
		fail(oerr.code, oerr.desc)
		return
	}
	req.scopes = scopes
	challenge, method := params.Get("code_challenge"), params.Get("code_challenge_method")
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
	s.mu.Lock()
	auto := s.autoSignIn
	s.mu.Unlock()
	if auto != "" && s.users[auto] != nil {
		if current == nil || current.username != auto || req.forceLogin {
			current = s.newSignin(w, r, auto)
		}
		s.completeAuthorize(w, r, req, current)
		return
	}
	if current != nil && !req.forceLogin {
		s.completeAuthorize(w, r, req, current)
		return
	}
	if req.promptNone {
		fail("login_required", "the user is not signed in")
		return
	}
	p := &pendingLogin{id: randomToken(24), req: req, expires: now.Add(pendingLifetime)}
	p.csrf = s.setCSRFCookie(w, r, p.id)
	s.mu.Lock()
	s.sweepLocked(now)
	s.pending[p.id] = p
	s.mu.Unlock()
	s.renderLogin(w, http.StatusOK, p, "", "")
}

// validPKCEValue checks RFC 7636 unreserved characters and length 43..128.
func validPKCEValue(v string) bool {
	if len(v) < 43 || len(v) > 128 {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~') {
			return false
		}
	}
	return true
}

// grantScopes computes requested ∩ allowed. Nothing requested means every allowed scope (or
// every allowed scope in restrict, when restrict is not nil). Unknown scopes and an empty
// result are invalid_scope.
func grantScopes(app *App, requested string, restrict []string) ([]string, *oauthError) {
	allowed := app.allowedScopes()
	if restrict != nil {
		var r []string
		for _, sc := range allowed {
			if contains(restrict, sc) {
				r = append(r, sc)
			}
		}
		allowed = r
	}
	req := strings.Fields(requested)
	if len(req) == 0 {
		if len(allowed) == 0 {
			return nil, errInvalidScope("the client is not allowed any scope")
		}
		return allowed, nil
	}
	for _, sc := range req {
		if !isKnownScope(sc) {
			return nil, errInvalidScope("unknown scope")
		}
	}
	var out []string
	for _, sc := range allowed {
		if contains(req, sc) {
			out = append(out, sc)
		}
	}
	if len(out) == 0 {
		return nil, errInvalidScope("none of the requested scopes is allowed for this client")
	}
	return out, nil
}

// redirectError sends an RFC 6749 §4.1.2.1 error back to the (validated) redirect URI.
func (s *Server) redirectError(w http.ResponseWriter, r *http.Request, req *authzRequest, code, desc string) {
	v := url.Values{"error": {code}}
	if desc != "" {
		v.Set("error_description", desc)
	}
	if req.state != "" {
		v.Set("state", req.state)
	}
	if s.cfg.AuthorizationResponseIss {
		v.Set("iss", req.issuer)
	}
	s.log.Info("devserver: authorize error", "client_id", req.app.ApplicationURI, "error", code)
	http.Redirect(w, r, appendQuery(req.redirectURI, v), http.StatusFound)
}

// completeAuthorize issues a code for si and redirects back to the client.
func (s *Server) completeAuthorize(w http.ResponseWriter, r *http.Request, req *authzRequest, si *signin) {
	now := s.now()
	code := randomToken(32)
	rec := &codeRecord{
		clientID:    req.app.ApplicationURI,
		redirectURI: req.redirectURI,
		challenge:   req.challenge,
		nonce:       req.nonce,
		username:    si.username,
		sid:         si.sid,
		authTime:    si.authTime,
		scopes:      req.scopes,
		expires:     now.Add(s.cfg.CodeLifetime),
	}
	s.mu.Lock()
	s.sweepLocked(now)
	s.codes[hashKey(code)] = rec
	s.mu.Unlock()
	v := url.Values{"code": {code}}
	if req.state != "" {
		v.Set("state", req.state)
	}
	if s.cfg.AuthorizationResponseIss {
		v.Set("iss", req.issuer)
	}
	s.log.Info("devserver: authorization code issued", "client_id", rec.clientID, "user", si.username)
	http.Redirect(w, r, appendQuery(req.redirectURI, v), http.StatusFound)
}

// cookieSignin returns the live sign-in named by the session cookie, if any.
func (s *Server) cookieSignin(r *http.Request) *signin {
	c, err := r.Cookie(sessionCookie)
	if err != nil || c.Value == "" || len(c.Value) > 200 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sid, ok := s.cookies[hashKey(c.Value)]
	if !ok {
		return nil
	}
	si := s.signins[sid]
	if si == nil || si.ended {
		return nil
	}
	cp := *si
	return &cp
}

// newSignin starts a sign-in session for username and sets its cookie.
func (s *Server) newSignin(w http.ResponseWriter, r *http.Request, username string) *signin {
	cookie := randomToken(32)
	si := &signin{sid: randomHex(16), username: username, authTime: s.now(), cookieHash: hashKey(cookie)}
	s.mu.Lock()
	s.signins[si.sid] = si
	s.cookies[si.cookieHash] = si.sid
	s.mu.Unlock()
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookie, Value: cookie, Path: "/id", HttpOnly: true,
		SameSite: http.SameSiteLaxMode, Secure: strings.HasPrefix(s.base(r), "https://"),
	})
	s.log.Info("devserver: user signed in", "user", username)
	cp := *si
	return &cp
}

// csrfCookieName is the name of the CSRF cookie of the sign-in attempt requestID. Every
// attempt has its own cookie, so sign-in forms open in several tabs of one browser all work.
func csrfCookieName(requestID string) string {
	return csrfCookie + "_" + hashKey(requestID)[:16]
}

// setCSRFCookie sets a fresh double-submit CSRF token for the sign-in attempt requestID and
// returns it. The cookie lives as long as the attempt and is sent only to the form's target.
func (s *Server) setCSRFCookie(w http.ResponseWriter, r *http.Request, requestID string) string {
	tok := randomToken(32)
	http.SetCookie(w, &http.Cookie{
		Name: csrfCookieName(requestID), Value: tok, Path: pathSignIn, HttpOnly: true,
		MaxAge: int(pendingLifetime / time.Second), SameSite: http.SameSiteStrictMode,
		Secure: strings.HasPrefix(s.base(r), "https://"),
	})
	return tok
}

// clearCSRFCookie deletes the CSRF cookie of a finished sign-in attempt.
func clearCSRFCookie(w http.ResponseWriter, requestID string) {
	http.SetCookie(w, &http.Cookie{Name: csrfCookieName(requestID), Value: "", Path: pathSignIn, MaxAge: -1, HttpOnly: true})
}

// handleSignIn processes the sign-in form.
func (s *Server) handleSignIn(w http.ResponseWriter, r *http.Request) {
	noStore(w)
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		s.errorPage(w, http.StatusMethodNotAllowed, "invalid_request", "method not allowed")
		return
	}
	form, err := parseForm(w, r)
	if err != nil {
		s.errorPage(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	if origin := r.Header.Get("Origin"); origin != "" && origin != "null" && origin != s.base(r) &&
		origin != "http://"+r.Host && origin != "https://"+r.Host {
		s.errorPage(w, http.StatusForbidden, "invalid_request", "cross-origin sign-in refused")
		return
	}
	now := s.now()
	s.mu.Lock()
	p := s.pending[form.Get("request")]
	if p != nil && now.After(p.expires) {
		delete(s.pending, p.id)
		p = nil
	}
	s.mu.Unlock()
	if p == nil {
		s.errorPage(w, http.StatusBadRequest, "invalid_request", "the sign-in request is unknown or expired; start again from the application")
		return
	}
	c, cerr := r.Cookie(csrfCookieName(p.id))
	formCSRF := form.Get("csrf")
	if cerr != nil || formCSRF == "" ||
		subtle.ConstantTimeCompare([]byte(c.Value), []byte(formCSRF)) != 1 ||
		subtle.ConstantTimeCompare([]byte(p.csrf), []byte(formCSRF)) != 1 {
		s.errorPage(w, http.StatusBadRequest, "invalid_request", "CSRF check failed; start again from the application")
		return
	}
	if form.Get("action") == "cancel" {
		s.mu.Lock()
		delete(s.pending, p.id)
		s.mu.Unlock()
		clearCSRFCookie(w, p.id)
		s.redirectError(w, r, p.req, "access_denied", "the user cancelled the sign-in")
		return
	}
	username := form.Get("username")
	u := s.users[username]
	ok := u != nil && subtle.ConstantTimeCompare([]byte(hashKey(u.Password)), []byte(hashKey(form.Get("password")))) == 1
	if !ok {
		s.log.Info("devserver: sign-in failed", "client_id", p.req.app.ApplicationURI)
		s.renderLogin(w, http.StatusOK, p, username, "Invalid user name or password.")
		return
	}
	s.mu.Lock()
	_, still := s.pending[p.id]
	delete(s.pending, p.id)
	s.mu.Unlock()
	if !still {
		s.errorPage(w, http.StatusBadRequest, "invalid_request", "the sign-in request was already used")
		return
	}
	clearCSRFCookie(w, p.id)
	si := s.newSignin(w, r, username)
	s.completeAuthorize(w, r, p.req, si)
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

func (s *Server) renderLogin(w http.ResponseWriter, status int, p *pendingLogin, username, errMsg string) {
	// A development server: the page lists every user with the password to type.
	users := s.cfg.Users
	name := p.req.app.Name
	if name == "" {
		name = p.req.app.ApplicationURI
	}
	setPageHeaders(w)
	w.WriteHeader(status)
	_ = loginTemplate.Execute(w, map[string]any{
		"AppName": name, "ClientID": p.req.app.ApplicationURI, "Error": errMsg,
		"RequestID": p.id, "CSRF": p.csrf, "Username": username, "Users": users,
	})
}

var errorTemplate = template.Must(template.New("error").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Error - ERP.net dev identity server</title></head>
<body><h1>Sign-in error</h1><p id="error" data-error="{{.Code}}"><strong>{{.Code}}</strong>: {{.Desc}}</p></body></html>
`))

// errorPage shows an error to the user without redirecting anywhere.
func (s *Server) errorPage(w http.ResponseWriter, status int, code, desc string) {
	setPageHeaders(w)
	w.WriteHeader(status)
	_ = errorTemplate.Execute(w, map[string]string{"Code": code, "Desc": desc})
}

func setPageHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Content-Security-Policy", "frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
}
