package erpnettest

import (
	"cmp"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
)

// Scopes: every one the server knows, in canonical order, and those that need no user.
var (
	allScopes = []string{"openid", "profile", "read", "update", "offline_access", "DomainApi"}
	apiScopes = []string{"read", "update", "DomainApi"}
)

// allowedScopes returns the app's allowed scopes in canonical order.
func allowedScopes(a *App) []string {
	if len(a.Scopes) == 0 {
		return allScopes
	}
	return slices.DeleteFunc(slices.Clone(allScopes), func(sc string) bool { return !slices.Contains(a.Scopes, sc) })
}

// grantScopes computes requested ∩ allowed (∩ restrict, when not nil). Nothing requested
// means every allowed scope. Unknown scopes and an empty result are invalid_scope.
func grantScopes(app *App, requested string, restrict []string) ([]string, *oauthError) {
	allowed := allowedScopes(app)
	if restrict != nil {
		allowed = slices.DeleteFunc(slices.Clone(allowed), func(sc string) bool { return !slices.Contains(restrict, sc) })
	}
	req := strings.Fields(requested)
	if len(req) == 0 {
		if len(allowed) == 0 {
			return nil, errInvalidScope("the client is not allowed any scope")
		}
		return allowed, nil
	}
	for _, sc := range req {
		if !slices.Contains(allScopes, sc) {
			return nil, errInvalidScope("unknown scope")
		}
	}
	out := slices.DeleteFunc(slices.Clone(allowed), func(sc string) bool { return !slices.Contains(req, sc) })
	if len(out) == 0 {
		return nil, errInvalidScope("none of the requested scopes is allowed for this client")
	}
	return out, nil
}

// codeRecord is an issued authorization code, stored under sha256(code).
type codeRecord struct {
	clientID, redirectURI, challenge, nonce, username, sid string
	authTime, expires                                      time.Time
	scopes                                                 []string
	used                                                   bool
	jti, family                                            string // what its redemption issued
}

// codes is the authorization codes' state.
type codes struct {
	mu sync.Mutex
	m  map[string]*codeRecord
}

func (c *codes) add(h string, rec *codeRecord) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]*codeRecord{}
	}
	for k, old := range c.m {
		if rec.expires.Sub(old.expires) > time.Hour {
			delete(c.m, k)
		}
	}
	c.m[h] = rec
}

// family is the lineage of refresh tokens from one code exchange.
type family struct {
	id, clientID, username, sid string
	authTime, expires           time.Time
	scopes, jtis                []string
	revoked                     bool
}

const (
	rtActive = iota
	rtRotated
	rtRevoked
)

type refreshRecord struct {
	family string
	issued time.Time
	status int
}

// accessRecord is what the server remembers of a JWT access token.
type accessRecord struct {
	jti, userType, clientID, subject, sid, family string
	scopes                                        []string
	issued, expires                               time.Time
	revoked                                       bool
}

// tokens is the state of issued tokens and refresh token families.
type tokens struct {
	mu       sync.Mutex
	access   map[string]*accessRecord  // by jti
	refresh  map[string]*refreshRecord // by sha256(token)
	families map[string]*family
	swept    time.Time
}

// revokeFamilies revokes the families that match, their refresh tokens and the access tokens
// issued in them.
func (t *tokens) revokeFamilies(match func(*family) bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, f := range t.families {
		if match(f) {
			t.revokeFamilyLocked(f)
		}
	}
}

func (t *tokens) revokeFamilyLocked(f *family) {
	f.revoked = true
	for _, r := range t.refresh {
		if r.family == f.id && r.status == rtActive {
			r.status = rtRevoked
		}
	}
	for _, jti := range f.jtis {
		t.revokeAccessLocked(jti)
	}
}

// revokeAccessLocked revokes the access token jti, even before it is recorded.
func (t *tokens) revokeAccessLocked(jti string) {
	if t.access == nil {
		t.access = map[string]*accessRecord{}
	}
	if a := t.access[jti]; a != nil {
		a.revoked = true
	} else {
		t.access[jti] = &accessRecord{jti: jti, revoked: true, expires: time.Now().Add(24 * time.Hour)}
	}
}

// revokeCode revokes what a replayed code's redemption issued.
func (t *tokens) revokeCode(rec *codeRecord) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.revokeAccessLocked(rec.jti)
	if f := t.families[rec.family]; f != nil {
		t.revokeFamilyLocked(f)
	} else if rec.family != "" {
		t.families[rec.family] = &family{id: rec.family, revoked: true}
	}
}

// record remembers an issued access token and, with f, refresh token rth of family f.
func (t *tokens) record(now time.Time, a *accessRecord, f *family, rth string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.access == nil {
		t.access, t.refresh, t.families = map[string]*accessRecord{}, map[string]*refreshRecord{}, map[string]*family{}
	}
	if now.Sub(t.swept) > time.Minute {
		t.swept = now
		for k, old := range t.access {
			if now.After(old.expires.Add(time.Minute)) {
				delete(t.access, k)
			}
		}
		for k, old := range t.families {
			if old != f && now.After(old.expires) {
				delete(t.families, k)
			}
		}
		for k, r := range t.refresh {
			if t.families[r.family] == nil {
				delete(t.refresh, k)
			}
		}
	}
	if old := t.access[a.jti]; old != nil && old.revoked {
		a.revoked = true
	}
	t.access[a.jti] = a
	if f == nil {
		return
	}
	if old := t.families[f.id]; old != nil && old != f && old.revoked {
		f.revoked = true
	}
	t.families[f.id] = f
	f.jtis = append(f.jtis, a.jti)
	t.refresh[rth] = &refreshRecord{family: f.id, issued: now}
	if f.revoked { // revoked while the tokens were signed: they are born dead
		t.revokeFamilyLocked(f)
	}
}

// tokenResponse is the RFC 6749 §5.1 success body.
type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type,omitempty"`
	ExpiresIn    int64  `json:"expires_in"`
	Scope        string `json:"scope"`
	IDToken      string `json:"id_token,omitempty"`
	RefreshToken string `json:"refresh_token,omitempty"`
}

// oauthError is an RFC 6749 §5.2 error response.
type oauthError struct {
	status     int
	code, desc string
}

func errInvalidRequest(desc string) *oauthError {
	return &oauthError{http.StatusBadRequest, "invalid_request", desc}
}
func errInvalidClient(desc string) *oauthError {
	return &oauthError{http.StatusUnauthorized, "invalid_client", desc}
}
func errInvalidGrant(desc string) *oauthError {
	return &oauthError{http.StatusBadRequest, "invalid_grant", desc}
}
func errUnauthorizedClient(desc string) *oauthError {
	return &oauthError{http.StatusBadRequest, "unauthorized_client", desc}
}
func errInvalidScope(desc string) *oauthError {
	return &oauthError{http.StatusBadRequest, "invalid_scope", desc}
}

// writeOAuthError writes e as JSON, with no-store (and a Basic challenge for invalid_client).
func writeOAuthError(w http.ResponseWriter, e *oauthError) {
	noStore(w)
	if e.code == "invalid_client" {
		w.Header().Set("WWW-Authenticate", `Basic realm="ERP.net Instance ID", charset="UTF-8"`)
	}
	writeJSON(w, e.status, map[string]any{"error": e.code, "error_description": e.desc})
}

// clientForm parses and client-authenticates a POST to the token, revocation or
// introspection endpoint; it answers the errors itself.
func (s *Server) clientForm(w http.ResponseWriter, r *http.Request) (*authedClient, url.Values, bool) {
	noStore(w)
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		writeOAuthError(w, &oauthError{http.StatusMethodNotAllowed, "invalid_request", "the endpoint accepts POST only"})
		return nil, nil, false
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/x-www-form-urlencoded" {
		writeOAuthError(w, errInvalidRequest("Content-Type must be application/x-www-form-urlencoded"))
		return nil, nil, false
	}
	form, err := parseForm(w, r)
	if err != nil {
		writeOAuthError(w, errInvalidRequest(err.Error()))
		return nil, nil, false
	}
	if d := firstDuplicate(form); d != "" {
		writeOAuthError(w, errInvalidRequest("parameter "+d+" given more than once"))
		return nil, nil, false
	}
	c, oerr := s.authenticateClient(r, form)
	if oerr != nil {
		s.log.Info("erpnettest: client refused", "path", r.URL.Path, "error", oerr.code)
		writeOAuthError(w, oerr)
		return nil, nil, false
	}
	return c, form, true
}

// authedClient is an authenticated client; secret (what it presented) lives only for the
// request, for an HS256-tampered ID token, and is never logged.
type authedClient struct {
	app            *App
	secret, method string
}

// authenticateClient implements RFC 6749 §2.3.1: HTTP Basic with form-urlencoded id and
// secret, or client_id and client_secret in the body, never both. Public clients identify
// with client_id alone and must not send a secret.
func (s *Server) authenticateClient(r *http.Request, form url.Values) (*authedClient, *oauthError) {
	id, secret, method := form.Get("client_id"), form.Get("client_secret"), "none"
	_, formSecret := form["client_secret"]
	if formSecret {
		method = "client_secret_post"
	}
	if hdrs := r.Header.Values("Authorization"); len(hdrs) > 1 {
		return nil, errInvalidRequest("more than one Authorization header")
	} else if len(hdrs) == 1 {
		bid, bsecret, err := parseBasic(hdrs[0])
		switch {
		case err != nil:
			return nil, err
		case formSecret:
			return nil, errInvalidRequest("the client used more than one authentication method (HTTP Basic and client_secret in the body)")
		case id != "" && id != bid:
			return nil, errInvalidRequest("client_id in the body does not match the HTTP Basic credentials")
		}
		id, secret, method = bid, bsecret, "client_secret_basic"
	}
	app := s.apps[id]
	h, confidential := s.hashes.Load(id)
	switch {
	case id == "":
		return nil, errInvalidClient("client authentication failed: no client credentials")
	case app == nil:
		return nil, errInvalidClient("client authentication failed")
	case !confidential && secret != "":
		return nil, errInvalidClient("client authentication failed: a public client must not send a client secret")
	case confidential && secret == "":
		return nil, errInvalidClient("client authentication failed: client secret required")
	case confidential && subtle.ConstantTimeCompare(h.([]byte), hashOf(secret)) != 1:
		return nil, errInvalidClient("client authentication failed")
	case app.Disabled:
		return nil, errUnauthorizedClient("the client is disabled")
	}
	if !confidential {
		method = "none"
	}
	return &authedClient{app: app, secret: secret, method: method}, nil
}

func hashOf(secret string) []byte { sum := sha256.Sum256([]byte(secret)); return sum[:] }

// parseBasic decodes "Basic base64(urlencode(id):urlencode(secret))".
func parseBasic(h string) (id, secret string, e *oauthError) {
	scheme, payload, ok := strings.Cut(strings.TrimSpace(h), " ")
	if !ok || !strings.EqualFold(scheme, "Basic") {
		return "", "", errInvalidClient("unsupported Authorization scheme; use HTTP Basic")
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(payload))
	rawID, rawSecret, ok := strings.Cut(string(raw), ":")
	if err != nil || !ok {
		return "", "", errInvalidClient("malformed HTTP Basic credentials")
	}
	id, err1 := url.QueryUnescape(rawID)
	secret, err2 := url.QueryUnescape(rawSecret)
	if err1 != nil || err2 != nil {
		return "", "", errInvalidClient("malformed HTTP Basic credentials: client_id and secret must be form-urlencoded (RFC 6749 §2.3.1)")
	}
	if id == "" {
		return "", "", errInvalidClient("malformed HTTP Basic credentials")
	}
	return id, secret, nil
}

// SetSecret stores a new client secret for the confidential application appID, as an
// ERP.net administrator does: from then on the old secret fails at once with invalid_client
// (a Trusted Application holds one secret, with no overlap window), while tokens already
// issued stay valid. Use it to test secret rotation (see Config.ClientSecretFile in the
// clientcreds, authcode and hybrid packages). An unknown or public application, or an empty
// secret, fails the test (or panics for a Server made by Start).
func (s *Server) SetSecret(appID, secret string) {
	if s.tb != nil {
		s.tb.Helper()
	}
	_, confidential := s.hashes.Load(appID)
	switch {
	case s.apps[appID] == nil:
		s.fail("SetSecret: no application %q", appID)
	case !confidential:
		s.fail("SetSecret: %q is a public application: it has no secret", appID)
	case secret == "":
		s.fail("SetSecret: the secret must not be empty")
	default:
		s.hashes.Store(appID, hashOf(secret))
		s.log.Info("erpnettest: client secret changed", "client_id", appID)
	}
}

// grant is what the token endpoint decided to issue.
type grant struct {
	app                                   *App
	secret, subject, userType, sid, nonce string // secret: only for an HS256-tampered ID token
	authTime                              time.Time
	scopes                                []string
	jti                                   string  // chosen before (a code's), or ""
	family                                *family // set when a refresh token is issued
}

func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	c, form, ok := s.clientForm(w, r)
	if !ok {
		return
	}
	var (
		g    grant
		oerr *oauthError
		now  = s.now()
	)
	switch gt := form.Get("grant_type"); gt {
	case "":
		oerr = errInvalidRequest("grant_type is required")
	case "authorization_code":
		g, oerr = s.redeemCode(c, form, now)
	case "refresh_token":
		g, oerr = s.redeemRefresh(c, form.Get("refresh_token"), form.Get("scope"), now)
	case "client_credentials":
		g, oerr = clientCredentials(c, form.Get("scope"))
	default:
		oerr = &oauthError{http.StatusBadRequest, "unsupported_grant_type", "unsupported grant_type"}
	}
	if oerr != nil {
		s.log.Info("erpnettest: token request refused", "client_id", c.app.ID, "error", oerr.code)
		writeOAuthError(w, oerr)
		return
	}
	resp := s.issue(g, now)
	s.log.Info("erpnettest: tokens issued", "client_id", c.app.ID, "auth_method", c.method, "scope", resp.Scope,
		"id_token", resp.IDToken != "", "refresh_token", resp.RefreshToken != "")
	writeJSON(w, http.StatusOK, resp)
}

func (s *Server) redeemCode(c *authedClient, form url.Values, now time.Time) (grant, *oauthError) {
	code, redirectURI, verifier := form.Get("code"), form.Get("redirect_uri"), form.Get("code_verifier")
	switch {
	case code == "":
		return grant{}, errInvalidRequest("code is required")
	case redirectURI == "":
		return grant{}, errInvalidRequest("redirect_uri is required")
	case verifier == "":
		return grant{}, errInvalidRequest("code_verifier is required (PKCE)")
	case !validPKCEValue(verifier):
		return grant{}, errInvalidRequest("malformed code_verifier")
	}
	s.codes.mu.Lock()
	defer s.codes.mu.Unlock()
	rec := s.codes.m[hashKey(code)]
	sum := sha256.Sum256([]byte(verifier))
	switch {
	case rec == nil || rec.clientID != c.app.ID:
		return grant{}, errInvalidGrant("invalid authorization code")
	case rec.used:
		s.tokens.revokeCode(rec)
		return grant{}, errInvalidGrant("authorization code already used; tokens issued from it were revoked")
	}
	rec.used, rec.jti = true, randomHex(16) // single use: any redemption attempt by the bound client consumes it
	switch {
	case !now.Before(rec.expires):
		return grant{}, errInvalidGrant("authorization code expired")
	case rec.redirectURI != redirectURI:
		return grant{}, errInvalidGrant("redirect_uri does not match the authorization request")
	case subtle.ConstantTimeCompare([]byte(b64url(sum[:])), []byte(rec.challenge)) != 1:
		return grant{}, errInvalidGrant("PKCE verification failed")
	case !s.signins.alive(rec.sid):
		return grant{}, errInvalidGrant("the sign-in session has ended")
	}
	g := grant{app: c.app, secret: c.secret, subject: rec.username, userType: "user", sid: rec.sid,
		authTime: rec.authTime, scopes: rec.scopes, nonce: rec.nonce, jti: rec.jti}
	if slices.Contains(rec.scopes, "offline_access") {
		rec.family = randomHex(16)
		g.family = &family{id: rec.family, clientID: c.app.ID, username: rec.username, sid: rec.sid,
			authTime: rec.authTime, scopes: rec.scopes, expires: now.Add(s.refreshLifetime(c.app))}
	}
	return g, nil
}

// redeemRefresh checks a refresh token and marks it rotated (one-time use). Presenting a
// rotated one revokes its whole family.
func (s *Server) redeemRefresh(c *authedClient, rt, scope string, now time.Time) (grant, *oauthError) {
	if rt == "" {
		return grant{}, errInvalidRequest("refresh_token is required")
	}
	s.tokens.mu.Lock()
	defer s.tokens.mu.Unlock()
	rec := s.tokens.refresh[hashKey(rt)]
	if rec == nil || s.tokens.families[rec.family] == nil || s.tokens.families[rec.family].clientID != c.app.ID {
		return grant{}, errInvalidGrant("invalid refresh token")
	}
	f := s.tokens.families[rec.family]
	switch {
	case rec.status == rtRotated:
		s.tokens.revokeFamilyLocked(f)
		s.log.Warn("erpnettest: refresh token reuse detected; family revoked", "client_id", f.clientID, "user", f.username)
		return grant{}, errInvalidGrant("refresh token already used; every refresh token of this sign-in was revoked")
	case rec.status == rtRevoked || f.revoked:
		return grant{}, errInvalidGrant("refresh token revoked")
	case !now.Before(f.expires):
		return grant{}, errInvalidGrant("refresh token expired")
	case !s.signins.alive(f.sid):
		return grant{}, errInvalidGrant("the sign-in session has ended")
	}
	scopes := f.scopes
	if scope != "" {
		for _, sc := range strings.Fields(scope) {
			if slices.Contains(allScopes, sc) && !slices.Contains(f.scopes, sc) {
				return grant{}, errInvalidScope("a refresh cannot widen the original grant")
			}
		}
		var oerr *oauthError
		if scopes, oerr = grantScopes(c.app, scope, f.scopes); oerr != nil {
			return grant{}, oerr
		}
	}
	rec.status = rtRotated
	return grant{app: c.app, secret: c.secret, subject: f.username, userType: "user", sid: f.sid,
		authTime: f.authTime, scopes: scopes, family: f}, nil
}

func clientCredentials(c *authedClient, scope string) (grant, *oauthError) {
	if c.method == "none" {
		return grant{}, errUnauthorizedClient("a public client cannot use client_credentials")
	}
	if c.app.SystemUser == "" {
		return grant{}, errUnauthorizedClient("the client is not allowed to act as a System User (SystemUserAllowed)")
	}
	for _, sc := range strings.Fields(scope) {
		if sc == "openid" || sc == "profile" || sc == "offline_access" {
			return grant{}, errInvalidScope("scope " + sc + " needs a user; not allowed with client_credentials")
		}
	}
	scopes, oerr := grantScopes(c.app, scope, apiScopes)
	return grant{app: c.app, subject: c.app.SystemUser, userType: "system", scopes: scopes}, oerr
}

func (s *Server) refreshLifetime(a *App) time.Duration {
	switch _, confidential := s.hashes.Load(a.ID); {
	case a.RefreshTokenLifetime > 0:
		return a.RefreshTokenLifetime
	case s.cfg.RefreshTokenLifetime > 0:
		return s.cfg.RefreshTokenLifetime
	case confidential:
		return 30 * 24 * time.Hour
	}
	return 24 * time.Hour
}

// issue signs the tokens of g and records them.
func (s *Server) issue(g grant, now time.Time) *tokenResponse {
	if g.jti == "" {
		g.jti = randomHex(16)
	}
	life := cmp.Or(g.app.AccessTokenLifetime, s.cfg.AccessTokenLifetime)
	name, email := g.subject, ""
	if u := s.user(g.subject); u != nil && g.userType == "user" {
		name, email = cmp.Or(u.Name, name), u.Email
	}
	claims := map[string]any{"iss": s.Authority(), "sub": g.subject, "aud": []string{"DomainAPI"}, "client_id": g.app.ID,
		"scope": g.scopes, "iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(life).Unix(), "jti": g.jti,
		"erp_user_type": g.userType, "name": name}
	if g.userType == "user" {
		claims["sid"], claims["auth_time"], claims["amr"], claims["idp"] = g.sid, g.authTime.Unix(), []string{"pwd"}, "local"
	}
	key := s.keys.current()
	at := signJWT(key, "at+jwt", claims)
	resp := &tokenResponse{AccessToken: at, TokenType: "Bearer", ExpiresIn: int64(life / time.Second), Scope: strings.Join(g.scopes, " ")}
	if s.ctl.knobs().OmitTokenType {
		resp.TokenType = ""
	}
	if g.userType == "user" && slices.Contains(g.scopes, "openid") {
		idc := map[string]any{"iss": s.Authority(), "sub": g.subject, "aud": g.app.ID, "iat": now.Unix(), "nbf": now.Unix(),
			"exp": now.Add(s.cfg.IDTokenLifetime).Unix(), "auth_time": g.authTime.Unix(), "sid": g.sid,
			"at_hash": atHash(at), "amr": []string{"pwd"}, "idp": "local"}
		if g.nonce != "" {
			idc["nonce"] = g.nonce
		}
		if slices.Contains(g.scopes, "profile") {
			idc["name"], idc["preferred_username"] = name, g.subject
			if email != "" {
				idc["email"] = email
			}
		}
		resp.IDToken = s.signIDToken(key, idc, g.secret)
	}
	rth, fam := "", ""
	if g.family != nil {
		resp.RefreshToken = randomToken(32)
		rth, fam = hashKey(resp.RefreshToken), g.family.id
	}
	s.tokens.record(now, &accessRecord{jti: g.jti, userType: g.userType, clientID: g.app.ID, subject: g.subject, sid: g.sid,
		family: fam, scopes: g.scopes, issued: now, expires: now.Add(life)}, g.family, rth)
	return resp
}
