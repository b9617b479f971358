package devserver

import (
	"bytes"
	"crypto"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"time"
)

// maxJWTLen bounds the size of a JWT the server agrees to parse.
const maxJWTLen = 16 << 10

func b64url(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func encodeSegment(v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	return b64url(b), nil
}

// signRS256 returns a compact JWS signed with k.
func signRS256(k *signingKey, typ string, claims map[string]any) (string, error) {
	h, err := encodeSegment(map[string]any{"alg": "RS256", "typ": typ, "kid": k.kid})
	if err != nil {
		return "", err
	}
	p, err := encodeSegment(claims)
	if err != nil {
		return "", err
	}
	input := h + "." + p
	sum := sha256.Sum256([]byte(input))
	sig, err := rsa.SignPKCS1v15(rand.Reader, k.priv, crypto.SHA256, sum[:])
	if err != nil {
		return "", err
	}
	return input + "." + b64url(sig), nil
}

// signHS256 returns a compact JWS signed with HMAC-SHA256 (used only for attack tests).
func signHS256(key []byte, typ string, claims map[string]any) (string, error) {
	h, err := encodeSegment(map[string]any{"alg": "HS256", "typ": typ})
	if err != nil {
		return "", err
	}
	p, err := encodeSegment(claims)
	if err != nil {
		return "", err
	}
	input := h + "." + p
	m := hmac.New(sha256.New, key)
	m.Write([]byte(input))
	return input + "." + b64url(m.Sum(nil)), nil
}

// unsignedJWT returns an alg=none JWT with an empty signature (used only for attack tests).
func unsignedJWT(typ string, claims map[string]any) (string, error) {
	h, err := encodeSegment(map[string]any{"alg": "none", "typ": typ})
	if err != nil {
		return "", err
	}
	p, err := encodeSegment(claims)
	if err != nil {
		return "", err
	}
	return h + "." + p + ".", nil
}

// atHash is the OIDC at_hash of an RS256 access token.
func atHash(accessToken string) string {
	sum := sha256.Sum256([]byte(accessToken))
	return b64url(sum[:len(sum)/2])
}

type jwtHeader struct {
	Alg string `json:"alg"`
	Typ string `json:"typ"`
	Kid string `json:"kid"`
}

var (
	errMalformedJWT = errors.New("the token is malformed")
	errBadSignature = errors.New("the token signature is invalid")
	errUnknownKey   = errors.New("the token was signed with an unknown key")
	errExpired      = errors.New("the token expired")
	errNotYetValid  = errors.New("the token is not valid yet")
	errWrongIssuer  = errors.New("the token was issued by another issuer")
	errWrongType    = errors.New("the token has the wrong type")
	errWrongAud     = errors.New("the token audience does not include DomainAPI")
)

// verifyJWT checks a compact RS256 JWS against the published keys and returns its claims
// (numbers decoded as json.Number). Time claims are not checked here.
func (s *Server) verifyJWT(token string, now time.Time) (jwtHeader, map[string]any, error) {
	var hdr jwtHeader
	if len(token) > maxJWTLen || strings.Count(token, ".") != 2 {
		return hdr, nil, errMalformedJWT
	}
	parts := strings.SplitN(token, ".", 3)
	hb, err1 := base64.RawURLEncoding.DecodeString(parts[0])
	pb, err2 := base64.RawURLEncoding.DecodeString(parts[1])
	sig, err3 := base64.RawURLEncoding.DecodeString(parts[2])
	if err1 != nil || err2 != nil || err3 != nil || len(sig) == 0 {
		return hdr, nil, errMalformedJWT
	}
	if err := json.Unmarshal(hb, &hdr); err != nil {
		return hdr, nil, errMalformedJWT
	}
	if hdr.Alg != "RS256" {
		return hdr, nil, errBadSignature
	}
	k := s.lookupKey(hdr.Kid, now)
	if k == nil {
		return hdr, nil, errUnknownKey
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if err := rsa.VerifyPKCS1v15(&k.priv.PublicKey, crypto.SHA256, sum[:], sig); err != nil {
		return hdr, nil, errBadSignature
	}
	dec := json.NewDecoder(bytes.NewReader(pb))
	dec.UseNumber()
	var claims map[string]any
	if err := dec.Decode(&claims); err != nil || claims == nil {
		return hdr, nil, errMalformedJWT
	}
	return hdr, claims, nil
}

func numClaim(c map[string]any, name string) (int64, bool) {
	n, ok := c[name].(json.Number)
	if !ok {
		return 0, false
	}
	if i, err := n.Int64(); err == nil {
		return i, true
	}
	f, err := n.Float64()
	if err != nil {
		return 0, false
	}
	return int64(f), true
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
		out := make([]string, 0, len(v))
		for _, x := range v {
			if s, ok := x.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}
