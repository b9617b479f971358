package devserver

import "maps"

// IDTokenTamper describes how to corrupt the next ID token, for attack tests of ID token
// verification.
type IDTokenTamper struct {
	// Claims overrides or adds claims; a nil value deletes the claim.
	Claims map[string]any
	// Alg is "" (RS256), "none" (unsigned, empty signature) or "HS256" (HMAC keyed with the
	// client secret the client presented, or "x" for a public client).
	Alg string
	// BadSignature flips bits of the signature.
	BadSignature bool
	// UnknownKey signs with a fresh RSA key whose kid is not published in the JWKS.
	UnknownKey bool
}

// TamperNextIDToken applies t to the next ID token the token endpoint issues (one only).
func (s *Server) TamperNextIDToken(t IDTokenTamper) {
	t.Claims = maps.Clone(t.Claims)
	s.mu.Lock()
	s.tamper = &t
	s.mu.Unlock()
}

// signIDToken signs claims as an ID token, applying a pending tamper if one is set.
func (s *Server) signIDToken(key *signingKey, claims map[string]any, clientSecret string) (string, error) {
	s.mu.Lock()
	t := s.tamper
	s.tamper = nil
	s.mu.Unlock()
	if t == nil {
		return signRS256(key, "JWT", claims)
	}
	for k, v := range t.Claims {
		if v == nil {
			delete(claims, k)
		} else {
			claims[k] = v
		}
	}
	var (
		tok string
		err error
	)
	switch t.Alg {
	case "none":
		tok, err = unsignedJWT("JWT", claims)
	case "HS256":
		secret := clientSecret
		if secret == "" {
			secret = "x"
		}
		tok, err = signHS256([]byte(secret), "JWT", claims)
	default:
		k := key
		if t.UnknownKey {
			if k, err = unpublishedKey(); err != nil {
				return "", err
			}
		}
		tok, err = signRS256(k, "JWT", claims)
	}
	if err != nil {
		return "", err
	}
	if t.BadSignature {
		tok = flipSignature(tok)
	}
	s.log.Info("devserver: issued a tampered ID token (test control)", "alg", t.Alg, "bad_signature", t.BadSignature, "unknown_key", t.UnknownKey)
	return tok, nil
}

// flipSignature changes the first signature character (keeping valid base64url), or appends a
// bogus signature to an unsigned token.
func flipSignature(tok string) string {
	i := len(tok) - 1
	for i >= 0 && tok[i] != '.' {
		i--
	}
	sig := []byte(tok[i+1:])
	if len(sig) == 0 {
		return tok + "AAAA"
	}
	if sig[0] == 'A' {
		sig[0] = 'B'
	} else {
		sig[0] = 'A'
	}
	return tok[:i+1] + string(sig)
}
