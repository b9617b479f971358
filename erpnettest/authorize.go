package erpnettest

import (
	"cmp"
	"crypto/subtle"
	"html/template"
	"maps"
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
)

// signin is a browser's sign-in to the identity server (the sid claim).
type signin struct {
	sid, username, cookieHash string
	authTime                  time.Time
	ended                     bool
}

// authzRequest is a validated authorization request.
type authzRequest struct {
	app                                  *App
	redirectURI, state, nonce, challenge string
	scopes                               []string
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
	return f.bySID[sid] != nil && !f.bySID[sid].ended
}

// endSignins ends the live sign-ins that match, and what ends with them: their refresh
// tokens, the access tokens issued in those, and their ERP.net API sessions.
func (s *Server) endSignins(match func(*signin) bool) int {
	var sids []string
	s.signins.mu.Lock()
	for _, si := range s.signins.bySID {
		if !si.ended && match(si) {
			si.ended = true
			delete(s.signins.cookies, si.cookieHash)
			sids = append(sids, si.sid)
		}
	}
	s.signins.mu.Unlock()
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
	for _, host := range []string{"http://127.0.0.1:", "http://[::1]:"} {
		if rest, found := strings.CutPrefix(got, host); found {
			i := strings.IndexFunc(rest+"/", func(c rune) bool { return c < '0' || c > '9' })
			port, err := strconv.Atoi(rest[:i])
			if err == nil && i <= 5 && port >= 1 && port <= 65535 && (i == len(rest) || rest[i] == '/' || rest[i] == '?') &&
				slices.Contains(registered, strings.TrimSuffix(host, ":")+rest[i:]) {
				return true
			}
		}
	}
	return slices.Contains(registered, got)
}

// appendQuery adds params to a redirect URI, keeping its own query.
func appendQuery(uri string, params url.Values) string {
	switch {
	case strings.HasSuffix(uri, "?") || strings.HasSuffix(uri, "&"):
		return uri + params.Encode()
	case strings.Contains(uri, "?"):
		return uri + "&" + params.Encode()
	}
	return uri + "?" + params.Encode()
}

// requestParams reads a browser endpoint's parameters from the query (GET) or the form
// (POST); on any other method or a bad form it answers with an error page and reports false.
func (s *Server) requestParams(w http.ResponseWriter, r *http.Request) (url.Values, bool) {
	noStore(w)
	if r.Method == http.MethodGet {
		return r.URL.Query(), true
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		errorPage(w, http.StatusMethodNotAllowed, "invalid_request", "method not allowed")
		return nil, false
	}
	f, err := parseForm(w, r)
	if err != nil {
		errorPage(w, http.StatusBadRequest, "invalid_request", err.Error())
	}
	return f, err == nil
}

func (s *Server) authorize(w http.ResponseWriter, r *http.Request) {
	params, ok := s.requestParams(w, r)
	if !ok {
		return
	}
	app, redirectURI := s.apps[params.Get("client_id")], params.Get("redirect_uri")
	// Errors that cannot go back to the app are shown to the user.
	if code, desc := func() (string, string) {
		switch {
		case len(params["client_id"]) > 1 || len(params["redirect_uri"]) > 1:
			return "invalid_request", "client_id and redirect_uri must be given once"
		case app == nil || app.Disabled:
			return "invalid_client", "unknown or disabled client"
		case redirectURI == "":
			return "invalid_request", "redirect_uri is required"
		case !redirectURIAllowed(app.RedirectURIs, redirectURI):
			return "invalid_request", "redirect_uri is not registered for this client"
		case len(params["state"]) > 1:
			return "invalid_request", "state must be given once"
		}
		return "", ""
	}(); code != "" {
		errorPage(w, http.StatusBadRequest, code, desc)
		return
	}
	req := &authzRequest{app: app, redirectURI: redirectURI, state: params.Get("state"), nonce: params.Get("nonce"),
		challenge: params.Get("code_challenge")}
	var oerr *oauthError
	req.scopes, oerr = grantScopes(app, params.Get("scope"), nil)
	prompts, maxAge := strings.Fields(params.Get("prompt")), int64(-1)
	if ma := params.Get("max_age"); ma != "" {
		if n, err := strconv.ParseInt(ma, 10, 64); err == nil && n >= 0 {
			maxAge = n
		} else {
			maxAge = -2
		}
	}
	// Errors that go back to the app, in RFC 6749's order.
	if code, desc := func() (string, string) {
		rt, rm, method := params.Get("response_type"), params.Get("response_mode"), params.Get("code_challenge_method")
		switch d := firstDuplicate(params); {
		case d != "":
			return "invalid_request", "parameter " + d + " given more than once"
		case params.Get("request") != "":
			return "request_not_supported", "request objects are not supported"
		case params.Get("request_uri") != "":
			return "request_uri_not_supported", "request_uri is not supported"
		case rt == "":
			return "invalid_request", "response_type is required"
		case rt != "code":
			return "unsupported_response_type", "only response_type=code is supported"
		case rm != "" && rm != "query":
			return "invalid_request", "only response_mode=query is supported"
		case len(req.state) > 2000 || len(req.nonce) > 2000:
			return "invalid_request", "state or nonce too long"
		case oerr != nil:
			return oerr.code, oerr.desc
		case req.challenge == "":
			return "invalid_request", "code_challenge is required (PKCE with S256)"
		case method == "":
			return "invalid_request", "code_challenge_method is required and must be S256"
		case method != "S256":
			return "invalid_request", "transform algorithm not supported: only S256"
		case !validPKCEValue(req.challenge) || len(req.challenge) != 43:
			return "invalid_request", "malformed code_challenge"
		case slices.ContainsFunc(prompts, func(p string) bool {
			return !slices.Contains([]string{"login", "none", "consent", "select_account"}, p)
		}):
			return "invalid_request", "unsupported prompt value"
		case slices.Contains(prompts, "none") && slices.Contains(prompts, "login"):
			return "invalid_request", "prompt=none cannot be combined with other values"
		case maxAge == -2:
			return "invalid_request", "max_age must be a non-negative integer"
		}
		return "", ""
	}(); code != "" {
		s.redirectError(w, r, req, code, desc)
		return
	}

	now := s.now()
	current := s.cookieSignin(r)
	forceLogin := slices.Contains(prompts, "login") ||
		current != nil && maxAge >= 0 && now.Sub(current.authTime) > time.Duration(maxAge)*time.Second
	if auto := s.ctl.autoUser(); auto != "" && s.user(auto) != nil {
		if current == nil || current.username != auto || forceLogin {
			current = s.newSignin(w, auto)
		}
		s.completeAuthorize(w, r, req, current)
		return
	}
	switch {
	case current != nil && !forceLogin:
		s.completeAuthorize(w, r, req, current)
	case slices.Contains(prompts, "none"):
		s.redirectError(w, r, req, "login_required", "the user is not signed in")
	default:
		p := &pendingLogin{id: randomToken(24), req: req, expires: now.Add(pendingLifetime), csrf: randomToken(32)}
		http.SetCookie(w, &http.Cookie{Name: csrfCookieName(p.id), Value: p.csrf, Path: pathSignIn, HttpOnly: true,
			MaxAge: int(pendingLifetime / time.Second), SameSite: http.SameSiteStrictMode})
		s.signins.mu.Lock()
		maps.DeleteFunc(s.signins.pending, func(_ string, old *pendingLogin) bool { return now.After(old.expires) })
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
		v.Set("iss", s.Authority())
	}
	http.Redirect(w, r, appendQuery(req.redirectURI, v), http.StatusFound)
}

// completeAuthorize issues a code for si and redirects back to the client.
func (s *Server) completeAuthorize(w http.ResponseWriter, r *http.Request, req *authzRequest, si *signin) {
	code, now := randomToken(32), s.now()
	s.codes.mu.Lock()
	maps.DeleteFunc(s.codes.m, func(_ string, old *codeRecord) bool { return now.Sub(old.expires) > time.Hour })
	s.codes.m[hashKey(code)] = &codeRecord{clientID: req.app.ID, redirectURI: req.redirectURI, challenge: req.challenge,
		nonce: req.nonce, username: si.username, sid: si.sid, authTime: si.authTime, scopes: req.scopes,
		expires: now.Add(codeLifetime)}
	s.codes.mu.Unlock()
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
	if si := s.signins.bySID[s.signins.cookies[hashKey(c.Value)]]; si != nil && !si.ended {
		cp := *si
		return &cp
	}
	return nil
}

// newSignin signs username in and sets the session cookie.
func (s *Server) newSignin(w http.ResponseWriter, username string) *signin {
	cookie := randomToken(32)
	si := &signin{sid: randomHex(16), username: username, authTime: s.now(), cookieHash: hashKey(cookie)}
	s.signins.mu.Lock()
	s.signins.bySID[si.sid], s.signins.cookies[si.cookieHash] = si, si.sid
	s.signins.mu.Unlock()
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: cookie, Path: "/id", HttpOnly: true, SameSite: http.SameSiteLaxMode})
	s.log.Info("erpnettest: user signed in", "user", username)
	cp := *si
	return &cp
}

// csrfCookieName is the name of the CSRF cookie of the sign-in attempt requestID. Every
// attempt has its own cookie, so sign-in forms open in several tabs of one browser all work.
func csrfCookieName(requestID string) string { return csrfCookie + "_" + hashKey(requestID)[:16] }

// takePending returns the pending sign-in id if it has not expired; remove also forgets it.
func (s *Server) takePending(id string, remove bool) *pendingLogin {
	s.signins.mu.Lock()
	defer s.signins.mu.Unlock()
	p := s.signins.pending[id]
	expired := p != nil && s.now().After(p.expires)
	if remove || expired {
		delete(s.signins.pending, id)
	}
	if expired {
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
	if u := s.user(username); u == nil || subtle.ConstantTimeCompare([]byte(hashKey(u.Password)), []byte(hashKey(form.Get("password")))) != 1 {
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

var pageTemplate = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{.Title}} - ERP.net dev identity server</title>
<style>body{font-family:sans-serif;max-width:26em;margin:4em auto}label{display:block;margin:.8em 0}
input[type=text],input[type=password]{width:100%;padding:.4em}.error{color:#b00}.hint{color:#666;font-size:.9em}
td{padding:.1em 1em .1em 0}.password{font-family:monospace}</style></head>
<body><h1>{{.Title}}</h1>{{if .RequestID}}
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
{{else if .Code}}<p id="error" data-error="{{.Code}}"><strong>{{.Code}}</strong>: {{.Desc}}</p>
{{else}}<p id="signed-out">You are now signed out.</p>{{end}}</body></html>
`))

// renderLogin shows the sign-in form, which lists every user with the password to type.
func (s *Server) renderLogin(w http.ResponseWriter, p *pendingLogin, username, errMsg string) {
	setPageHeaders(w, http.StatusOK)
	_ = pageTemplate.Execute(w, map[string]any{"Title": "Sign in", "AppName": cmp.Or(p.req.app.Name, p.req.app.ID),
		"ClientID": p.req.app.ID, "Error": errMsg, "RequestID": p.id, "CSRF": p.csrf, "Username": username, "Users": s.users})
}

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
