package erpnettest_test

import (
	"bytes"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/erpnetgo/auth/erpnettest"
)

// publicKey reads the Marketplace's published key the way an app would:
// well-known document, then endpoints.public_key.
func publicKey(t *testing.T, m *erpnettest.Marketplace, c *http.Client) *rsa.PublicKey {
	t.Helper()
	get := func(u string) []byte {
		resp, err := c.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %s", u, resp.Status)
		}
		return b
	}
	var doc struct {
		Endpoints struct {
			PublicKey string `json:"public_key"`
		} `json:"endpoints"`
	}
	if err := json.Unmarshal(get(m.URL()+"/.well-known/marketplace.json"), &doc); err != nil || !strings.HasPrefix(doc.Endpoints.PublicKey, m.URL()) {
		t.Fatalf("well-known document: %v %q", err, doc.Endpoints.PublicKey)
	}
	b := get(doc.Endpoints.PublicKey)
	if blk, _ := pem.Decode(b); blk != nil {
		var pub any
		var err error
		if blk.Type == "PUBLIC KEY" {
			pub, err = x509.ParsePKIXPublicKey(blk.Bytes)
		} else {
			pub, err = x509.ParsePKCS1PublicKey(blk.Bytes)
		}
		if err != nil {
			t.Fatal(err)
		}
		return pub.(*rsa.PublicKey)
	}
	var jwk struct {
		N, E string
		Keys []struct{ N, E string }
	}
	if err := json.Unmarshal(b, &jwk); err != nil {
		t.Fatal(err)
	}
	if len(jwk.Keys) == 1 {
		jwk.N, jwk.E = jwk.Keys[0].N, jwk.Keys[0].E
	}
	n, _ := base64.RawURLEncoding.DecodeString(jwk.N)
	e, _ := base64.RawURLEncoding.DecodeString(jwk.E)
	return &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
}

func TestMarketplaceSignsWhatItPublishes(t *testing.T) {
	c := newClient(t)
	for _, f := range []string{"", "pkcs1", "jwk", "jwks"} {
		m := erpnettest.NewMarketplace(t, erpnettest.MarketplaceConfig{KeyFormat: f})
		pub := publicKey(t, m, c)
		ev := erpnettest.LifecycleEvent{ID: "e1", Event: "installed", Instance: "https://acme.my.erp.net",
			OccurredAt: time.Date(2026, 1, 2, 3, 4, 5, 678e6, time.UTC), User: "Ann <a&b>",
			ClientSecret: "s", ApplicationURI: "com.example/vendor", RedirectURI: "https://app.example.com/callback"}
		p := m.Payload(ev)
		want := `{"eventId":"e1","event":"installed","occurredAt":"2026-01-02T03:04:05.678Z","instanceBaseUrl":"https://acme.my.erp.net","user":"Ann <a&b>","clientSecret":"s","request":{"applicationUri":"com.example/vendor","clientType":"Confidential","redirectUri":"https://app.example.com/callback","impersonate":"all","serviceAccess":"clientCredentials","referenceTokens":"none","scope":"read update"}}`
		if string(p) != want {
			t.Fatalf("payload:\n got %s\nwant %s", p, want)
		}
		var body struct {
			Schema, Signature string
			Payload           json.RawMessage
		}
		if err := json.Unmarshal(erpnettest.Envelope(p, m.Sign(p)), &body); err != nil || body.Schema != "erpnet.appLifecycleEvent.v2" || !bytes.Equal(body.Payload, p) {
			t.Fatalf("body: %v %+v", err, body)
		}
		sig, _ := base64.StdEncoding.DecodeString(body.Signature)
		sum := sha256.Sum256(p)
		if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], sig); err != nil {
			t.Fatalf("%q: the signature does not verify with the published key: %v", f, err)
		}
		if m.KeyFetches() != 1 {
			t.Fatalf("KeyFetches = %d", m.KeyFetches())
		}
		m.RotateKey()
		if err := rsa.VerifyPKCS1v15(publicKey(t, m, c), crypto.SHA256, sum[:], sig); err == nil {
			t.Fatal("RotateKey did not change the published key")
		}
	}
}

func TestMarketplaceDeliver(t *testing.T) {
	m := erpnettest.NewMarketplace(t)
	var got []byte
	var ctype string
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, _ = io.ReadAll(r.Body)
		ctype = r.Header.Get("Content-Type")
		w.WriteHeader(http.StatusAccepted)
	}))
	defer app.Close()
	st, err := m.Deliver(app.URL+"/callback", erpnettest.LifecycleEvent{Event: "uninstalled", Instance: "https://acme.my.erp.net"})
	if err != nil || st != http.StatusAccepted || ctype != "application/json" || !bytes.Contains(got, []byte(`"event":"uninstalled"`)) {
		t.Fatalf("Deliver: %d %v %q %s", st, err, ctype, got)
	}
	if _, err := erpnettest.StartMarketplace(erpnettest.MarketplaceConfig{KeyFormat: "x509"}); err == nil {
		t.Fatal("an unknown key format was accepted")
	}
}

// The server sends RFC 9207 iss on authorization responses unless told
// not to.
func TestAuthorizationResponseIss(t *testing.T) {
	c := newClient(t)
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	for _, omit := range []bool{false, true} {
		srv := erpnettest.NewServer(t, erpnettest.Config{OmitIss: omit})
		resp, err := c.Get(srv.Authority() + "/.well-known/openid-configuration")
		if err != nil {
			t.Fatal(err)
		}
		var doc map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&doc)
		resp.Body.Close()
		if adv, _ := doc["authorization_response_iss_parameter_supported"].(bool); adv == omit {
			t.Errorf("OmitIss %v: discovery advertises iss: %v", omit, adv)
		}
		// An error response (unknown client) goes back with or without iss.
		q := url.Values{"response_type": {"code"}, "client_id": {erpnettest.Demo.WebAppID}, "redirect_uri": {"http://127.0.0.1:8080/callback"},
			"scope": {"openid"}, "state": {"s"}, "nonce": {"n"}, "code_challenge": {strings.Repeat("a", 43)}, "code_challenge_method": {"S256"}, "prompt": {"none"}}
		resp, err = c.Get(srv.Authority() + "/connect/authorize?" + q.Encode())
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		loc, _ := url.Parse(resp.Header.Get("Location"))
		if loc == nil || loc.Query().Has("iss") == omit {
			t.Errorf("OmitIss %v: authorization response %s %q", omit, resp.Status, resp.Header.Get("Location"))
		}
	}
}
