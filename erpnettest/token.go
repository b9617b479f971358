package erpnettest

import (
	"cmp"
	"crypto/sha256"
	"crypto/subtle"
	"maps"
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
	return intersect(allScopes, a.Scopes)
}

// intersect returns the elements of a that b holds, in a's order.
func intersect(a, b []string) []string {
	return slices.DeleteFunc(slices.Clone(a), func(v string) bool { return !slices.Contains(b, v) })
}

// grantScopes computes requested ∩ allowed (∩ restrict, when not nil). Nothing requested
// means every allowed scope. Unknown scopes and an empty result are invalid_scope.
func grantScopes(app *App, requested string, restrict []string) ([]string, *oauthError) {
	allowed, req := allowedScopes(app), strings.Fields(requested)
	if restrict != nil {
		allowed = intersect(allowed, restrict)
	}
	switch out := intersect(allowed, req); {
	case len(req) == 0 && len(allowed) == 0:
		return nil, oauthErr("invalid_scope", "the client is not allowed any scope")
	case len(req) == 0:
		return allowed, nil
	case len(intersect(req, allScopes)) < len(req):
		return nil, oauthErr("invalid_scope", "unknown scope")
	case len(out) == 0:
		return nil, oauthErr("invalid_scope", "none of the requested scopes is allowed for this client")
	default:
		return out, nil
	}
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

// family is the lineage of refresh tokens from one code exchange.
type family struct {
	id, clientID, username, sid string
	authTime, expires           time.Time
	scopes, jtis                []string // jtis: the access tokens issued in it
	revoked                     bool
}

type refreshRecord struct {
	f       *family
	issued  time.Time
	rotated bool // redeemed: presenting it again revokes the family
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

// revokeFamilies revokes the families that match, with their refresh tokens and the access
// tokens issued in them.
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
	for _, jti := range f.jtis {
		t.revokeAccessLocked(jti)
	}
}

func (t *tokens) revokeAccessLocked(jti string) {
	if a := t.access[jti]; a != nil {
		a.revoked = true
	}
}

// revokeCode revokes what a replayed code's redemption issued (recorded before the
// redemption released the codes' lock).
func (t *tokens) revokeCode(rec *codeRecord) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.revokeAccessLocked(rec.jti)
	if f := t.families[rec.family]; f != nil {
		t.revokeFamilyLocked(f)
	}
}

// record remembers an issued access token and, with f, refresh token rth of family f.
func (t *tokens) record(now time.Time, a *accessRecord, f *family, rth string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if now.Sub(t.swept) > time.Minute { // forget what can no longer matter
		t.swept = now
		maps.DeleteFunc(t.access, func(_ string, old *accessRecord) bool { return now.After(old.expires.Add(time.Minute)) })
		maps.DeleteFunc(t.families, func(_ string, old *family) bool { return old != f && now.After(old.expires) })
		maps.DeleteFunc(t.refresh, func(_ string, r *refreshRecord) bool { return t.families[r.f.id] != r.f })
	}
	t.access[a.jti] = a
	if f == nil {
		return
	}
	t.families[f.id] = f
	f.jtis = append(f.jtis, a.jti)
	t.refresh[rth] = &refreshRecord{f: f, issued: now}
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

// oauthErr is the error code with desc: 401 for invalid_client, else 400.
func oauthErr(code, desc string) *oauthError {
	if code == "invalid_client" {
		return &oauthError{http.StatusUnauthorized, code, desc}
	}
	return &oauthError{http.StatusBadRequest, code, desc}
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
	var form url.Values
	c, oerr := func() (*authedClient, *oauthError) {
		var err error
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", "POST")
			return nil, &oauthError{http.StatusMethodNotAllowed, "invalid_request", "the endpoint accepts POST only"}
		}
		if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/x-www-form-urlencoded" {
			return nil, oauthErr("invalid_request", "Content-Type must be application/x-www-form-urlencoded")
		}
		if form, err = parseForm(w, r); err != nil {
			return nil, oauthErr("invalid_request", err.Error())
		}
		if d := firstDuplicate(form); d != "" {
			return nil, oauthErr("invalid_request", "parameter "+d+" given more than once")
		}
		return s.authenticateClient(r, form)
	}()
	if oerr != nil {
		s.log.Info("erpnettest: client refused", "path", r.URL.Path, "error", oerr.code)
		writeOAuthError(w, oerr)
	}
	return c, form, oerr == nil
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
		return nil, oauthErr("invalid_request", "more than one Authorization header")
	} else if len(hdrs) == 1 { // Basic base64(urlencode(id):urlencode(secret))
		rawID, rawSecret, ok := r.BasicAuth()
		bid, err1 := url.QueryUnescape(rawID)
		bsecret, err2 := url.QueryUnescape(rawSecret)
		switch {
		case !ok || bid == "":
			return nil, oauthErr("invalid_client", "malformed or unsupported Authorization header; use HTTP Basic")
		case err1 != nil || err2 != nil:
			return nil, oauthErr("invalid_client", "malformed HTTP Basic credentials: client_id and secret must be form-urlencoded (RFC 6749 §2.3.1)")
		case formSecret:
			return nil, oauthErr("invalid_request", "the client used more than one authentication method (HTTP Basic and client_secret in the body)")
		case id != "" && id != bid:
			return nil, oauthErr("invalid_request", "client_id in the body does not match the HTTP Basic credentials")
		}
		id, secret, method = bid, bsecret, "client_secret_basic"
	}
	app := s.apps[id]
	h, confidential := s.hashes.Load(id)
	switch {
	case id == "":
		return nil, oauthErr("invalid_client", "client authentication failed: no client credentials")
	case app == nil:
		return nil, oauthErr("invalid_client", "client authentication failed")
	case !confidential && secret != "":
		return nil, oauthErr("invalid_client", "client authentication failed: a public client must not send a client secret")
	case confidential && secret == "":
		return nil, oauthErr("invalid_client", "client authentication failed: client secret required")
	case confidential && subtle.ConstantTimeCompare(h.([]byte), hashOf(secret)) != 1:
		return nil, oauthErr("invalid_client", "client authentication failed")
	case app.Disabled:
		return nil, oauthErr("unauthorized_client", "the client is disabled")
	}
	if !confidential {
		method = "none"
	}
	return &authedClient{app: app, secret: secret, method: method}, nil
}

func hashOf(secret string) []byte { sum := sha256.Sum256([]byte(secret)); return sum[:] }

// SetSecret stores a new client secret for the confidential application appID, as an
// ERP.net administrator does: from then on the old secret fails at once with invalid_client
// (a Trusted Application holds one secret, with no overlap window), while tokens already
// issued stay valid. Use it to test secret rotation (see Config.ClientSecretFile in the
// clientcreds, authcode and hybrid packages). An unknown or public application, or an empty
// secret, fails the test (or panics for a Server made by Start).
func (s *Server) SetSecret(appID, secret string) {
	s.tb.Helper()
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
		oerr = oauthErr("invalid_request", "grant_type is required")
	case "authorization_code":
		s.codes.mu.Lock() // held while the tokens are issued: a replay revokes what they are
		defer s.codes.mu.Unlock()
		g, oerr = s.redeemCode(c, form, now)
	case "refresh_token":
		g, oerr = s.redeemRefresh(c, form.Get("refresh_token"), form.Get("scope"), now)
	case "client_credentials":
		g, oerr = clientCredentials(c, form.Get("scope"))
	default:
		oerr = oauthErr("unsupported_grant_type", "unsupported grant_type")
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
		return grant{}, oauthErr("invalid_request", "code is required")
	case redirectURI == "":
		return grant{}, oauthErr("invalid_request", "redirect_uri is required")
	case verifier == "":
		return grant{}, oauthErr("invalid_request", "code_verifier is required (PKCE)")
	case !validPKCEValue(verifier):
		return grant{}, oauthErr("invalid_request", "malformed code_verifier")
	}
	rec := s.codes.m[hashKey(code)]
	sum := sha256.Sum256([]byte(verifier))
	switch {
	case rec == nil || rec.clientID != c.app.ID:
		return grant{}, oauthErr("invalid_grant", "invalid authorization code")
	case rec.used:
		s.tokens.revokeCode(rec)
		return grant{}, oauthErr("invalid_grant", "authorization code already used; tokens issued from it were revoked")
	}
	rec.used, rec.jti = true, randomHex(16) // single use: any redemption attempt by the bound client consumes it
	switch {
	case !now.Before(rec.expires):
		return grant{}, oauthErr("invalid_grant", "authorization code expired")
	case rec.redirectURI != redirectURI:
		return grant{}, oauthErr("invalid_grant", "redirect_uri does not match the authorization request")
	case subtle.ConstantTimeCompare([]byte(b64url(sum[:])), []byte(rec.challenge)) != 1:
		return grant{}, oauthErr("invalid_grant", "PKCE verification failed")
	case !s.signins.alive(rec.sid):
		return grant{}, oauthErr("invalid_grant", "the sign-in session has ended")
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
		return grant{}, oauthErr("invalid_request", "refresh_token is required")
	}
	s.tokens.mu.Lock()
	defer s.tokens.mu.Unlock()
	rec := s.tokens.refresh[hashKey(rt)]
	if rec == nil || rec.f.clientID != c.app.ID {
		return grant{}, oauthErr("invalid_grant", "invalid refresh token")
	}
	f := rec.f
	switch {
	case rec.rotated:
		s.tokens.revokeFamilyLocked(f)
		s.log.Warn("erpnettest: refresh token reuse detected; family revoked", "client_id", f.clientID, "user", f.username)
		return grant{}, oauthErr("invalid_grant", "refresh token already used; every refresh token of this sign-in was revoked")
	case f.revoked:
		return grant{}, oauthErr("invalid_grant", "refresh token revoked")
	case !now.Before(f.expires):
		return grant{}, oauthErr("invalid_grant", "refresh token expired")
	case !s.signins.alive(f.sid):
		return grant{}, oauthErr("invalid_grant", "the sign-in session has ended")
	}
	scopes := f.scopes
	if scope != "" {
		for _, sc := range strings.Fields(scope) {
			if slices.Contains(allScopes, sc) && !slices.Contains(f.scopes, sc) {
				return grant{}, oauthErr("invalid_scope", "a refresh cannot widen the original grant")
			}
		}
		var oerr *oauthError
		if scopes, oerr = grantScopes(c.app, scope, f.scopes); oerr != nil {
			return grant{}, oerr
		}
	}
	rec.rotated = true
	return grant{app: c.app, secret: c.secret, subject: f.username, userType: "user", sid: f.sid,
		authTime: f.authTime, scopes: scopes, family: f}, nil
}

func clientCredentials(c *authedClient, scope string) (grant, *oauthError) {
	if c.method == "none" {
		return grant{}, oauthErr("unauthorized_client", "a public client cannot use client_credentials")
	}
	if c.app.SystemUser == "" {
		return grant{}, oauthErr("unauthorized_client", "the client is not allowed to act as a System User (SystemUserAllowed)")
	}
	for _, sc := range strings.Fields(scope) {
		if sc == "openid" || sc == "profile" || sc == "offline_access" {
			return grant{}, oauthErr("invalid_scope", "scope "+sc+" needs a user; not allowed with client_credentials")
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
