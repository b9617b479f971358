package devserver

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"math/big"
	"strings"
	"sync"
	"time"
)

// rsaBits is the size of every signing key. Generating 2048-bit keys is slow (tens to hundreds
// of milliseconds, much more under -race), so keys come from a process-wide pool: every Server
// starts with pool key 0 and RotateKeys moves it to the next pool key, generating it once per
// process. Two Servers in one process may therefore share keys; their issuers still differ.
const rsaBits = 2048

type signingKey struct {
	priv      *rsa.PrivateKey
	kid       string
	retiredAt time.Time // zero while current
}

var keyPool struct {
	mu   sync.Mutex
	keys []*signingKey
}

// pooledKey returns pool key i, generating keys up to i if needed. The returned value is a
// copy, so a Server may set retiredAt on it.
func pooledKey(i int) (*signingKey, error) {
	keyPool.mu.Lock()
	defer keyPool.mu.Unlock()
	for len(keyPool.keys) <= i {
		k, err := generateKey()
		if err != nil {
			return nil, err
		}
		keyPool.keys = append(keyPool.keys, k)
	}
	k := *keyPool.keys[i]
	return &k, nil
}

var strayKey struct {
	once sync.Once
	key  *signingKey
	err  error
}

// unpublishedKey returns a key that no Server ever publishes (IDTokenTamper.UnknownKey).
func unpublishedKey() (*signingKey, error) {
	strayKey.once.Do(func() {
		strayKey.key, strayKey.err = generateKey()
		if strayKey.err == nil {
			strayKey.key.kid = "UNPUBLISHED" + strayKey.key.kid[:21]
		}
	})
	return strayKey.key, strayKey.err
}

func generateKey() (*signingKey, error) {
	priv, err := rsa.GenerateKey(rand.Reader, rsaBits)
	if err != nil {
		return nil, err
	}
	return &signingKey{priv: priv, kid: thumbprintKID(&priv.PublicKey)}, nil
}

// thumbprintKID is the upper-case hex of the first 16 bytes of the RFC 7638 thumbprint.
func thumbprintKID(pub *rsa.PublicKey) string {
	canon := `{"e":"` + b64url(big.NewInt(int64(pub.E)).Bytes()) + `","kty":"RSA","n":"` + b64url(pub.N.Bytes()) + `"}`
	sum := sha256.Sum256([]byte(canon))
	return strings.ToUpper(hex.EncodeToString(sum[:16]))
}

// jwk is the public JSON Web Key form of k.
func (k *signingKey) jwk() map[string]any {
	pub := &k.priv.PublicKey
	return map[string]any{
		"kty": "RSA",
		"use": "sig",
		"alg": "RS256",
		"kid": k.kid,
		"n":   b64url(pub.N.Bytes()),
		"e":   b64url(big.NewInt(int64(pub.E)).Bytes()),
	}
}

// RotateKeys makes a new signing key current. The previous key stays published in the JWKS,
// and tokens signed with it keep verifying, for Config.KeyGracePeriod.
func (s *Server) RotateKeys() {
	s.keysMu.RLock()
	next := s.keyIdx + 1
	s.keysMu.RUnlock()
	k, err := pooledKey(next) // may generate: done outside keysMu
	if err != nil {
		s.log.Error("devserver: key rotation failed", "err", err)
		return
	}
	now := s.now()
	s.keysMu.Lock()
	defer s.keysMu.Unlock()
	if s.keyIdx+1 != next { // a concurrent RotateKeys won; rotate again from there
		k2, err := pooledKey(s.keyIdx + 1)
		if err != nil {
			s.log.Error("devserver: key rotation failed", "err", err)
			return
		}
		k, next = k2, s.keyIdx+1
	}
	s.keys[len(s.keys)-1].retiredAt = now
	s.keys = append(s.keys, k)
	s.keyIdx = next
	s.log.Info("devserver: signing key rotated", "kid", k.kid)
}

func (s *Server) currentKey() *signingKey {
	s.keysMu.RLock()
	defer s.keysMu.RUnlock()
	return s.keys[len(s.keys)-1]
}

// publishedKeys returns the current key and every retired key still within the grace period,
// newest first, dropping keys past it.
func (s *Server) publishedKeys(now time.Time) []*signingKey {
	s.keysMu.Lock()
	defer s.keysMu.Unlock()
	kept := s.keys[:0:0]
	for _, k := range s.keys {
		if k.retiredAt.IsZero() || now.Before(k.retiredAt.Add(s.cfg.KeyGracePeriod)) {
			kept = append(kept, k)
		}
	}
	s.keys = kept
	out := make([]*signingKey, 0, len(kept))
	for i := len(kept) - 1; i >= 0; i-- {
		out = append(out, kept[i])
	}
	return out
}

func (s *Server) lookupKey(kid string, now time.Time) *signingKey {
	for _, k := range s.publishedKeys(now) {
		if k.kid == kid {
			return k
		}
	}
	return nil
}

func (s *Server) jwksDocument() []byte {
	keys := s.publishedKeys(s.now())
	out := make([]map[string]any, 0, len(keys))
	for _, k := range keys {
		out = append(out, k.jwk())
	}
	b, _ := json.Marshal(map[string]any{"keys": out})
	return b
}
