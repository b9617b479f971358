package erpnettest

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/erpnetgo/auth/internal/erpnetctl"
	"github.com/erpnetgo/auth/internal/testutil"
)

func TestTamperNextIDToken(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	next := func() string {
		return e.userTokens(Demo.Alice, "openid profile")["id_token"].(string)
	}

	e.ctl().TamperNextIDToken(erpnetctl.Tamper{Claims: map[string]any{"iss": "https://evil.example/id", "nonce": nil, "extra": 1}})
	tok := next()
	_, c := e.verify(tok) // still correctly signed
	assert.Equal(t, "https://evil.example/id", c["iss"])
	assert.NotContains(t, c, "nonce")
	assert.EqualValues(t, 1, c["extra"])

	// Only the next token is tampered.
	_, c = e.verify(next())
	assert.Equal(t, e.s.Authority(), c["iss"])

	e.ctl().TamperNextIDToken(erpnetctl.Tamper{Alg: "none"})
	tok = next()
	assert.Equal(t, "none", decodeHeader(t, tok)["alg"])
	assert.True(t, strings.HasSuffix(tok, "."))
	_, _, err := e.tryVerify(tok)
	assert.Error(t, err)

	e.ctl().TamperNextIDToken(erpnetctl.Tamper{Alg: "HS256"})
	tok = next()
	assert.Equal(t, "HS256", decodeHeader(t, tok)["alg"])
	_, _, err = e.tryVerify(tok)
	assert.Error(t, err, "an RS256 verifier must refuse HS256")
	assert.True(t, hmacValid(tok, Demo.WebAppSecret), "HS256 keyed with the client secret")

	e.ctl().TamperNextIDToken(erpnetctl.Tamper{BadSignature: true})
	tok = next()
	_, _, err = e.tryVerify(tok)
	assert.Error(t, err)

	e.ctl().TamperNextIDToken(erpnetctl.Tamper{UnknownKey: true})
	tok = next()
	kid := decodeHeader(t, tok)["kid"].(string)
	set := e.jwks()
	assert.Empty(t, set.Key(kid))
	_, _, err = e.tryVerify(tok)
	assert.ErrorIs(t, err, errNoKey)

	// Public client + HS256: keyed with "x".
	e.ctl().TamperNextIDToken(erpnetctl.Tamper{Alg: "HS256"})
	tok = e.cliTokens(Demo.Bob, "openid")["id_token"].(string)
	assert.True(t, hmacValid(tok, "x"))
}

// hmacValid checks an HS256 signature by hand (go-jose refuses keys shorter than 256 bits).
func hmacValid(tok, key string) bool {
	i := strings.LastIndexByte(tok, '.')
	m := hmac.New(sha256.New, []byte(key))
	m.Write([]byte(tok[:i]))
	return hmac.Equal([]byte(b64url(m.Sum(nil))), []byte(tok[i+1:]))
}

func TestNoSecretsInLogs(t *testing.T) {
	t.Parallel()
	logs := &testutil.SyncBuffer{}
	e := newEnv(t, func(c *Config) {
		c.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	secrets := []string{Demo.WebAppSecret, Demo.WorkerSecret, Demo.AlicePassword, Demo.BobPassword}

	a := e.newAuthz(Demo.WebAppID, "http://127.0.0.1:8080/callback", "openid read offline_access")
	_, page := e.authorizeWith(e.c, a.query())
	e.submitLogin(e.c, formFields(t, page), Demo.Alice, "wrong-password-xyz")
	resp, _ := e.submitLogin(e.c, formFields(t, page), Demo.Alice, Demo.AlicePassword)
	code := redirectParams(t, resp, "http://127.0.0.1:8080/callback").Get("code")
	_, tokens := e.exchange(a, code, Demo.WebAppSecret)
	_, t2 := e.refresh(tokens["refresh_token"].(string), Demo.WebAppID, Demo.WebAppSecret)
	e.refresh(tokens["refresh_token"].(string), Demo.WebAppID, Demo.WebAppSecret) // reuse
	e.exchange(a, code, Demo.WebAppSecret)                                        // replay
	e.token(ccForm(""), Demo.WorkerID, "wrong-secret-xyz")
	sys := e.cc(Demo.WorkerID, Demo.WorkerSecret, "")
	pat := e.s.MintPAT(Demo.Alice)
	e.api("GET", customers, bearer(sys), "")
	e.api("GET", customers, map[string]string{"X-Api-Key": pat}, "")
	e.postForm(pathRevocation, url.Values{"token": {sys}}, basicAuth(Demo.WorkerID, Demo.WorkerSecret))
	e.postForm(pathIntrospect, url.Values{"token": {pat}}, basicAuth(Demo.WorkerID, Demo.WorkerSecret))
	e.s.RevokeToken(pat)

	secrets = append(secrets, "wrong-password-xyz", "wrong-secret-xyz", code, a.verifier, sys, pat,
		tokens["access_token"].(string), tokens["refresh_token"].(string), tokens["id_token"].(string),
		t2["refresh_token"].(string))
	out := logs.String()
	require.NotEmpty(t, out)
	for _, s := range secrets {
		assert.NotContains(t, out, s)
	}
}

// TestMalformedInputs throws garbage at every endpoint through ServeHTTP and over HTTP: no
// panics, no 5xx.
func TestMalformedInputs(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	rng := rand.New(rand.NewSource(42))
	garbage := func() string {
		pieces := []string{"%", "%zz", "&", "=", "client_id=", "grant_type=authorization_code", "code=x", "\x00", "é",
			"redirect_uri=http://127.0.0.1:8080/callback", "client_id=com.example%2Fwebapp", "token=", "scope=%20",
			"code_verifier=" + strings.Repeat("a", 43), "refresh_token=" + strings.Repeat("b", 5), ";", "+", "\n",
			"grant_type=refresh_token", "grant_type=client_credentials", "state=", "response_type=code", "id_token_hint=a.b.c",
			"post_logout_redirect_uri=x", "request=", "csrf=", "username=alice", "password=", "code_challenge_method=S256",
		}
		var b strings.Builder
		for i := rng.Intn(8); i >= 0; i-- {
			b.WriteString(pieces[rng.Intn(len(pieces))])
			if rng.Intn(2) == 0 {
				b.WriteByte('&')
			}
		}
		return b.String()
	}
	paths := []string{pathDiscovery, pathJWKS, pathAuthorize, pathToken, pathUserinfo, pathRevocation, pathIntrospect,
		pathEndSession, "/sys/auto-discovery", pathSignIn, customers, "/api/domain/odata/X('", "/api/domain/odata/(", "/nope"}
	methods := []string{"GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"}
	auths := []string{"", "Basic", "Basic ====", "Bearer", "Bearer a.b.c", "Bearer enrt_", basicAuth(Demo.WebAppID, Demo.WebAppSecret),
		basicAuth(Demo.CLIID, ""), "Bearer " + strings.Repeat("x", 20000)}
	for i := 0; i < 1500; i++ {
		p := paths[rng.Intn(len(paths))]
		m := methods[rng.Intn(len(methods))]
		body := garbage()
		req := httptest.NewRequest(m, e.s.URL()+p+"?"+url.PathEscape(garbage()), strings.NewReader(body))
		req.URL.RawQuery = garbage()
		switch rng.Intn(3) {
		case 0:
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		case 1:
			req.Header.Set("Content-Type", "application/json")
		}
		if a := auths[rng.Intn(len(auths))]; a != "" {
			req.Header.Set("Authorization", a)
		}
		if rng.Intn(5) == 0 {
			req.Header.Set("X-Api-Key", garbage())
		}
		if rng.Intn(5) == 0 {
			req.AddCookie(&http.Cookie{Name: sessionCookie, Value: "x"})
			req.AddCookie(&http.Cookie{Name: csrfCookie, Value: strings.Repeat("c", 43)})
		}
		rec := httptest.NewRecorder()
		e.s.serve(rec, req)
		require.Less(t, rec.Code, 500, "%s %s body %q: %s", m, p, body, rec.Body.String())
	}
	require.Zero(t, e.s.panics.Load())

	// Oversized form body.
	big := "grant_type=client_credentials&x=" + strings.Repeat("a", 200<<10)
	resp, b := e.postForm(pathToken, mustParse(big), basicAuth(Demo.WorkerID, Demo.WorkerSecret))
	requireOAuthError(t, resp, b, http.StatusBadRequest, "invalid_request")
}

func mustParse(s string) url.Values {
	v, _ := url.ParseQuery(s)
	return v
}

func FuzzTokenEndpoint(f *testing.F) {
	s, err := newServer(testConfig()) // not listening: its handler is called directly
	if err != nil {
		f.Fatal(err)
	}
	f.Add("grant_type=client_credentials", basicAuth(Demo.WorkerID, Demo.WorkerSecret))
	f.Add("grant_type=authorization_code&code=x&redirect_uri=y&code_verifier="+strings.Repeat("v", 43), "")
	f.Add("grant_type=refresh_token&refresh_token=x&client_id=com.example%2Fcli", "")
	f.Add("%zz", "Basic %%%")
	f.Fuzz(func(t *testing.T, body, auth string) {
		req := httptest.NewRequest("POST", "http://127.0.0.1/id/connect/token", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if auth != "" {
			req.Header["Authorization"] = []string{auth}
		}
		rec := httptest.NewRecorder()
		s.serve(rec, req)
		if rec.Code >= 500 || s.panics.Load() != 0 {
			t.Fatalf("status %d for %q / %q", rec.Code, body, auth)
		}
		if rec.Code != 200 {
			var m map[string]any
			if err := json.Unmarshal(rec.Body.Bytes(), &m); err != nil || m["error"] == nil {
				t.Fatalf("not an RFC 6749 error: %s", rec.Body.String())
			}
		}
	})
}

func TestEndpointCounters(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for i, ep := range endpoints {
		for range i + 1 {
			e.get(ep.path)
		}
	}
	for i, ep := range endpoints {
		assert.Equal(t, i+1, e.s.Requests(ep.name), ep.name)
	}
	e.ctl().ResetCounts()
	for _, ep := range endpoints {
		assert.Zero(t, e.s.Requests(ep.name))
	}
}

func TestConcurrentUse(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *Config) { c.LicenseCount = 1000 })
	e.ctl().AutoSignIn(Demo.Alice)
	pat := e.s.MintPAT(Demo.Bob)
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := e.newBrowser()
			for i := 0; i < 4; i++ {
				if err := concurrentRound(e, c, g, i, pat); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < 3; i++ {
			e.s.RotateKeys()
			e.s.Advance(time.Second)
			_ = e.ctl().Tokens()
			_ = e.ctl().APICalls()
			_ = e.s.LicensesInUse()
		}
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func concurrentRound(e *env, c *http.Client, g, i int, pat string) error {
	post := func(path string, form url.Values, auth string) (map[string]any, int, error) {
		req, _ := http.NewRequest("POST", e.s.URL()+path, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := c.Do(req)
		if err != nil {
			return nil, 0, err
		}
		defer resp.Body.Close()
		var m map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&m)
		return m, resp.StatusCode, nil
	}
	apiGet := func(hdr, val string) error {
		req, _ := http.NewRequest("GET", e.s.URL()+customers, nil)
		req.Header.Set(hdr, val)
		resp, err := c.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("api %s: %d", hdr, resp.StatusCode)
		}
		return nil
	}
	cc, st, err := post(pathToken, url.Values{"grant_type": {"client_credentials"}}, basicAuth(Demo.WorkerID, Demo.WorkerSecret))
	if err != nil || st != 200 {
		return fmt.Errorf("cc: %v %d %v", err, st, cc)
	}
	if err := apiGet("Authorization", "Bearer "+cc["access_token"].(string)); err != nil {
		return err
	}
	if err := apiGet("X-Api-Key", pat); err != nil {
		return err
	}
	a := e.newAuthz(Demo.CLIID, fmt.Sprintf("http://127.0.0.1:%d/callback", 20000+g*10+i), "openid read offline_access")
	resp, err := c.Get(e.s.URL() + pathAuthorize + "?" + a.query().Encode())
	if err != nil {
		return err
	}
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || loc.Query().Get("code") == "" {
		return fmt.Errorf("authorize: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	tok, st, err := post(pathToken, url.Values{"grant_type": {"authorization_code"}, "code": {loc.Query().Get("code")},
		"redirect_uri": {a.redirectURI}, "code_verifier": {a.verifier}, "client_id": {Demo.CLIID}}, "")
	if err != nil || st != 200 {
		return fmt.Errorf("exchange: %v %d %v", err, st, tok)
	}
	ref, st, err := post(pathToken, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok["refresh_token"].(string)},
		"client_id": {Demo.CLIID}}, "")
	if err != nil || st != 200 {
		return fmt.Errorf("refresh: %v %d %v", err, st, ref)
	}
	return apiGet("Authorization", "Bearer "+ref["access_token"].(string))
}
