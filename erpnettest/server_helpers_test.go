package erpnettest

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/stretchr/testify/require"

	"github.com/erpnetgo/auth/internal/erpnetctl"
)

// Extra Trusted Applications used by the server's tests (besides the demo ones).
const (
	testDisabledID     = "test/disabled"
	testDisabledSecret = "disabled-secret"
	testNoSystemID     = "test/nosystem"
	testNoSystemSecret = "nosystem-secret"
	testNoSystemRedir  = "https://app.example/cb"
	testIPv6ID         = "test/ipv6"
	testIPv6Redirect   = "http://[::1]/cb"
	testReadOnlyID     = "test/readonly"
	testReadOnlySecret = "readonly-secret"
)

func testConfig() Config {
	return Config{Apps: []App{
		{ID: testDisabledID, Secret: testDisabledSecret, RedirectURIs: []string{"https://disabled.example/cb"},
			SystemUser: "dis-system", Disabled: true},
		{ID: testNoSystemID, Secret: testNoSystemSecret, RedirectURIs: []string{testNoSystemRedir},
			PostLogoutURIs: []string{"https://app.example/"}},
		{ID: testIPv6ID, RedirectURIs: []string{testIPv6Redirect}},
		{ID: testReadOnlyID, Secret: testReadOnlySecret, SystemUser: "reader-system", Scopes: []string{"read"}},
	}}
}

type env struct {
	t *testing.T
	s *Server
	c *http.Client
}

// newEnv starts a server with testConfig (adjusted by mut) and a cookie-jar client that does
// not follow redirects.
func newEnv(t *testing.T, mut ...func(*Config)) *env {
	t.Helper()
	cfg := testConfig()
	for _, m := range mut {
		m(&cfg)
	}
	s := NewServer(t, cfg)
	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	t.Cleanup(func() {
		if n := s.panics.Load(); n != 0 {
			t.Errorf("%d handler panics", n)
		}
	})
	return &env{t: t, s: s, c: &http.Client{
		Jar: jar, Transport: tr, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

func (e *env) ctl() erpnetctl.Controls { return ctl{e.s} }

// newBrowser returns a second, independent cookie-jar client for e's server.
func (e *env) newBrowser() *http.Client {
	jar, _ := cookiejar.New(nil)
	tr := &http.Transport{}
	e.t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Jar: jar, Transport: tr, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func (e *env) do(req *http.Request) (*http.Response, []byte) {
	e.t.Helper()
	resp, err := e.c.Do(req)
	require.NoError(e.t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(e.t, err)
	return resp, body
}

func (e *env) get(path string) (*http.Response, []byte) {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodGet, e.s.URL()+path, nil)
	require.NoError(e.t, err)
	return e.do(req)
}

// basicAuth encodes id and secret per RFC 6749 §2.3.1.
func basicAuth(id, secret string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(id)+":"+url.QueryEscape(secret)))
}

// postForm POSTs form to path; auth, when not empty, is the Authorization header value.
func (e *env) postForm(path string, form url.Values, auth string) (*http.Response, map[string]any) {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.s.URL()+path, strings.NewReader(form.Encode()))
	require.NoError(e.t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, body := e.do(req)
	var m map[string]any
	if len(body) > 0 {
		require.NoError(e.t, json.Unmarshal(body, &m), "body: %s", body)
	}
	return resp, m
}

// token posts to the token endpoint with HTTP Basic for a confidential client (secret != "")
// or client_id in the body for a public one.
func (e *env) token(form url.Values, id, secret string) (*http.Response, map[string]any) {
	e.t.Helper()
	auth := ""
	if secret != "" {
		auth = basicAuth(id, secret)
	} else {
		form.Set("client_id", id)
	}
	return e.postForm(pathToken, form, auth)
}

func requireOAuthError(t *testing.T, resp *http.Response, body map[string]any, status int, code string) {
	t.Helper()
	require.Equal(t, status, resp.StatusCode, "body: %v", body)
	require.Equal(t, code, body["error"], "body: %v", body)
	require.Equal(t, "no-store", resp.Header.Get("Cache-Control"))
}

func pkcePair() (verifier, challenge string) {
	verifier = randomToken(32)
	sum := sha256.Sum256([]byte(verifier))
	return verifier, base64.RawURLEncoding.EncodeToString(sum[:])
}

type authz struct {
	clientID, redirectURI, scope, state, nonce, verifier, challenge string
	extra                                                           url.Values
}

func (e *env) newAuthz(clientID, redirectURI, scope string) *authz {
	v, c := pkcePair()
	return &authz{clientID: clientID, redirectURI: redirectURI, scope: scope, state: "st-" + randomToken(8),
		nonce: "n-" + randomToken(8), verifier: v, challenge: c}
}

func (a *authz) query() url.Values {
	q := url.Values{
		"client_id": {a.clientID}, "redirect_uri": {a.redirectURI}, "response_type": {"code"},
		"scope": {a.scope}, "state": {a.state}, "nonce": {a.nonce},
		"code_challenge": {a.challenge}, "code_challenge_method": {"S256"},
	}
	for k, v := range a.extra {
		q[k] = v
	}
	return q
}

// authorizeWith sends the authorization request with client c.
func (e *env) authorizeWith(c *http.Client, q url.Values) (*http.Response, []byte) {
	e.t.Helper()
	resp, err := c.Get(e.s.URL() + pathAuthorize + "?" + q.Encode())
	require.NoError(e.t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(e.t, err)
	return resp, body
}

// redirectParams checks a 302 to the client's redirect URI and returns its query.
func redirectParams(t *testing.T, resp *http.Response, redirectURI string) url.Values {
	t.Helper()
	require.Equal(t, http.StatusFound, resp.StatusCode)
	loc := resp.Header.Get("Location")
	require.True(t, strings.HasPrefix(loc, redirectURI+"?"), "Location %q, want prefix %q", loc, redirectURI)
	u, err := url.Parse(loc)
	require.NoError(t, err)
	return u.Query()
}

// codeFor signs user in automatically and returns an authorization code for a.
func (e *env) codeFor(a *authz, user string) string {
	e.t.Helper()
	e.ctl().AutoSignIn(user)
	defer e.ctl().AutoSignIn("")
	resp, _ := e.authorizeWith(e.c, a.query())
	q := redirectParams(e.t, resp, a.redirectURI)
	require.Equal(e.t, a.state, q.Get("state"))
	require.NotEmpty(e.t, q.Get("code"), "query: %v", q)
	return q.Get("code")
}

func (e *env) exchange(a *authz, code, secret string) (*http.Response, map[string]any) {
	e.t.Helper()
	return e.token(url.Values{"grant_type": {"authorization_code"}, "code": {code},
		"redirect_uri": {a.redirectURI}, "code_verifier": {a.verifier}}, a.clientID, secret)
}

// userTokens runs the whole code flow for the demo web app and returns the token response.
func (e *env) userTokens(user, scope string) map[string]any {
	e.t.Helper()
	a := e.newAuthz(Demo.WebAppID, "http://127.0.0.1:8080/callback", scope)
	resp, body := e.exchange(a, e.codeFor(a, user), Demo.WebAppSecret)
	require.Equal(e.t, http.StatusOK, resp.StatusCode, "body: %v", body)
	return body
}

// cliTokens runs the code flow for the public demo CLI.
func (e *env) cliTokens(user, scope string) map[string]any {
	e.t.Helper()
	a := e.newAuthz(Demo.CLIID, "http://127.0.0.1:49152/callback", scope)
	resp, body := e.exchange(a, e.codeFor(a, user), "")
	require.Equal(e.t, http.StatusOK, resp.StatusCode, "body: %v", body)
	return body
}

func (e *env) cc(id, secret, scope string) string {
	e.t.Helper()
	form := url.Values{"grant_type": {"client_credentials"}}
	if scope != "" {
		form.Set("scope", scope)
	}
	resp, body := e.token(form, id, secret)
	require.Equal(e.t, http.StatusOK, resp.StatusCode, "body: %v", body)
	return body["access_token"].(string)
}

// api calls the Domain API with the given headers.
func (e *env) api(method, path string, hdr map[string]string, body string) (*http.Response, map[string]any) {
	e.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, e.s.URL()+path, rd)
	require.NoError(e.t, err)
	for k, v := range hdr {
		req.Header[k] = []string{v} // keep the exact header name spelling
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, raw := e.do(req)
	var m map[string]any
	if len(raw) > 0 {
		require.NoError(e.t, json.Unmarshal(raw, &m), "body: %s", raw)
	}
	return resp, m
}

func bearer(tok string) map[string]string { return map[string]string{"Authorization": "Bearer " + tok} }

const customers = "/api/domain/odata/Crm_Sales_Customers"

// jwks fetches the JWKS over HTTP.
func (e *env) jwks() jose.JSONWebKeySet {
	e.t.Helper()
	resp, body := e.get(pathJWKS)
	require.Equal(e.t, http.StatusOK, resp.StatusCode)
	var set jose.JSONWebKeySet
	require.NoError(e.t, json.Unmarshal(body, &set))
	return set
}

// verify checks tok's RS256 signature with go-jose against the published JWKS and returns its
// protected header typ and claims.
func (e *env) verify(tok string) (string, map[string]any) {
	e.t.Helper()
	typ, claims, err := e.tryVerify(tok)
	require.NoError(e.t, err)
	return typ, claims
}

func (e *env) tryVerify(tok string) (string, map[string]any, error) {
	jws, err := jose.ParseSignedCompact(tok, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		return "", nil, err
	}
	set := e.jwks()
	keys := set.Key(jws.Signatures[0].Header.KeyID)
	if len(keys) == 0 {
		return "", nil, errNoKey
	}
	payload, err := jws.Verify(keys[0])
	if err != nil {
		return "", nil, err
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		return "", nil, err
	}
	typ, _ := jws.Signatures[0].Protected.ExtraHeaders[jose.HeaderType].(string)
	return typ, claims, nil
}

var errNoKey = errString("kid not in JWKS")

type errString string

func (e errString) Error() string { return string(e) }

func decodeHeader(t *testing.T, tok string) map[string]any {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[0])
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m))
	return m
}
