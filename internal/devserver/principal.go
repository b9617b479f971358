package devserver

import (
	"errors"
	"strings"
	"time"
)

// principal is who an access token or reference token acts for.
type principal struct {
	kind       string // "user", "system", "pat", "sat"
	subject    string
	clientID   string
	scopes     []string
	sessionKey string
	hardLimit  bool // client_credentials: the ERP.net session ends 1h after it opened
	sid        string
	jti        string
	issuedAt   time.Time
	expiresAt  time.Time
	tokenType  string // "access_token" or "reference_token"
}

var (
	errRevoked       = errors.New("the token was revoked")
	errSessionEnded  = errors.New("the sign-in session of this token has ended")
	errUnknownToken  = errors.New("unknown token")
	errNotAnAPIToken = errors.New("not an access token")
)

// validateToken validates a JWT access token issued by this server (signature, typ, iss, exp,
// nbf, aud, revocation, sign-in state) or a reference token.
func (s *Server) validateToken(tok, issuer string, now time.Time) (*principal, error) {
	if strings.HasPrefix(tok, refTokenPrefix) {
		return s.validateReferenceToken(tok, now)
	}
	hdr, c, err := s.verifyJWT(tok, now)
	if err != nil {
		return nil, err
	}
	if t := strings.ToLower(hdr.Typ); t != "at+jwt" && t != "application/at+jwt" {
		return nil, errWrongType
	}
	if strClaim(c, "iss") != issuer {
		return nil, errWrongIssuer
	}
	exp, ok := numClaim(c, "exp")
	if !ok {
		return nil, errMalformedJWT
	}
	if now.Unix() >= exp {
		return nil, errExpired
	}
	if nbf, ok := numClaim(c, "nbf"); ok && now.Unix() < nbf {
		return nil, errNotYetValid
	}
	if !contains(listClaim(c, "aud"), "DomainAPI") {
		return nil, errWrongAud
	}
	iat, _ := numClaim(c, "iat")
	p := &principal{
		subject:   strClaim(c, "sub"),
		clientID:  strClaim(c, "client_id"),
		scopes:    listClaim(c, "scope"),
		jti:       strClaim(c, "jti"),
		sid:       strClaim(c, "sid"),
		issuedAt:  time.Unix(iat, 0),
		expiresAt: time.Unix(exp, 0),
		tokenType: "access_token",
	}
	if p.jti == "" || p.subject == "" {
		return nil, errMalformedJWT
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if a := s.access[p.jti]; a != nil && a.revoked {
		return nil, errRevoked
	}
	switch strClaim(c, "erp_user_type") {
	case "system":
		p.kind = "system"
		p.sessionKey = "jti:" + p.jti
		p.hardLimit = true
	case "user":
		p.kind = "user"
		si := s.signins[p.sid]
		if si == nil || si.ended {
			return nil, errSessionEnded
		}
		p.sessionKey = "sid:" + p.sid
	default:
		return nil, errNotAnAPIToken
	}
	return p, nil
}
