package devserver

import (
	"crypto/sha256"
	"crypto/subtle"
	"mime"
	"net/http"
	"strings"
	"time"
)

// tokenResponse is the RFC 6749 §5.1 success body.
type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type,omitempty"`
	ExpiresIn    int64  `json:"expires_in"`
	Scope        string `json:"scope"`
	IDToken      string `json:"id_token,omitempty"`
	RefreshToken string `json:"refresh_token,omitempty"`
}

func (s *Server) handleToken(w http.ResponseWriter, r *http.Request) {
	noStore(w)
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		writeOAuthError(w, &oauthError{status: http.StatusMethodNotAllowed, code: "invalid_request", desc: "the token endpoint accepts POST only"})
		return
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/x-www-form-urlencoded" {
		writeOAuthError(w, errInvalidRequest("Content-Type must be application/x-www-form-urlencoded"))
		return
	}
	form, err := parseForm(w, r)
	if err != nil {
		writeOAuthError(w, errInvalidRequest(err.Error()))
		return
	}
	if d := firstDuplicate(form); d != "" {
		writeOAuthError(w, errInvalidRequest("parameter "+d+" given more than once"))
		return
	}
	client, oerr := s.authenticateClient(r, form)
	if oerr != nil {
		s.log.Info("devserver: token request refused", "grant_type", truncate(form.Get("grant_type")), "error", oerr.code)
		writeOAuthError(w, oerr)
		return
	}
	var (
		resp *tokenResponse
		gt   = form.Get("grant_type")
	)
	switch gt {
	case "":
		oerr = errInvalidRequest("grant_type is required")
	case "authorization_code":
		resp, oerr = s.grantAuthorizationCode(r, client, form)
	case "refresh_token":
		resp, oerr = s.grantRefreshToken(r, client, form)
	case "client_credentials":
		resp, oerr = s.grantClientCredentials(r, client, form)
	default:
		oerr = &oauthError{status: http.StatusBadRequest, code: "unsupported_grant_type", desc: "unsupported grant_type"}
	}
	if oerr != nil {
		s.log.Info("devserver: token request refused", "client_id", client.app.ApplicationURI, "grant_type", truncate(gt), "error", oerr.code)
		writeOAuthError(w, oerr)
		return
	}
	s.log.Info("devserver: tokens issued", "client_id", client.app.ApplicationURI, "auth_method", client.method, "grant_type", gt, "scope", resp.Scope,
		"id_token", resp.IDToken != "", "refresh_token", resp.RefreshToken != "")
	writeJSON(w, http.StatusOK, resp)
}

func truncate(v string) string {
	if len(v) > 64 {
		return v[:64]
	}
	return v
}

// s256 is the PKCE S256 transform.
func s256(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return b64url(sum[:])
}

func (s *Server) grantAuthorizationCode(r *http.Request, c *authedClient, form map[string][]string) (*tokenResponse, *oauthError) {
	get := func(k string) string {
		if v := form[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	code, redirectURI, verifier := get("code"), get("redirect_uri"), get("code_verifier")
	switch {
	case code == "":
		return nil, errInvalidRequest("code is required")
	case redirectURI == "":
		return nil, errInvalidRequest("redirect_uri is required")
	case verifier == "":
		return nil, errInvalidRequest("code_verifier is required (PKCE)")
	case !validPKCEValue(verifier):
		return nil, errInvalidRequest("malformed code_verifier")
	}
	now := s.now()
	s.mu.Lock()
	rec := s.codes[hashKey(code)]
	var fail *oauthError
	switch {
	case rec == nil:
		fail = errInvalidGrant("invalid authorization code")
	case rec.clientID != c.app.ApplicationURI:
		fail = errInvalidGrant("invalid authorization code")
		rec = nil
	case rec.used:
		s.revokeCodeLocked(rec)
		fail = errInvalidGrant("authorization code already used; tokens issued from it were revoked")
	}
	if rec != nil && fail == nil {
		rec.used = true // single use: any redemption attempt by the bound client consumes it
		si := s.signins[rec.sid]
		switch {
		case !now.Before(rec.expires):
			fail = errInvalidGrant("authorization code expired")
		case rec.redirectURI != redirectURI:
			fail = errInvalidGrant("redirect_uri does not match the authorization request")
		case subtle.ConstantTimeCompare([]byte(s256(verifier)), []byte(rec.challenge)) != 1:
			fail = errInvalidGrant("PKCE verification failed")
		case si == nil || si.ended:
			fail = errInvalidGrant("the sign-in session has ended")
		}
	}
	var g grant
	if fail == nil {
		g = grant{
			app: c.app, secret: c.secret, subject: rec.username, userType: "user",
			sid: rec.sid, authTime: rec.authTime, scopes: rec.scopes, nonce: rec.nonce, code: rec,
		}
		if contains(rec.scopes, ScopeOfflineAccess) {
			f := &family{
				id: randomHex(16), clientID: c.app.ApplicationURI, username: rec.username, sid: rec.sid,
				authTime: rec.authTime, scopes: rec.scopes, created: now, expires: now.Add(s.refreshLifetime(c.app)),
			}
			s.families[f.id] = f
			rec.family = f.id
			g.family = f
		}
	}
	s.mu.Unlock()
	if fail != nil {
		return nil, fail
	}
	return s.issue(r, g, now)
}

// revokeCodeLocked revokes every token issued from a replayed code.
func (s *Server) revokeCodeLocked(rec *codeRecord) {
	for _, jti := range rec.jtis {
		if a := s.access[jti]; a != nil {
			a.revoked = true
		}
	}
	if f := s.families[rec.family]; f != nil {
		s.revokeFamilyLocked(f)
	}
}

func (s *Server) grantRefreshToken(r *http.Request, c *authedClient, form map[string][]string) (*tokenResponse, *oauthError) {
	var rt, scope string
	if v := form["refresh_token"]; len(v) > 0 {
		rt = v[0]
	}
	if v := form["scope"]; len(v) > 0 {
		scope = v[0]
	}
	if rt == "" {
		return nil, errInvalidRequest("refresh_token is required")
	}
	now := s.now()
	g, oerr := s.redeemRefreshToken(c, rt, scope, now)
	if oerr != nil {
		return nil, oerr
	}
	return s.issue(r, g, now)
}

// redeemRefreshToken checks a refresh token and marks it rotated (one-time use). Presenting an
// already rotated token revokes its whole family.
func (s *Server) redeemRefreshToken(c *authedClient, rt, scope string, now time.Time) (grant, *oauthError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec := s.refresh[hashKey(rt)]
	if rec == nil {
		return grant{}, errInvalidGrant("invalid refresh token")
	}
	f := s.families[rec.family]
	if f == nil || f.clientID != c.app.ApplicationURI {
		return grant{}, errInvalidGrant("invalid refresh token")
	}
	si := s.signins[f.sid]
	switch {
	case rec.status == rtRotated:
		s.revokeFamilyLocked(f)
		s.log.Warn("devserver: refresh token reuse detected; family revoked", "client_id", f.clientID, "user", f.username)
		return grant{}, errInvalidGrant("refresh token already used; every refresh token of this sign-in was revoked")
	case rec.status == rtRevoked || f.revoked:
		return grant{}, errInvalidGrant("refresh token revoked")
	case !now.Before(f.expires):
		return grant{}, errInvalidGrant("refresh token expired")
	case si == nil || si.ended:
		return grant{}, errInvalidGrant("the sign-in session has ended")
	}
	scopes := f.scopes
	if scope != "" {
		for _, sc := range strings.Fields(scope) {
			if isKnownScope(sc) && !contains(f.scopes, sc) {
				return grant{}, errInvalidScope("a refresh cannot widen the original grant")
			}
		}
		var oerr *oauthError
		if scopes, oerr = grantScopes(c.app, scope, f.scopes); oerr != nil {
			return grant{}, oerr
		}
	}
	rec.status = rtRotated
	return grant{
		app: c.app, secret: c.secret, subject: f.username, userType: "user", sid: f.sid,
		authTime: f.authTime, scopes: scopes, family: f,
	}, nil
}

func (s *Server) grantClientCredentials(r *http.Request, c *authedClient, form map[string][]string) (*tokenResponse, *oauthError) {
	if c.app.ClientType == Public {
		return nil, errUnauthorizedClient("a public client cannot use client_credentials")
	}
	if !c.app.SystemUserAllowed || c.app.SystemUser == "" {
		return nil, errUnauthorizedClient("the client is not allowed to act as a System User (SystemUserAllowed)")
	}
	var scope string
	if v := form["scope"]; len(v) > 0 {
		scope = v[0]
	}
	for _, sc := range strings.Fields(scope) {
		if sc == ScopeOpenID || sc == ScopeProfile || sc == ScopeOfflineAccess {
			return nil, errInvalidScope("scope " + sc + " needs a user; not allowed with client_credentials")
		}
	}
	scopes, oerr := grantScopes(c.app, scope, apiScopes)
	if oerr != nil {
		return nil, oerr
	}
	g := grant{
		app: c.app, secret: c.secret, subject: c.app.SystemUser, userType: "system", scopes: scopes,
	}
	return s.issue(r, g, s.now())
}

// grant is what the token endpoint decided to issue.
type grant struct {
	app      *App
	secret   string // presented client secret, only for IDTokenTamper HS256
	subject  string
	userType string // "user" or "system"
	sid      string
	authTime time.Time
	scopes   []string
	nonce    string
	code     *codeRecord // set for authorization_code
	family   *family     // set when a refresh token is issued
}

// issue signs the tokens of g and records them.
func (s *Server) issue(r *http.Request, g grant, now time.Time) (*tokenResponse, *oauthError) {
	iss := s.issuer(r)
	jti := randomHex(16)
	life := s.accessLifetime(g.app)
	exp := now.Add(life)
	name := g.subject
	email := ""
	if u := s.users[g.subject]; u != nil && g.userType == "user" {
		if u.Name != "" {
			name = u.Name
		}
		email = u.Email
	}
	claims := map[string]any{
		"iss":           iss,
		"sub":           g.subject,
		"aud":           []string{"DomainAPI"},
		"client_id":     g.app.ApplicationURI,
		"scope":         g.scopes,
		"iat":           now.Unix(),
		"nbf":           now.Unix(),
		"exp":           exp.Unix(),
		"jti":           jti,
		"erp_user_type": g.userType,
		"name":          name,
	}
	if g.userType == "user" {
		claims["sid"] = g.sid
		claims["auth_time"] = g.authTime.Unix()
		claims["amr"] = []string{"pwd"}
		claims["idp"] = "local"
	}
	key := s.currentKey()
	at, err := signRS256(key, "at+jwt", claims)
	if err != nil {
		return nil, serverError()
	}
	resp := &tokenResponse{
		AccessToken: at,
		ExpiresIn:   int64(life / time.Second),
		Scope:       scopeString(g.scopes),
	}
	if !s.cfg.OmitTokenType {
		resp.TokenType = "Bearer"
	}
	if g.userType == "user" && contains(g.scopes, ScopeOpenID) {
		idc := map[string]any{
			"iss":       iss,
			"sub":       g.subject,
			"aud":       g.app.ApplicationURI,
			"iat":       now.Unix(),
			"nbf":       now.Unix(),
			"exp":       now.Add(s.cfg.IDTokenLifetime).Unix(),
			"auth_time": g.authTime.Unix(),
			"sid":       g.sid,
			"at_hash":   atHash(at),
			"amr":       []string{"pwd"},
			"idp":       "local",
		}
		if g.nonce != "" {
			idc["nonce"] = g.nonce
		}
		if contains(g.scopes, ScopeProfile) {
			idc["name"] = name
			idc["preferred_username"] = g.subject
			if email != "" {
				idc["email"] = email
			}
		}
		idt, err := s.signIDToken(key, idc, g.secret)
		if err != nil {
			return nil, serverError()
		}
		resp.IDToken = idt
	}
	var rt string
	if g.family != nil {
		rt = randomToken(32)
		resp.RefreshToken = rt
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	s.sweepLocked(now)
	fam := ""
	if g.family != nil {
		fam = g.family.id
	}
	s.access[jti] = &accessRecord{
		jti: jti, userType: g.userType, clientID: g.app.ApplicationURI, subject: g.subject, sid: g.sid,
		family: fam, scopes: g.scopes, issued: now, expires: exp,
	}
	if g.code != nil {
		g.code.jtis = append(g.code.jtis, jti)
	}
	if g.family != nil {
		g.family.jtis = append(g.family.jtis, jti)
		s.refresh[hashKey(rt)] = &refreshRecord{family: g.family.id, issued: now}
		if _, alive := s.families[g.family.id]; !alive { // swept meanwhile (expired)
			s.families[g.family.id] = g.family
		}
		if g.family.revoked { // revoked while we were signing: the new token is born dead
			s.revokeFamilyLocked(g.family)
		}
	}
	return resp, nil
}

func serverError() *oauthError {
	return &oauthError{status: http.StatusInternalServerError, code: "server_error", desc: "token signing failed"}
}
