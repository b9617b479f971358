package erpnettest

import (
	"cmp"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

func (s *Server) discovery(w http.ResponseWriter, r *http.Request) {
	if methodNotAllowed(w, r, http.MethodGet, http.MethodHead) {
		return
	}
	base := s.url
	doc := map[string]any{
		"issuer":                                s.Authority(),
		"jwks_uri":                              base + pathJWKS,
		"authorization_endpoint":                base + pathAuthorize,
		"token_endpoint":                        base + pathToken,
		"userinfo_endpoint":                     base + pathUserinfo,
		"revocation_endpoint":                   base + pathRevocation,
		"introspection_endpoint":                base + pathIntrospect,
		"end_session_endpoint":                  base + pathEndSession,
		"frontchannel_logout_supported":         false,
		"backchannel_logout_supported":          false,
		"scopes_supported":                      allScopes,
		"claims_supported":                      []string{"sub", "name", "preferred_username", "email", "sid", "auth_time", "amr", "idp", "erp_user_type", "client_id", "scope"},
		"grant_types_supported":                 []string{"authorization_code", "client_credentials", "refresh_token"},
		"response_types_supported":              []string{"code", "token", "id_token", "code id_token"},
		"response_modes_supported":              []string{"query"},
		"token_endpoint_auth_methods_supported": []string{"client_secret_basic", "client_secret_post"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"subject_types_supported":               []string{"public"},
		"code_challenge_methods_supported":      []string{"S256"},
		"request_parameter_supported":           false,
		"request_uri_parameter_supported":       false,
		"prompt_values_supported":               []string{"none", "login", "consent", "select_account"},
	}
	k := s.ctl.knobs()
	if k.NoRevocation {
		delete(doc, "revocation_endpoint")
	}
	if k.AuthMethods != nil {
		doc["token_endpoint_auth_methods_supported"] = k.AuthMethods
	}
	if !s.cfg.OmitIss {
		doc["authorization_response_iss_parameter_supported"] = true
	}
	writeJSON(w, http.StatusOK, doc)
}

func (s *Server) autoDiscovery(w http.ResponseWriter, r *http.Request) {
	if methodNotAllowed(w, r, http.MethodGet, http.MethodHead) {
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"WebSites": []map[string]any{
		{"Type": "ID", "Url": s.Authority()},
		{"Type": "DomainAPI", "Url": s.url + "/api/domain", "AdditionalProperties": map[string]any{"ODataServiceRoot": s.DomainAPI()}},
	}})
}

// bearerChallenge builds a WWW-Authenticate value (RFC 6750 §3).
func bearerChallenge(code, desc, scope string) string {
	v := `Bearer realm="ERP.net"`
	if code != "" {
		v += `, error="` + code + `"`
		if desc != "" {
			v += `, error_description="` + strings.ReplaceAll(desc, `"`, `'`) + `"`
		}
	}
	if scope != "" {
		v += `, scope="` + scope + `"`
	}
	return v
}

func (s *Server) userinfo(w http.ResponseWriter, r *http.Request) {
	noStore(w)
	if methodNotAllowed(w, r, http.MethodGet, http.MethodPost) {
		return
	}
	refuse := func(status int, code, desc, scope string) {
		w.Header().Set("WWW-Authenticate", bearerChallenge(code, desc, scope))
		writeJSON(w, status, map[string]any{"error": cmp.Or(code, "invalid_token"), "error_description": desc})
	}
	tok, via, _, _, _ := credential(r)
	if via != "bearer" || tok == "" {
		refuse(http.StatusUnauthorized, "", "a bearer access token is required", "")
		return
	}
	p, err := s.validateToken(tok, s.now())
	switch {
	case err != nil:
		refuse(http.StatusUnauthorized, "invalid_token", err.Error(), "")
		return
	case p.kind != "user" || !slices.Contains(p.scopes, "openid"):
		refuse(http.StatusForbidden, "insufficient_scope", "userinfo needs a user token with scope openid", "openid")
		return
	}
	out := map[string]any{"sub": p.subject}
	if u := s.user(p.subject); u != nil && slices.Contains(p.scopes, "profile") {
		out["preferred_username"], out["name"], out["email"] = u.Username, u.Name, u.Email
		maps.DeleteFunc(out, func(_ string, v any) bool { return v == "" })
	}
	writeJSON(w, http.StatusOK, out)
}

// tokenParam reads the form of a revocation or introspection request, which must name a token.
func (s *Server) tokenParam(w http.ResponseWriter, r *http.Request) (*authedClient, string, bool) {
	c, form, ok := s.clientForm(w, r)
	if ok && form.Get("token") == "" {
		writeOAuthError(w, oauthErr("invalid_request", "token is required"))
		return nil, "", false
	}
	return c, form.Get("token"), ok
}

// revocation implements RFC 7009. A refresh token is revoked with its whole family (and the
// access tokens issued in it); a JWT access token by its jti. Tokens of other clients and
// unknown tokens are ignored (200).
func (s *Server) revocation(w http.ResponseWriter, r *http.Request) {
	c, tok, ok := s.tokenParam(w, r)
	if !ok {
		return
	}
	var jti string
	if _, claims, err := s.verifyJWT(tok); err == nil {
		jti = strClaim(claims, "jti")
	}
	revoked := ""
	s.tokens.mu.Lock()
	if rr := s.tokens.refresh[hashKey(tok)]; rr != nil {
		if f := rr.f; f.clientID == c.app.ID {
			s.tokens.revokeFamilyLocked(f)
			revoked = "refresh_token"
		}
	} else if a := s.tokens.access[jti]; jti != "" && a != nil && a.clientID == c.app.ID {
		a.revoked, revoked = true, "access_token"
	}
	s.tokens.mu.Unlock()
	s.log.Info("erpnettest: revocation", "client_id", c.app.ID, "revoked", revoked)
	w.WriteHeader(http.StatusOK)
}

// introspect implements RFC 7662 for confidential clients.
func (s *Server) introspect(w http.ResponseWriter, r *http.Request) {
	c, tok, ok := s.tokenParam(w, r)
	if !ok {
		return
	}
	if c.method == "none" {
		writeOAuthError(w, oauthErr("invalid_client", "introspection requires an authenticated (confidential) client"))
		return
	}
	now := s.now()
	out := map[string]any{"active": false}
	s.tokens.mu.Lock()
	rr := s.tokens.refresh[hashKey(tok)]
	if rr != nil {
		if f := rr.f; !rr.rotated && !f.revoked && now.Before(f.expires) && s.signins.alive(f.sid) {
			out = map[string]any{"active": true, "token_type": "refresh_token", "client_id": f.clientID, "sub": f.username,
				"username": f.username, "scope": strings.Join(f.scopes, " "), "iat": rr.issued.Unix(),
				"exp": f.expires.Unix(), "iss": s.Authority(), "sid": f.sid}
		}
	}
	s.tokens.mu.Unlock()
	if p, err := s.validateToken(tok, now); rr == nil && err == nil { // a reference token or an access token
		out = map[string]any{"active": true, "token_type": p.tokenType, "client_id": p.clientID, "sub": p.subject,
			"username": p.subject, "scope": strings.Join(p.scopes, " "), "iat": p.issuedAt.Unix(),
			"exp": p.expiresAt.Unix(), "iss": s.Authority(), "erp_user_type": p.kind}
		if p.tokenType == "access_token" {
			out["aud"], out["jti"], out["nbf"] = []string{"DomainAPI"}, p.jti, p.issuedAt.Unix()
			if p.sid != "" {
				out["sid"] = p.sid
			}
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// endSession implements RP-initiated logout: it ends the sign-in named by id_token_hint (and
// the browser's own), their ERP.net API sessions and refresh tokens, then redirects to a
// registered post_logout_redirect_uri with state, or shows a signed-out page.
func (s *Server) endSession(w http.ResponseWriter, r *http.Request) {
	params, ok := s.requestParams(w, r)
	if !ok {
		return
	}
	hint, plr, state := params.Get("id_token_hint"), params.Get("post_logout_redirect_uri"), params.Get("state")
	hdr, c, err := s.verifyJWT(hint)
	auds := listClaim(c, "aud")
	clientID := strings.Join(auds, " ") // the hint's one audience
	if code, desc := func() (string, string) {
		app := s.apps[clientID]
		switch d := firstDuplicate(params); {
		case d != "":
			return "invalid_request", "parameter " + d + " given more than once"
		case hint != "" && (err != nil || !strings.EqualFold(hdr.Typ, "JWT") || strClaim(c, "iss") != s.Authority() || len(auds) != 1):
			return "invalid_request", "invalid id_token_hint"
		case hint != "" && params.Get("client_id") != "" && params.Get("client_id") != clientID:
			return "invalid_request", "client_id does not match id_token_hint"
		case plr == "":
		case hint == "":
			return "invalid_request", "post_logout_redirect_uri requires id_token_hint"
		case app == nil || app.Disabled:
			return "invalid_client", "unknown or disabled client"
		case !redirectURIAllowed(app.PostLogoutURIs, plr):
			return "invalid_request", "post_logout_redirect_uri is not registered for this client"
		}
		return "", ""
	}(); code != "" {
		errorPage(w, http.StatusBadRequest, code, desc)
		return
	}
	sid, current := strClaim(c, "sid"), s.cookieSignin(r)
	ended := s.endSignins(func(si *signin) bool { return hint != "" && si.sid == sid || current != nil && si.sid == current.sid })
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/id", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteLaxMode})
	s.log.Info("erpnettest: end session", "client_id", clientID, "signins_ended", ended)
	switch {
	case plr != "" && state != "":
		http.Redirect(w, r, appendQuery(plr, url.Values{"state": {state}}), http.StatusFound)
	case plr != "":
		http.Redirect(w, r, plr, http.StatusFound)
	default:
		setPageHeaders(w, http.StatusOK)
		_ = pageTemplate.Execute(w, map[string]string{"Title": "Signed out"})
	}
}
