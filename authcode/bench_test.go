package authcode

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"golang.org/x/oauth2"

	"github.com/erpnetgo/auth/authcode/internal/sessions"
)

// stubIDP is an in-memory identity server: an http.RoundTripper that
// answers discovery, JWKS and token requests without any socket, with
// pre-built bodies. The token response carries an RS256 ID token signed once
// with a fixed nonce, so the benchmark measures the Client, not RSA signing
// or the network.
type stubIDP struct {
	issuer     string
	discovery  []byte
	jwks       []byte
	tokenBody  []byte
	nonce      string
	tokenCalls int
}

const benchIssuer = "https://idp.bench.example/id"

func newStubIDP(tb testing.TB, clientID string) *stubIDP {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		tb.Fatal(err)
	}
	s := &stubIDP{issuer: benchIssuer, nonce: "bench-nonce-0123456789abcdefghijklmnop"}
	s.discovery, _ = json.Marshal(map[string]any{
		"issuer":                           benchIssuer,
		"authorization_endpoint":           benchIssuer + "/connect/authorize",
		"token_endpoint":                   benchIssuer + "/connect/token",
		"jwks_uri":                         benchIssuer + "/.well-known/openid-configuration/jwks",
		"end_session_endpoint":             benchIssuer + "/connect/endsession",
		"code_challenge_methods_supported": []string{"S256"},
	})
	jwk := jose.JSONWebKey{Key: &key.PublicKey, KeyID: "bench", Algorithm: "RS256", Use: "sig"}
	s.jwks, _ = json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{jwk}})
	at := "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl-bench-access-token"
	sum := sha256.Sum256([]byte(at))
	claims, _ := json.Marshal(map[string]any{
		"iss": benchIssuer, "sub": "alice", "aud": clientID, "nonce": s.nonce,
		"iat": time.Now().Unix(), "exp": time.Now().Add(24 * time.Hour).Unix(),
		"at_hash": base64.RawURLEncoding.EncodeToString(sum[:16]),
		"name":    "Alice Anderson", "email": "alice@example.com", "preferred_username": "alice",
	})
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: key, KeyID: "bench"}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		tb.Fatal(err)
	}
	jws, err := signer.Sign(claims)
	if err != nil {
		tb.Fatal(err)
	}
	idt, _ := jws.CompactSerialize()
	s.tokenBody, _ = json.Marshal(map[string]any{
		"access_token": at, "token_type": "Bearer", "expires_in": 3600, "refresh_token": "bench-refresh-token",
		"id_token": idt, "scope": "openid profile offline_access read update",
	})
	return s
}

func (s *stubIDP) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		_, _ = io.Copy(io.Discard, r.Body)
		r.Body.Close()
	}
	var body []byte
	switch r.URL.Path {
	case "/id/.well-known/openid-configuration":
		body = s.discovery
	case "/id/.well-known/openid-configuration/jwks":
		body = s.jwks
	case "/id/connect/token":
		s.tokenCalls++
		body = s.tokenBody
	default:
		return &http.Response{StatusCode: http.StatusNotFound, Body: http.NoBody, Header: http.Header{}, Request: r}, nil
	}
	return &http.Response{StatusCode: http.StatusOK, Request: r, ContentLength: int64(len(body)),
		Header: http.Header{"Content-Type": {"application/json"}}, Body: io.NopCloser(bytes.NewReader(body))}, nil
}

// BenchmarkCallback measures the Callback handler's own cost: opening the
// attempt cookie, the state checks and used-state record, building and
// parsing the token request (answered in memory by stubIDP: no socket, no
// server work), ID token verification (RS256 signature, claims, nonce,
// at_hash), serialising and saving the session (the in-memory store) and sealing
// the session cookie. The requests, each with its own attempt cookie, are
// built before the timer starts.
func BenchmarkCallback(b *testing.B) {
	stub := newStubIDP(b, "com.example/bench")
	c, err := New(Config{
		Authority: benchIssuer, ClientID: "com.example/bench", ClientSecret: "bench-secret",
		RedirectURL: "https://app.bench.example/callback", Keys: [][]byte{bytes.Repeat([]byte{1}, 32)},
		HTTPClient: &http.Client{Transport: stub}, Logger: slog.New(slog.DiscardHandler),
		MaxLiveSessions: 1 << 20,
	})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	c.nonce = func() string { return stub.nonce }
	h := c.Callback()
	reqs := make([]*http.Request, b.N)
	for i := range reqs {
		w := httptest.NewRecorder()
		c.SignIn().ServeHTTP(w, httptest.NewRequest(http.MethodGet, "https://app.bench.example/signin", nil))
		loc, _ := url.Parse(w.Header().Get("Location"))
		req := httptest.NewRequest(http.MethodGet, "https://app.bench.example/callback?"+
			url.Values{"code": {"bench-code"}, "state": {loc.Query().Get("state")}}.Encode(), nil)
		for _, ck := range w.Result().Cookies() {
			req.AddCookie(ck)
		}
		reqs[i] = req
	}
	// Warm up discovery and the JWKS cache.
	w := httptest.NewRecorder()
	h.ServeHTTP(w, reqs[0])
	if w.Code != http.StatusSeeOther {
		b.Fatalf("callback: %d %s", w.Code, w.Body)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 1; i < b.N; i++ {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, reqs[i])
		if w.Code != http.StatusSeeOther {
			b.Fatalf("callback: %d %s", w.Code, w.Body)
		}
	}
}

// apiServer is the API both transport benchmarks call.
func apiServer(b *testing.B) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ") {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		_, _ = io.WriteString(w, `{"value":[]}`)
	}))
	b.Cleanup(srv.Close)
	return srv
}

func benchRequests(b *testing.B, hc *http.Client, target string) {
	b.Helper()
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		req, _ := http.NewRequest(http.MethodGet, target, nil)
		req.Header.Set("Accept", "application/json")
		resp, err := hc.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("status %d", resp.StatusCode)
		}
	}
}

// BenchmarkUserClientRequest is one API request through UserClient with a
// fresh cached token, against a local httptest server. Compare with
// BenchmarkOAuth2TransportRequest (same server, same base transport setup).
func BenchmarkUserClientRequest(b *testing.B) {
	srv := apiServer(b)
	tr := &http.Transport{MaxIdleConnsPerHost: 4}
	defer tr.CloseIdleConnections()
	c, err := New(Config{Authority: benchIssuer, ClientID: "com.example/bench",
		Keys: [][]byte{bytes.Repeat([]byte{1}, 32)}, HTTPClient: &http.Client{Transport: tr},
		DomainAPI: srv.URL + "/api/domain/odata/", // the API server is not on the authority's origin
		Logger:    slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	s := c.adopt(b, "bench", sessions.NewRecord(sessions.Record{Issuer: benchIssuer, ClientID: "com.example/bench", Subject: "alice",
		AccessToken: "bench-access-token", Expiry: time.Now().Add(24 * time.Hour)}))
	hc := c.UserClient(context.Background(), s)
	benchRequests(b, hc, srv.URL+"/api/domain/odata/Crm_Sales_Customers?$top=10")
}

// BenchmarkOAuth2TransportRequest is the same request through
// golang.org/x/oauth2's Transport with a static token.
func BenchmarkOAuth2TransportRequest(b *testing.B) {
	srv := apiServer(b)
	tr := &http.Transport{MaxIdleConnsPerHost: 4}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: &oauth2.Transport{
		Source: oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "bench-access-token", TokenType: "Bearer",
			Expiry: time.Now().Add(24 * time.Hour)}),
		Base: tr,
	}}
	benchRequests(b, hc, srv.URL+"/api/domain/odata/Crm_Sales_Customers?$top=10")
}
