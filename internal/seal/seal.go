// Package seal encrypts and authenticates small values with AES-GCM under a
// ring of keys: the first key seals, every key opens, so keys can be rotated
// without invalidating what is already sealed. Cookies and the Redis session
// store both use it.
package seal

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
)

const (
	version  = 1
	idLen    = 4
	nonceLen = 12
	overhead = 1 + idLen + nonceLen + 16
)

// ErrOpen is returned for any value that cannot be opened: tampered,
// truncated, sealed under an unknown key or with different associated data.
// It deliberately says no more.
var ErrOpen = errors.New("seal: value cannot be opened (tampered, truncated or unknown key)")

// Sealer seals with its first key and opens with any of its keys.
type Sealer struct {
	keys []key
}

type key struct {
	id   [idLen]byte
	aead cipher.AEAD
}

// New makes a Sealer from one or more AES keys of 16, 24 or 32 bytes. The
// first key seals new values; the others only open older ones.
func New(keys ...[]byte) (*Sealer, error) {
	if len(keys) == 0 {
		return nil, errors.New("seal: at least one key is required")
	}
	s := &Sealer{}
	for i, k := range keys {
		switch len(k) {
		case 16, 24, 32:
		default:
			return nil, fmt.Errorf("seal: key %d is %d bytes; AES keys are 16, 24 or 32 bytes", i, len(k))
		}
		block, err := aes.NewCipher(k)
		if err != nil {
			return nil, fmt.Errorf("seal: key %d: %w", i, err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("seal: key %d: %w", i, err)
		}
		sum := sha256.Sum256(append([]byte("erpnetgo/seal key id\x00"), k...))
		var kk key
		copy(kk.id[:], sum[:idLen])
		kk.aead = aead
		s.keys = append(s.keys, kk)
	}
	return s, nil
}

// Seal encrypts plaintext bound to aad (which is authenticated, not stored).
// The output is version | key id | nonce | ciphertext+tag.
func (s *Sealer) Seal(plaintext, aad []byte) []byte {
	k := s.keys[0]
	out := make([]byte, 1+idLen+nonceLen, overhead+len(plaintext))
	out[0] = version
	copy(out[1:], k.id[:])
	if _, err := rand.Read(out[1+idLen:]); err != nil {
		panic("seal: crypto/rand failed: " + err.Error()) // crypto/rand never fails on supported platforms
	}
	return k.aead.Seal(out, out[1+idLen:1+idLen+nonceLen], plaintext, aad)
}

// Open reverses Seal. It returns ErrOpen for anything it cannot authenticate.
func (s *Sealer) Open(sealed, aad []byte) ([]byte, error) {
	return s.open(sealed, aad, false)
}

// OpenInPlace is Open writing the plaintext over sealed (no allocation):
// sealed's content is lost, whether or not it opens.
func (s *Sealer) OpenInPlace(sealed, aad []byte) ([]byte, error) {
	return s.open(sealed, aad, true)
}

func (s *Sealer) open(sealed, aad []byte, inPlace bool) ([]byte, error) {
	if len(sealed) < overhead || sealed[0] != version {
		return nil, ErrOpen
	}
	id := sealed[1 : 1+idLen]
	for _, k := range s.keys {
		if string(k.id[:]) != string(id) {
			continue
		}
		nonce := sealed[1+idLen : 1+idLen+nonceLen]
		ct := sealed[1+idLen+nonceLen:]
		var dst []byte
		if inPlace {
			dst = ct[:0]
		}
		pt, err := k.aead.Open(dst, nonce, ct, aad)
		if err != nil {
			return nil, ErrOpen
		}
		return pt, nil
	}
	return nil, ErrOpen
}
