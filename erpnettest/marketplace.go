package erpnettest

import (
	"bytes"
	"cmp"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/erpnetgo/auth/internal/jsjson"
)

// MarketplaceConfig tunes a Marketplace. The zero value publishes the key as PEM (PKIX).
type MarketplaceConfig struct {
	// KeyFormat is how the public key is published: "pkix" (PEM "PUBLIC KEY", the default),
	// "pkcs1" (PEM "RSA PUBLIC KEY"), "jwk" or "jwks" (the real Marketplace does not document
	// which it uses).
	KeyFormat string
	// Addr is the host:port to listen on; empty means 127.0.0.1 on a free port.
	Addr string
}

// LifecycleEvent is what a Marketplace delivers to an app's redirect URI when the app is
// installed on an instance or uninstalled from it (schema erpnet.appLifecycleEvent.v2).
type LifecycleEvent struct {
	// ID is the eventId; empty means a random one.
	ID string
	// Event is "installed" or "uninstalled".
	Event string
	// OccurredAt is when it happened; zero means now.
	OccurredAt time.Time
	// Instance is the instance's root (instanceBaseUrl), e.g. Server.URL().
	Instance string
	// User is who installed or uninstalled the app; empty means "admin".
	User string
	// ClientSecret is the Trusted Application's new secret (installations with
	// requestSecret=true); empty leaves it out.
	ClientSecret string
	// ReferenceToken is a reference token the installation issued; empty leaves it out.
	ReferenceToken string
	// ApplicationURI and RedirectURI echo the installation link's applicationUri and
	// redirectUri: the app's client_id and redirect URI.
	ApplicationURI, RedirectURI string
	// ClientType echoes clientType; empty means "Confidential".
	ClientType string
	// Scope echoes scope; empty means "read update".
	Scope string
}

// Marketplace is a stand-in for the ERP.net Marketplace, for tests of apps that receive its
// lifecycle events: it publishes its well-known document (/.well-known/marketplace.json,
// whose endpoints.public_key names its key) and signs events with RSA-SHA256 over
// JSON.stringify(payload), as the Marketplace does. Its methods are safe for concurrent use.
type Marketplace struct {
	srv        *http.Server
	url        string
	format     string
	tb         testing.TB
	mu         sync.Mutex // serializes RotateKey
	keyIdx     int
	key        atomic.Pointer[rsa.PrivateKey]
	keyFetches atomic.Int64
	hc         *http.Client
	closeOnce  sync.Once
}

// NewMarketplace starts a Marketplace for a test on 127.0.0.1 and closes it with tb.Cleanup.
// At most one MarketplaceConfig may be given. Every Marketplace starts with the same key
// (generated once per process); RotateKey moves it to another.
func NewMarketplace(tb testing.TB, cfg ...MarketplaceConfig) *Marketplace {
	tb.Helper()
	if len(cfg) > 1 {
		tb.Fatalf("erpnettest: NewMarketplace takes at most one MarketplaceConfig, got %d", len(cfg))
	}
	m, err := StartMarketplace(append(cfg, MarketplaceConfig{})[0])
	if err != nil {
		tb.Fatal(err)
	}
	m.tb = tb
	tb.Cleanup(func() { _ = m.Close() })
	return m
}

// StartMarketplace starts a Marketplace that runs until Close, for programs and Example
// functions; tests use NewMarketplace.
func StartMarketplace(cfg MarketplaceConfig) (*Marketplace, error) {
	if cfg.KeyFormat = cmp.Or(cfg.KeyFormat, "pkix"); !slices.Contains([]string{"pkix", "pkcs1", "jwk", "jwks"}, cfg.KeyFormat) {
		return nil, fmt.Errorf("erpnettest: MarketplaceConfig.KeyFormat %q is not pkix, pkcs1, jwk or jwks", cfg.KeyFormat)
	}
	key, err := pooledKey(0) // one key pool for the identity servers and the Marketplace
	if err != nil {
		return nil, fmt.Errorf("erpnettest: marketplace: %w", err)
	}
	ln, err := net.Listen("tcp", cmp.Or(cfg.Addr, "127.0.0.1:0"))
	if err != nil {
		return nil, fmt.Errorf("erpnettest: marketplace: %w", err)
	}
	m := &Marketplace{url: "http://" + ln.Addr().String(), format: cfg.KeyFormat, tb: panicTB{},
		hc: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{}}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/marketplace.json", m.serveDoc)
	mux.HandleFunc("GET /public-key", m.serveKey)
	m.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	m.key.Store(key.priv)
	go func() { _ = m.srv.Serve(ln) }()
	return m, nil
}

// URL returns the Marketplace's root, e.g. "http://127.0.0.1:41235": an app's
// MarketplaceURL.
func (m *Marketplace) URL() string { return m.url }

// Close stops the Marketplace. It is idempotent, and a no-op on nil.
func (m *Marketplace) Close() error {
	if m == nil {
		return nil
	}
	var err error
	m.closeOnce.Do(func() { err = m.srv.Close(); m.hc.CloseIdleConnections() })
	return err
}

// KeyFetches returns how many times its public key was fetched.
func (m *Marketplace) KeyFetches() int { return int(m.keyFetches.Load()) }

// RotateKey makes a new key current: events are signed with it and the public key endpoint
// publishes it (the old one no longer).
func (m *Marketplace) RotateKey() {
	m.mu.Lock()
	defer m.mu.Unlock()
	k, err := pooledKey(m.keyIdx + 1)
	if err != nil {
		m.fail("RotateKey: %v", err)
		return
	}
	m.keyIdx++
	m.key.Store(k.priv)
}

func (m *Marketplace) fail(format string, args ...any) {
	m.tb.Helper()
	m.tb.Fatalf("erpnettest: marketplace: "+format, args...)
}

func (m *Marketplace) serveDoc(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"issuer":    m.url,
		"endpoints": map[string]string{"public_key": m.url + "/public-key"},
	})
}

func (m *Marketplace) serveKey(w http.ResponseWriter, _ *http.Request) {
	m.keyFetches.Add(1)
	pub := &m.key.Load().PublicKey
	switch m.format {
	case "pkix", "pkcs1":
		blk := &pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(pub)}
		if m.format == "pkix" {
			der, _ := x509.MarshalPKIXPublicKey(pub)
			blk = &pem.Block{Type: "PUBLIC KEY", Bytes: der}
		}
		w.Header().Set("Content-Type", "application/x-pem-file")
		_ = pem.Encode(w, blk)
	default:
		jwk := rsaJWK(pub, "")
		w.Header().Set("Content-Type", "application/json")
		if m.format == "jwks" {
			_ = json.NewEncoder(w).Encode(map[string]any{"keys": []any{jwk}})
			return
		}
		_ = json.NewEncoder(w).Encode(jwk)
	}
}

// Payload returns the event's payload as the Marketplace signs it: JSON.stringify of the
// payload object, keys in the Marketplace's order (eventId, event, occurredAt,
// instanceBaseUrl, user, clientSecret, referenceToken, request).
func (m *Marketplace) Payload(e LifecycleEvent) []byte {
	if e.OccurredAt.IsZero() {
		e.OccurredAt = time.Now()
	}
	e.ID, e.User = cmp.Or(e.ID, "evt_"+strings.ToLower(rand.Text())), cmp.Or(e.User, "admin")
	e.ClientType, e.Scope = cmp.Or(e.ClientType, "Confidential"), cmp.Or(e.Scope, "read update")
	type request struct {
		ApplicationURI  string `json:"applicationUri"`
		ClientType      string `json:"clientType"`
		RedirectURI     string `json:"redirectUri"`
		Impersonate     string `json:"impersonate"`
		ServiceAccess   string `json:"serviceAccess"`
		ReferenceTokens string `json:"referenceTokens"`
		Scope           string `json:"scope"`
	}
	p := struct {
		EventID         string  `json:"eventId"`
		Event           string  `json:"event"`
		OccurredAt      string  `json:"occurredAt"`
		InstanceBaseURL string  `json:"instanceBaseUrl"`
		User            string  `json:"user"`
		ClientSecret    string  `json:"clientSecret,omitempty"`
		ReferenceToken  string  `json:"referenceToken,omitempty"`
		Request         request `json:"request"`
	}{e.ID, e.Event, e.OccurredAt.UTC().Format("2006-01-02T15:04:05.000Z"), e.Instance, e.User, e.ClientSecret, e.ReferenceToken,
		request{e.ApplicationURI, e.ClientType, e.RedirectURI, "all", "clientCredentials", "none", e.Scope}}
	raw, _ := json.Marshal(p)
	js, err := jsjson.Stringify(raw) // JavaScript's escaping, not Go's
	if err != nil {
		m.fail("Payload: %v", err)
	}
	return js
}

// Sign returns the base64 RSA-SHA256 (PKCS #1 v1.5) signature of payload with the current
// key, as the Marketplace signs JSON.stringify(payload).
func (m *Marketplace) Sign(payload []byte) string {
	key := m.key.Load()
	sum := sha256.Sum256(payload)
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
	if err != nil {
		m.fail("Sign: %v", err)
	}
	return base64.StdEncoding.EncodeToString(sig)
}

// Envelope returns a lifecycle event's body from a payload (raw JSON, kept byte for byte)
// and a signature, for tests that tamper with either.
func Envelope(payload []byte, signature string) []byte {
	sig, _ := json.Marshal(signature)
	return []byte(`{"schema":"erpnet.appLifecycleEvent.v2","signature":` + string(sig) + `,"payload":` + string(payload) + `}`)
}

// Deliver posts e, signed, to an app's redirect URI (callbackURL), as the Marketplace posts
// {"schema":"erpnet.appLifecycleEvent.v2","signature":...,"payload":...}, and returns the HTTP
// status the app answered with. Tests of tampered events build the body with Payload, Sign and
// Envelope and post it themselves.
func (m *Marketplace) Deliver(callbackURL string, e LifecycleEvent) (int, error) {
	p := m.Payload(e)
	resp, err := m.hc.Post(callbackURL, "application/json", bytes.NewReader(Envelope(p, m.Sign(p))))
	if err != nil {
		return 0, fmt.Errorf("erpnettest: marketplace: deliver: %w", err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	return resp.StatusCode, nil
}
