package instances

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/erpnetgo/auth"
	"github.com/erpnetgo/auth/internal/httpx"
	"github.com/erpnetgo/auth/internal/retry"
)

// The Marketplace's public key is read through its well-known document,
// kept for keyTTL, and read again sooner only when a signature does not
// verify with it (a rotated key), at most once per keyCooldown.
const (
	wellKnownPath = "/.well-known/marketplace.json"
	keyTTL        = time.Hour
	keyCooldown   = time.Minute
	maxKeyDoc     = 64 << 10
	minRSABits    = 2048
)

// errBadSignature is a signature no Marketplace key verifies.
var errBadSignature = errors.New("instances: the event's signature does not verify with the Marketplace's public key")

// market verifies the Marketplace's signatures.
type market struct {
	base  *url.URL // the Marketplace, normalized
	hc    *http.Client
	retry auth.Retry
	now   func() time.Time
	lock  chan struct{} // one key fetch at a time
	keys  atomic.Pointer[keySet]
	tried atomic.Int64 // last fetch attempt, unix nanoseconds on now
}

type keySet struct {
	keys    []*rsa.PublicKey
	fetched time.Time
}

func newMarket(base string, hc *http.Client, policy auth.Retry, now func() time.Time) *market {
	u, _ := url.Parse(base)
	m := &market{base: u, retry: policy, now: now, lock: make(chan struct{}, 1)}
	// Follow redirects only on the Marketplace's own host.
	c := *httpx.Client(hc)
	next := c.CheckRedirect
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if req.URL.Scheme != u.Scheme || !strings.EqualFold(req.URL.Host, u.Host) {
			return errors.New("redirected away from the Marketplace's host")
		}
		if len(via) >= 5 {
			return errors.New("too many redirects")
		}
		if next != nil {
			return next(req, via)
		}
		return nil
	}
	m.hc = &c
	return m
}

func (ks *keySet) verify(digest, sig []byte) bool {
	for _, k := range ks.keys {
		if rsa.VerifyPKCS1v15(k, crypto.SHA256, digest, sig) == nil {
			return true
		}
	}
	return false
}

// verify checks sig, RSA-SHA256 (PKCS #1 v1.5) over msg, with the
// Marketplace's key. It returns errBadSignature, or an *auth.Error when
// the key cannot be had.
func (m *market) verify(ctx context.Context, msg, sig []byte) error {
	sum := sha256.Sum256(msg)
	now := m.now()
	ks := m.keys.Load()
	if ks != nil && now.Sub(ks.fetched) < keyTTL {
		if ks.verify(sum[:], sig) {
			return nil
		}
		if now.Sub(ks.fetched) < keyCooldown {
			return errBadSignature
		}
	}
	fresh, err := m.refetch(ctx, ks)
	switch {
	case err == nil && fresh.verify(sum[:], sig):
		return nil
	case err == nil:
		return errBadSignature
	case ks != nil && ks.verify(sum[:], sig):
		return nil // the Marketplace is unreachable: its last key still counts
	}
	return err
}

// refetch fetches the key again unless another caller did since seen was
// current, or a fetch was tried within the cooldown.
func (m *market) refetch(ctx context.Context, seen *keySet) (*keySet, error) {
	select {
	case m.lock <- struct{}{}:
	case <-ctx.Done():
		return nil, &auth.Error{Op: "Marketplace key", Kind: auth.ErrTemporary, Err: ctx.Err()}
	}
	defer func() { <-m.lock }()
	if cur := m.keys.Load(); cur != seen {
		return cur, nil
	}
	now := m.now()
	if t := m.tried.Load(); t != 0 && now.UnixNano()-t < int64(keyCooldown) {
		if seen != nil {
			return seen, nil
		}
		return nil, &auth.Error{Op: "Marketplace key", Kind: auth.ErrTemporary,
			Err: errors.New("the Marketplace's public key could not be fetched a moment ago; not trying again yet")}
	}
	m.tried.Store(now.UnixNano())
	keys, err := m.fetch(ctx)
	if err != nil {
		return nil, err
	}
	ks := &keySet{keys: keys, fetched: now}
	m.keys.Store(ks)
	return ks, nil
}

// fetch reads the well-known document, then the public key it names on
// the Marketplace's host.
func (m *market) fetch(ctx context.Context) ([]*rsa.PublicKey, error) {
	wk := m.base.JoinPath(wellKnownPath)
	body, err := m.get(ctx, wk.String())
	if err != nil {
		return nil, err
	}
	var doc struct {
		Endpoints struct {
			PublicKey string `json:"public_key"`
		} `json:"endpoints"`
	}
	if err := json.Unmarshal(body, &doc); err != nil || doc.Endpoints.PublicKey == "" {
		return nil, misconfigured(errors.New("the Marketplace's well-known document names no endpoints.public_key"))
	}
	pk := strings.TrimSpace(doc.Endpoints.PublicKey)
	if strings.HasPrefix(pk, "-----BEGIN") {
		return parseKeys([]byte(pk)) // the key itself rather than its address
	}
	ref, err := url.Parse(pk)
	if err != nil {
		return nil, misconfigured(errors.New("the Marketplace's endpoints.public_key is not a URL"))
	}
	ku := wk.ResolveReference(ref)
	if ku.Scheme != m.base.Scheme || !strings.EqualFold(ku.Host, m.base.Host) {
		return nil, misconfigured(fmt.Errorf("the Marketplace's public key is on another host (%s); it is fetched only from %s", ku.Host, m.base.Host))
	}
	if body, err = m.get(ctx, ku.String()); err != nil {
		return nil, err
	}
	return parseKeys(body)
}

func misconfigured(err error) error {
	return &auth.Error{Op: "Marketplace key", Kind: auth.ErrMisconfigured, Err: err}
}

func (m *market) get(ctx context.Context, u string) ([]byte, error) {
	resp, attempts, err := httpx.Send(ctx, httpx.Request{
		Op: "Marketplace key", Client: m.hc, Policy: m.retry, Limit: maxKeyDoc,
		Build: func(ctx context.Context) (*http.Request, error) {
			return http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		},
	})
	if err != nil {
		return nil, err
	}
	if resp.Status != http.StatusOK {
		kind := auth.ErrMisconfigured
		if retry.Retryable(resp.Status) {
			kind = auth.ErrTemporary
		}
		return nil, &auth.Error{Op: "Marketplace key", StatusCode: resp.Status, Attempts: attempts, Kind: kind, Err: fmt.Errorf("GET %s", u)}
	}
	return resp.Body, nil
}

// parseKeys reads RSA public keys: PEM (PKIX "PUBLIC KEY", PKCS #1 "RSA
// PUBLIC KEY" or a certificate), a JWK, a JWK Set, or a JSON string
// holding PEM.
func parseKeys(b []byte) ([]*rsa.PublicKey, error) {
	b = bytes.TrimSpace(b)
	var keys []*rsa.PublicKey
	switch {
	case bytes.HasPrefix(b, []byte("-----BEGIN")):
		for {
			var blk *pem.Block
			blk, b = pem.Decode(b)
			if blk == nil {
				break
			}
			var pub any
			var err error
			switch blk.Type {
			case "PUBLIC KEY":
				pub, err = x509.ParsePKIXPublicKey(blk.Bytes)
			case "RSA PUBLIC KEY":
				pub, err = x509.ParsePKCS1PublicKey(blk.Bytes)
			case "CERTIFICATE":
				var cert *x509.Certificate
				if cert, err = x509.ParseCertificate(blk.Bytes); err == nil {
					pub = cert.PublicKey
				}
			default:
				continue
			}
			if k, ok := pub.(*rsa.PublicKey); ok && err == nil {
				keys = append(keys, k)
			}
		}
	case bytes.HasPrefix(b, []byte(`"`)):
		var s string
		if json.Unmarshal(b, &s) == nil && strings.HasPrefix(strings.TrimSpace(s), "-----BEGIN") {
			return parseKeys([]byte(s))
		}
	case bytes.HasPrefix(b, []byte("{")):
		var set struct {
			Keys []json.RawMessage `json:"keys"`
		}
		raws := []json.RawMessage{b}
		if json.Unmarshal(b, &set) == nil && set.Keys != nil {
			raws = set.Keys
		}
		for _, raw := range raws {
			if k := rsaJWK(raw); k != nil {
				keys = append(keys, k)
			}
		}
	}
	for _, k := range keys {
		if k.N.BitLen() < minRSABits {
			return nil, misconfigured(fmt.Errorf("the Marketplace's public key has %d bits; at least %d are required", k.N.BitLen(), minRSABits))
		}
	}
	if len(keys) == 0 {
		return nil, misconfigured(errors.New("the Marketplace's public key is neither an RSA key in PEM (PKIX, PKCS #1) nor an RSA JWK"))
	}
	return keys, nil
}

// rsaJWK reads an RSA signing JWK, or returns nil.
func rsaJWK(raw []byte) *rsa.PublicKey {
	var j struct {
		Kty, N, E, Use string
	}
	if json.Unmarshal(raw, &j) != nil || j.Kty != "RSA" || (j.Use != "" && j.Use != "sig") {
		return nil
	}
	n, err1 := base64.RawURLEncoding.DecodeString(strings.TrimRight(j.N, "="))
	e, err2 := base64.RawURLEncoding.DecodeString(strings.TrimRight(j.E, "="))
	if err1 != nil || err2 != nil || len(e) == 0 || len(e) > 4 {
		return nil
	}
	exp := int(new(big.Int).SetBytes(e).Int64())
	if exp < 3 || exp%2 == 0 {
		return nil
	}
	return &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: exp}
}
