package devserver

import (
	"errors"
	"html/template"
	"mime"
	"net/http"
	"net/url"
	"strings"
)

func (s *Server) handleDiscovery(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeJSON(w, http.StatusMethodNotAllowed, map[string]any{"error": "invalid_request", "error_description": "method not allowed"})
		return
	}
	base := s.base(r)
	iss := base + "/id"
	doc := map[string]any{
		"issuer":                                iss,
		"jwks_uri":                              base + pathJWKS,
		"authorization_endpoint":                base + pathAuthorize,
		"token_endpoint":                        base + pathToken,
		"userinfo_endpoint":                     base + pathUserinfo,
		"end_session_endpoint":                  base + pathEndSession,
		"introspection_endpoint":                base + pathIntrospect,
		"frontchannel_logout_supported":         false,
		"backchannel_logout_supported":          false,
		"scopes_supported":                      allScopes,
		"claims_supported":                      []string{"sub", "name", "preferred_username", "email", "sid", "auth_time", "amr", "idp", "erp_user_type", "client_id", "scope"},
		"grant_types_supported":                 []string{"authorization_code", "client_credentials", "refresh_token"},
		"response_types_supported":              []string{"code", "token", "id_token", "code id_token"},
		"response_modes_supported":              []string{"query"},
		"token_endpoint_auth_methods_supported": s.cfg.TokenEndpointAuthMethods,
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"subject_types_supported":               []string{"public"},
		"code_challenge_methods_supported":      []string{"S256"},
		"request_parameter_supported":           false,
		"request_uri_parameter_supported":       false,
		"prompt_values_supported":               []string{"none", "login", "consent", "select_account"},
	}
	if !s.cfg.DisableRevocation {
		doc["revocation_endpoint"] = base + pathRevocation
	}
	if s.cfg.AuthorizationResponseIss {
		doc["authorization_response_iss_parameter_supported"] = true
	}
	writeJSON(w, http.StatusOK, doc)
}

func (s *Server) handleJWKS(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeJSON(w, http.StatusMethodNotAllowed, map[string]any{"error": "invalid_request", "error_description": "method not allowed"})
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	_, _ = w.Write(s.jwksDocument())
}

func (s *Server) handleAutoDiscovery(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeAPIError(w, http.StatusMethodNotAllowed, "MethodNotAllowed", "method not allowed")
		return
	}
	base := s.base(r)
	writeJSON(w, http.StatusOK, map[string]any{
		"WebSites": []map[string]any{
			{"Type": "ID", "Url": base + "/id"},
			{"Type": "DomainAPI", "Url": base + "/api/domain", "AdditionalProperties": map[string]any{
				"ODataServiceRoot": base + pathODataRoot + "/",
			}},
		},
	})
}

func (s *Server) handleUserinfo(w http.ResponseWriter, r *http.Request) {
	noStore(w)
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		writeJSON(w, http.StatusMethodNotAllowed, map[string]any{"error": "invalid_request", "error_description": "method not allowed"})
		return
	}
	hdrs := r.Header.Values("Authorization")
	var tok string
	if len(hdrs) == 1 {
		if scheme, rest, ok := strings.Cut(strings.TrimSpace(hdrs[0]), " "); ok && strings.EqualFold(scheme, "Bearer") {
			tok = strings.TrimSpace(rest)
		}
	}
	if tok == "" {
		w.Header().Set("WWW-Authenticate", bearerChallenge("", "", ""))
		writeJSON(w, http.StatusUnauthorized, map[string]any{"error": "invalid_token", "error_description": "a bearer access token is required"})
		return
	}
	p, err := s.validateToken(tok, s.issuer(r), s.now())
	if err != nil {
		w.Header().Set("WWW-Authenticate", bearerChallenge("invalid_token", err.Error(), ""))
		writeJSON(w, http.StatusUnauthorized, map[string]any{"error": "invalid_token", "error_description": err.Error()})
		return
	}
	if p.kind != "user" || !contains(p.scopes, ScopeOpenID) {
		w.Header().Set("WWW-Authenticate", bearerChallenge("insufficient_scope", "userinfo needs a user token with scope openid", ScopeOpenID))
		writeJSON(w, http.StatusForbidden, map[string]any{"error": "insufficient_scope", "error_description": "userinfo needs a user token with scope openid"})
		return
	}
	out := map[string]any{"sub": p.subject}
	if u := s.users[p.subject]; u != nil && contains(p.scopes, ScopeProfile) {
		out["preferred_username"] = u.Username
		if u.Name != "" {
			out["name"] = u.Name
		}
		if u.Email != "" {
			out["email"] = u.Email
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// clientEndpointForm parses and client-authenticates a POST to revocation or introspection.
func (s *Server) clientEndpointForm(w http.ResponseWriter, r *http.Request) (*authedClient, url.Values, bool) {
	noStore(w)
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		writeOAuthError(w, &oauthError{status: http.StatusMethodNotAllowed, code: "invalid_request", desc: "POST only"})
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
		writeOAuthError(w, oerr)
		return nil, nil, false
	}
	if form.Get("token") == "" {
		writeOAuthError(w, errInvalidRequest("token is required"))
		return nil, nil, false
	}
	return c, form, true
}

// handleRevocation implements RFC 7009. Refresh tokens are revoked with their whole family
// (and the access tokens issued in it); a JWT access token is revoked by jti. Tokens of other
// clients and unknown tokens are ignored (200).
func (s *Server) handleRevocation(w http.ResponseWriter, r *http.Request) {
	c, form, ok := s.clientEndpointForm(w, r)
	if !ok {
		return
	}
	tok := form.Get("token")
	now := s.now()
	revoked := ""
	var jti string
	if strings.Count(tok, ".") == 2 {
		if _, claims, err := s.verifyJWT(tok, now); err == nil {
			jti = strClaim(claims, "jti")
		}
	}
	s.mu.Lock()
	if rr := s.refresh[hashKey(tok)]; rr != nil {
		if f := s.families[rr.family]; f != nil && f.clientID == c.app.ApplicationURI {
			s.revokeFamilyLocked(f)
			revoked = "refresh_token"
		}
	} else if a := s.access[jti]; jti != "" && a != nil && a.clientID == c.app.ApplicationURI {
		a.revoked = true
		revoked = "access_token"
	}
	s.mu.Unlock()
	s.log.Info("devserver: revocation", "client_id", c.app.ApplicationURI, "revoked", revoked)
	w.WriteHeader(http.StatusOK)
}

// handleIntrospect implements RFC 7662 for confidential clients.
func (s *Server) handleIntrospect(w http.ResponseWriter, r *http.Request) {
	c, form, ok := s.clientEndpointForm(w, r)
	if !ok {
		return
	}
	if c.app.ClientType == Public {
		writeOAuthError(w, errInvalidClient("introspection requires an authenticated (confidential) client"))
		return
	}
	tok := form.Get("token")
	now := s.now()
	inactive := map[string]any{"active": false}
	s.mu.Lock()
	if rr := s.refresh[hashKey(tok)]; rr != nil {
		f := s.families[rr.family]
		var si *signin
		if f != nil {
			si = s.signins[f.sid]
		}
		active := f != nil && rr.status == rtActive && !f.revoked && now.Before(f.expires) && si != nil && !si.ended
		var out map[string]any
		if active {
			out = map[string]any{
				"active": true, "token_type": "refresh_token", "client_id": f.clientID, "sub": f.username,
				"username": f.username, "scope": scopeString(f.scopes), "iat": rr.issued.Unix(),
				"exp": f.expires.Unix(), "iss": s.issuer(r), "sid": f.sid,
			}
		}
		s.mu.Unlock()
		if out == nil {
			out = inactive
		}
		writeJSON(w, http.StatusOK, out)
		return
	}
	s.mu.Unlock()
	p, err := s.validateToken(tok, s.issuer(r), now)
	if err != nil {
		writeJSON(w, http.StatusOK, inactive)
		return
	}
	out := map[string]any{
		"active": true, "token_type": p.tokenType, "client_id": p.clientID, "sub": p.subject,
		"username": p.subject, "scope": scopeString(p.scopes), "iat": p.issuedAt.Unix(),
		"exp": p.expiresAt.Unix(), "iss": s.issuer(r), "erp_user_type": p.kind,
	}
	if p.tokenType == "access_token" {
		out["aud"] = []string{"DomainAPI"}
		out["jti"] = p.jti
		out["nbf"] = p.issuedAt.Unix()
		if p.sid != "" {
			out["sid"] = p.sid
		}
	}
	writeJSON(w, http.StatusOK, out)
}

var errBadHint = errors.New("invalid id_token_hint")

// handleEndSession implements RP-initiated logout: it ends the sign-in named by id_token_hint
// (and the browser's own sign-in), its ERP.net session and its refresh tokens, then redirects
// to an exactly registered post_logout_redirect_uri with state, or shows a signed-out page.
func (s *Server) handleEndSession(w http.ResponseWriter, r *http.Request) {
	noStore(w)
	params, ok := s.requestParams(w, r)
	if !ok {
		return
	}
	if d := firstDuplicate(params); d != "" {
		s.errorPage(w, http.StatusBadRequest, "invalid_request", "parameter "+d+" given more than once")
		return
	}
	now := s.now()
	hint, plr, state := params.Get("id_token_hint"), params.Get("post_logout_redirect_uri"), params.Get("state")
	var sid, clientID string
	if hint != "" {
		hdr, c, err := s.verifyJWT(hint, now)
		if err == nil && (!strings.EqualFold(hdr.Typ, "JWT") || strClaim(c, "iss") != s.issuer(r)) {
			err = errBadHint
		}
		if err != nil {
			s.errorPage(w, http.StatusBadRequest, "invalid_request", "invalid id_token_hint")
			return
		}
		sid = strClaim(c, "sid")
		if auds := listClaim(c, "aud"); len(auds) == 1 {
			clientID = auds[0]
		}
		if cid := params.Get("client_id"); cid != "" && cid != clientID {
			s.errorPage(w, http.StatusBadRequest, "invalid_request", "client_id does not match id_token_hint")
			return
		}
	}
	if plr != "" {
		app := s.apps[clientID]
		switch {
		case hint == "":
			s.errorPage(w, http.StatusBadRequest, "invalid_request", "post_logout_redirect_uri requires id_token_hint")
			return
		case app == nil || app.Disabled:
			s.errorPage(w, http.StatusBadRequest, "invalid_client", "unknown or disabled client")
			return
		case !redirectURIAllowed(app.PostLogoutRedirectURIs, plr):
			s.errorPage(w, http.StatusBadRequest, "invalid_request", "post_logout_redirect_uri is not registered for this client")
			return
		}
	}
	current := s.cookieSignin(r)
	ended := 0
	s.mu.Lock()
	if si := s.signins[sid]; sid != "" && si != nil && !si.ended {
		s.endSigninLocked(si)
		ended++
	}
	if current != nil {
		if si := s.signins[current.sid]; si != nil && !si.ended {
			s.endSigninLocked(si)
			ended++
		}
	}
	s.mu.Unlock()
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/id", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteLaxMode})
	s.log.Info("devserver: end session", "client_id", clientID, "signins_ended", ended)
	if plr != "" {
		target := plr
		if state != "" {
			target = appendQuery(plr, url.Values{"state": {state}})
		}
		http.Redirect(w, r, target, http.StatusFound)
		return
	}
	setPageHeaders(w)
	w.WriteHeader(http.StatusOK)
	_ = signedOutTemplate.Execute(w, nil)
}

var signedOutTemplate = template.Must(template.New("out").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Signed out - ERP.net dev identity server</title></head>
<body><h1>Signed out</h1><p id="signed-out">You are now signed out.</p></body></html>
`))
