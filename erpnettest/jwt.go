package erpnettest

import (
	"cmp"
	"crypto"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math/big"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// Signing keys are 2048-bit RSA keys from a process-wide pool (generating one takes tens to
// hundreds of milliseconds): every Server starts with pool key 0 and RotateKeys moves it to
// the next one. Two Servers in one process may share keys; their issuers differ.
type signingKey struct {
	priv      *rsa.PrivateKey
	kid       string
	retiredAt time.Time // zero while current
}

var keyPool struct {
	mu    sync.Mutex
	keys  []*signingKey
	stray *signingKey // never published: for a tampered ID token
}

// pooledKey returns a copy of pool key i (-1: the unpublished one), generating it if needed.
func pooledKey(i int) (*signingKey, error) {
	keyPool.mu.Lock()
	defer keyPool.mu.Unlock()
	for len(keyPool.keys) <= i || i < 0 && keyPool.stray == nil {
		priv, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return nil, errors.New("cannot generate a signing key: " + err.Error())
		}
		pub := &priv.PublicKey
		// The kid is the first half of the RFC 7638 thumbprint, in upper-case hex.
		sum := sha256.Sum256([]byte(`{"e":"` + b64url(big.NewInt(int64(pub.E)).Bytes()) + `","kty":"RSA","n":"` + b64url(pub.N.Bytes()) + `"}`))
		k := &signingKey{priv: priv, kid: strings.ToUpper(hex.EncodeToString(sum[:16]))}
		if i >= 0 {
			keyPool.keys = append(keyPool.keys, k)
		} else {
			k.kid, keyPool.stray = "UNPUBLISHED"+k.kid[:21], k
		}
	}
	k := keyPool.stray
	if i >= 0 {
		k = keyPool.keys[i]
	}
	cp := *k
	return &cp, nil
}

// keyRing is a Server's signing keys: the current one last, retired ones in their grace hour.
type keyRing struct {
	mu, rotate sync.Mutex // rotate serializes RotateKeys
	keys       []*signingKey
	idx        int // pool index of the current key; changed under both locks
}

// keyGrace is how long a rotated-out key stays published and keeps verifying.
const keyGrace = time.Hour

func (kr *keyRing) current() *signingKey {
	kr.mu.Lock()
	defer kr.mu.Unlock()
	return kr.keys[len(kr.keys)-1]
}

// published returns the current key and the retired ones still in their grace period,
// newest first, forgetting older ones.
func (kr *keyRing) published(now time.Time) []*signingKey {
	kr.mu.Lock()
	defer kr.mu.Unlock()
	kr.keys = slices.DeleteFunc(kr.keys, func(k *signingKey) bool {
		return !k.retiredAt.IsZero() && !now.Before(k.retiredAt.Add(keyGrace))
	})
	out := slices.Clone(kr.keys)
	slices.Reverse(out)
	return out
}

// RotateKeys makes a new signing key current. The old key stays in the JWKS, and tokens
// signed with it stay valid, for one hour of server time.
func (s *Server) RotateKeys() {
	s.keys.rotate.Lock()
	defer s.keys.rotate.Unlock()
	k, err := pooledKey(s.keys.idx + 1) // may generate one: not under mu
	if err != nil {
		s.fail("RotateKeys: %v", err)
		return
	}
	s.keys.mu.Lock()
	s.keys.keys[len(s.keys.keys)-1].retiredAt = s.now()
	s.keys.keys, s.keys.idx = append(s.keys.keys, k), s.keys.idx+1
	s.keys.mu.Unlock()
	s.log.Info("erpnettest: signing key rotated", "kid", k.kid)
}

func (s *Server) jwks(w http.ResponseWriter, r *http.Request) {
	if methodNotAllowed(w, r, http.MethodGet, http.MethodHead) {
		return
	}
	var keys []map[string]string
	for _, k := range s.keys.published(s.now()) {
		keys = append(keys, rsaJWK(&k.priv.PublicKey, k.kid))
	}
	writeJSON(w, http.StatusOK, map[string]any{"keys": keys})
}

// rsaJWK is the JSON Web Key of an RS256 signing key (with kid when not empty).
func rsaJWK(pub *rsa.PublicKey, kid string) map[string]string {
	k := map[string]string{"kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid,
		"n": b64url(pub.N.Bytes()), "e": b64url(big.NewInt(int64(pub.E)).Bytes())}
	if kid == "" {
		delete(k, "kid")
	}
	return k
}

func b64url(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// signJWT returns a compact JWS of claims: RS256 with k, HS256 with hsKey when set, or
// unsigned (alg none, empty signature) when k is nil.
func signJWT(k *signingKey, typ string, claims map[string]any, hsKey ...byte) string {
	hdr := map[string]any{"alg": "none", "typ": typ}
	switch {
	case hsKey != nil:
		hdr["alg"] = "HS256"
	case k != nil:
		hdr["alg"], hdr["kid"] = "RS256", k.kid
	}
	h, _ := json.Marshal(hdr)
	p, _ := json.Marshal(claims)
	input := b64url(h) + "." + b64url(p)
	var sig []byte
	switch {
	case hsKey != nil:
		m := hmac.New(sha256.New, hsKey)
		m.Write([]byte(input))
		sig = m.Sum(nil)
	case k != nil:
		sum := sha256.Sum256([]byte(input))
		sig, _ = rsa.SignPKCS1v15(rand.Reader, k.priv, crypto.SHA256, sum[:])
	}
	return input + "." + b64url(sig)
}

// atHash is the OIDC at_hash of an RS256 access token.
func atHash(accessToken string) string {
	sum := sha256.Sum256([]byte(accessToken))
	return b64url(sum[:len(sum)/2])
}

// signIDToken signs claims as an ID token, applying a pending tamper (erpnetctl) if one is set.
func (s *Server) signIDToken(key *signingKey, claims map[string]any, clientSecret string) string {
	t := s.ctl.tamper.Swap(nil)
	if t == nil {
		return signJWT(key, "JWT", claims)
	}
	for k, v := range t.Claims {
		if v == nil {
			delete(claims, k)
		} else {
			claims[k] = v
		}
	}
	var tok string
	switch {
	case t.Alg == "none":
		tok = signJWT(nil, "JWT", claims)
	case t.Alg == "HS256":
		tok = signJWT(nil, "JWT", claims, []byte(cmp.Or(clientSecret, "x"))...)
	case t.UnknownKey:
		stray, _ := pooledKey(-1)
		tok = signJWT(stray, "JWT", claims)
	default:
		tok = signJWT(key, "JWT", claims)
	}
	if t.BadSignature {
		tok = flipSignature(tok)
	}
	s.log.Info("erpnettest: issued a tampered ID token (test control)", "alg", t.Alg, "bad_signature", t.BadSignature, "unknown_key", t.UnknownKey)
	return tok
}

// flipSignature changes the first character of a token's signature, or appends one.
func flipSignature(tok string) string {
	i := strings.LastIndexByte(tok, '.')
	switch {
	case i == len(tok)-1:
		return tok + "AAAA"
	case tok[i+1] == 'A':
		return tok[:i+1] + "B" + tok[i+2:]
	}
	return tok[:i+1] + "A" + tok[i+2:]
}

type jwtHeader struct{ Alg, Typ, Kid string }

var (
	errMalformed    = errors.New("the token is malformed")
	errBadSignature = errors.New("the token signature is invalid")
	errExpired      = errors.New("the token expired")
	errRevoked      = errors.New("the token was revoked")
	errUnknownToken = errors.New("the token is invalid")
)

// verifyJWT checks a compact RS256 JWS against the published keys and returns its claims
// Time claims are not checked here.
func (s *Server) verifyJWT(token string) (jwtHeader, map[string]any, error) {
	var hdr jwtHeader
	parts := strings.Split(token, ".")
	if len(token) > 16<<10 || len(parts) != 3 {
		return hdr, nil, errMalformed
	}
	hb, err1 := base64.RawURLEncoding.DecodeString(parts[0])
	pb, err2 := base64.RawURLEncoding.DecodeString(parts[1])
	sig, err3 := base64.RawURLEncoding.DecodeString(parts[2])
	if err1 != nil || err2 != nil || err3 != nil || len(sig) == 0 || json.Unmarshal(hb, &hdr) != nil {
		return hdr, nil, errMalformed
	}
	if hdr.Alg != "RS256" {
		return hdr, nil, errBadSignature
	}
	keys := s.keys.published(s.now())
	i := slices.IndexFunc(keys, func(k *signingKey) bool { return k.kid == hdr.Kid })
	if i < 0 {
		return hdr, nil, errors.New("the token was signed with an unknown key")
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if rsa.VerifyPKCS1v15(&keys[i].priv.PublicKey, crypto.SHA256, sum[:], sig) != nil {
		return hdr, nil, errBadSignature
	}
	var claims map[string]any
	if json.Unmarshal(pb, &claims) != nil || claims == nil {
		return hdr, nil, errMalformed
	}
	return hdr, claims, nil
}

func numClaim(c map[string]any, name string) (int64, bool) {
	f, ok := c[name].(float64)
	return int64(f), ok
}

func strClaim(c map[string]any, name string) string {
	v, _ := c[name].(string)
	return v
}

// listClaim reads a claim that is a JSON array of strings or a space-separated string.
func listClaim(c map[string]any, name string) []string {
	switch v := c[name].(type) {
	case string:
		return strings.Fields(v)
	case []any:
		var out []string
		for _, x := range v {
			if s, ok := x.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

// principal is who an access token or reference token acts for.
type principal struct {
	kind, subject, clientID, sid, jti string // kind: "user", "system", "pat" or "sat"
	scopes                            []string
	sessionKey                        string
	hardLimit                         bool // client credentials: the API session ends 1h after it opened
	issuedAt, expiresAt               time.Time
	tokenType                         string // "access_token" or "reference_token"
}

// validateToken validates a JWT access token of this server (signature, typ, iss, exp, nbf,
// aud, revocation, sign-in state) or a reference token.
func (s *Server) validateToken(tok string, now time.Time) (*principal, error) {
	if strings.HasPrefix(tok, refTokenPrefix) {
		return s.refs.validate(tok, now)
	}
	hdr, c, err := s.verifyJWT(tok)
	if err != nil {
		return nil, err
	}
	exp, hasExp := numClaim(c, "exp")
	nbf, hasNbf := numClaim(c, "nbf")
	iat, _ := numClaim(c, "iat")
	p := &principal{subject: strClaim(c, "sub"), clientID: strClaim(c, "client_id"), scopes: listClaim(c, "scope"),
		jti: strClaim(c, "jti"), sid: strClaim(c, "sid"), issuedAt: time.Unix(iat, 0), expiresAt: time.Unix(exp, 0),
		tokenType: "access_token"}
	switch t := strings.ToLower(hdr.Typ); {
	case t != "at+jwt" && t != "application/at+jwt":
		return nil, errors.New("the token has the wrong type")
	case strClaim(c, "iss") != s.Authority():
		return nil, errors.New("the token was issued by another issuer")
	case !hasExp || p.jti == "" || p.subject == "":
		return nil, errMalformed
	case now.Unix() >= exp:
		return nil, errExpired
	case hasNbf && now.Unix() < nbf:
		return nil, errors.New("the token is not valid yet")
	case !slices.Contains(listClaim(c, "aud"), "DomainAPI"):
		return nil, errors.New("the token audience does not include DomainAPI")
	case s.tokens.revoked(p.jti):
		return nil, errRevoked
	case strClaim(c, "erp_user_type") == "system":
		p.kind, p.sessionKey, p.hardLimit = "system", "jti:"+p.jti, true
	case strClaim(c, "erp_user_type") != "user":
		return nil, errors.New("not an access token")
	case !s.signins.alive(p.sid):
		return nil, errors.New("the sign-in session of this token has ended")
	default:
		p.kind, p.sessionKey = "user", "sid:"+p.sid
	}
	return p, nil
}

func (t *tokens) revoked(jti string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.access[jti] != nil && t.access[jti].revoked
}
