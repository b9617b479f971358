package authcode

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/erpnetgo/auth"

	"github.com/erpnetgo/auth/erpnettest"
	"github.com/erpnetgo/auth/internal/clock"
	"github.com/erpnetgo/auth/internal/erpnetctl"
)

func TestSignInHappyPath(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	authURL := e.startSignIn(b, "/me?x=1")

	u, err := url.Parse(authURL)
	require.NoError(t, err)
	q := u.Query()
	assert.Equal(t, "code", q.Get("response_type"))
	assert.Equal(t, webID, q.Get("client_id"))
	assert.Equal(t, e.app.URL+"/callback", q.Get("redirect_uri"))
	assert.Equal(t, "openid profile offline_access read update", q.Get("scope"))
	assert.Equal(t, "S256", q.Get("code_challenge_method"))
	assert.Len(t, q.Get("code_challenge"), 43)
	assert.GreaterOrEqual(t, len(q.Get("state")), 22, "state must carry at least 128 bits")
	assert.GreaterOrEqual(t, len(q.Get("nonce")), 22)
	assert.False(t, q.Has("prompt"))

	// The attempt cookie: sealed, HttpOnly, Lax, scoped to the callback, 10 minutes.
	r := b.get(e.app.URL + "/signin?return_to=/x")
	var ck *http.Cookie
	for _, c := range r.Cookies() {
		if strings.Contains(c.Name, "_signin_") {
			ck = c
		}
	}
	require.NotNil(t, ck)
	assert.True(t, ck.HttpOnly)
	assert.Equal(t, http.SameSiteLaxMode, ck.SameSite)
	assert.Equal(t, "/callback", ck.Path)
	assert.Equal(t, 600, ck.MaxAge)
	assert.False(t, ck.Secure, "http redirect URL: no Secure")
	assert.NotContains(t, ck.Value, q.Get("state"))

	cb := e.authorize(b, authURL)
	r = b.get(cb)
	require.Equal(t, http.StatusSeeOther, r.StatusCode, r.body)
	assert.Equal(t, "/me?x=1", r.Header.Get("Location"))
	var sess *http.Cookie
	for _, c := range r.Cookies() {
		switch {
		case c.Name == defaultCookieName:
			sess = c
		case strings.Contains(c.Name, "_signin_"):
			assert.Equal(t, -1, c.MaxAge, "attempt cookie must be cleared")
		}
	}
	require.NotNil(t, sess)
	assert.True(t, sess.HttpOnly)
	assert.Equal(t, http.SameSiteLaxMode, sess.SameSite)
	assert.Equal(t, "/", sess.Path)

	r = b.get(e.app.URL + "/me?x=1")
	require.Equal(t, http.StatusOK, r.StatusCode, r.body)
	var me map[string]string
	require.NoError(t, json.Unmarshal([]byte(r.body), &me))
	assert.Equal(t, "alice", me["sub"])
	assert.Equal(t, "Alice Anderson", me["name"])
	assert.Equal(t, "alice@example.com", me["email"])

	s := e.session(b)
	assert.Equal(t, e.idp.Authority(), s.Issuer)
	assert.Equal(t, "alice", s.PreferredUsername)
	assert.Contains(t, s.Scopes, "offline_access")
	assert.WithinDuration(t, e.clk.Now().Add(time.Hour), s.Expiry, time.Minute)
	assert.WithinDuration(t, e.clk.Now(), s.SignedInAt, time.Minute)
	var claims struct {
		Sub string `json:"sub"`
		Sid string `json:"sid"`
	}
	require.NoError(t, s.Claims(&claims))
	assert.Equal(t, "alice", claims.Sub)
	assert.NotEmpty(t, claims.Sid)
	assert.Equal(t, 1, e.sessionsInStore())
	// The Store key is namespaced by issuer and client_id.
	assert.Contains(t, s.sn.Key, url.PathEscape(e.idp.Authority()))
	assert.Contains(t, s.sn.Key, url.PathEscape(webID))

	// The session cookie holds only a sealed id.
	raw, err := base64.RawURLEncoding.DecodeString(sess.Value)
	require.NoError(t, err)
	assert.NotContains(t, string(raw), s.ID)
	assert.Less(t, len(sess.Value), 160)

	// The API is called as the user.
	r = b.get(e.app.URL + "/api")
	require.Equal(t, http.StatusOK, r.StatusCode, r.body)
	assert.Equal(t, "user:alice", r.Header.Get("X-Caller"))
}

func TestSignInOptions(t *testing.T) {
	e := newEnv(t, withClient(func(c *Config) {
		c.PromptLogin = true
		c.LegacyDomainAPIScope = true
		c.Scopes = []string{"read", "offline_access"}
	}))
	u, err := url.Parse(e.startSignIn(e.browser(), ""))
	require.NoError(t, err)
	assert.Equal(t, "login", u.Query().Get("prompt"))
	assert.Equal(t, "openid read offline_access DomainApi", u.Query().Get("scope"))
	e.mustSignIn(e.browser(), "")

	// Extra parameters; prompt combines with PromptLogin; ours cannot be overridden.
	cfg := e.cfg
	cfg.PromptLogin = true
	cfg.AuthParams = url.Values{"prompt": {"consent"}, "login_hint": {"alice"}}
	c, err := New(cfg)
	require.NoError(t, err)
	defer c.Close()
	w := newRecorder()
	c.SignIn().ServeHTTP(w, newRequest(http.MethodGet, "/signin", nil))
	q := mustQuery(t, w.Header().Get("Location"))
	assert.Equal(t, "login consent", q.Get("prompt"))
	assert.Equal(t, "alice", q.Get("login_hint"))
	cfg.AuthParams = url.Values{"state": {"fixed"}}
	_, err = New(cfg)
	var ce *auth.ConfigError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, "AuthParams", ce.Field)
}

func TestErrorHandler(t *testing.T) {
	var got *auth.Error
	var status int
	e := newEnv(t, withClient(func(c *Config) {
		c.ErrorHandler = func(w http.ResponseWriter, r *http.Request, st int, err *auth.Error) {
			got, status = err, st
			w.WriteHeader(418)
		}
	}))
	r := e.browser().get(e.app.URL + "/callback?state=nope&code=x")
	assert.Equal(t, 418, r.StatusCode)
	assert.Equal(t, http.StatusBadRequest, status)
	assert.ErrorIs(t, got, ErrInvalidState)
	assert.Equal(t, "invalid_state", got.Code)
	assert.NotEmpty(t, got.Description)
	assert.NotContains(t, got.Description, "authcode:")
	i := strings.LastIndex(got.Description, "(reference ")
	require.Positive(t, i, "the description ends with the reference: %q", got.Description)
	ref := strings.TrimSuffix(got.Description[i+len("(reference "):], ")")
	assert.Contains(t, e.logs.String(), `"ref":"`+ref+`"`, "the cause is logged under the reference")
}

func TestSecureCookiesForHTTPSRedirect(t *testing.T) {
	e := newEnv(t)
	cfg := e.cfg
	cfg.RedirectURL = "https://app.example.com/auth/callback"
	c, err := New(cfg)
	require.NoError(t, err)
	defer c.Close()
	w := newRecorder()
	c.SignIn().ServeHTTP(w, newRequest(http.MethodGet, "https://app.example.com/signin", nil))
	require.Equal(t, http.StatusFound, w.Code)
	cks := w.Result().Cookies()
	require.Len(t, cks, 1)
	assert.True(t, cks[0].Secure)
	assert.True(t, strings.HasPrefix(cks[0].Name, "__Secure-"))
	assert.Equal(t, "/auth/callback", cks[0].Path)
	assert.Equal(t, "__Host-"+defaultCookieName, c.cookie)
}

func TestReturnPathOpenRedirect(t *testing.T) {
	e := newEnv(t)
	nasty := []string{
		"//evil.example",
		"///evil.example",
		"/\\evil.example",
		"\\\\evil.example",
		"https://evil.example/",
		"http:evil.example",
		"javascript:alert(1)",
		"evil.example",
		"/%2Fevil.example",
		"/%2fevil.example",
		"%2F%2Fevil.example",
		"/%5Cevil.example",
		"/%252F%252Fevil.example",
		"/%25252F%25252Fevil.example",
		"/\t/evil.example",
		"/%09/evil.example",
		"/\r\n/evil.example",
		"/%0d%0aSet-Cookie:x=y",
		"/／evil.example",
		"/＼evil.example",
		"//%09evil.example",
		"/%",
		"",
		"/signin",
		"/signin?return_to=/x",
		"/callback?code=x",
		"/" + strings.Repeat("a", 3000),
	}
	for _, p := range nasty {
		t.Run(p, func(t *testing.T) {
			b := e.browser()
			r := e.signIn(b, p)
			require.Equal(t, http.StatusSeeOther, r.StatusCode, r.body)
			assert.Equal(t, "/", r.Header.Get("Location"))
		})
	}
	good := []string{"/", "/customers", "/customers?top=10&skip=20", "/a/b/c#frag", "/%E2%82%AC", "/x:y"}
	for _, p := range good {
		got, ok := safeReturnPath(p)
		assert.True(t, ok, p)
		assert.Equal(t, p, got)
	}
	// One real round trip with a query.
	r := e.signIn(e.browser(), "/customers?top=10&skip=20")
	assert.Equal(t, "/customers?top=10&skip=20", r.Header.Get("Location"))
}

func TestTwoTabsSignInAtOnce(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	a1 := e.startSignIn(b, "/one")
	a2 := e.startSignIn(b, "/two")
	cb2 := e.authorize(b, a2)
	cb1 := e.authorize(b, a1)
	r := b.get(cb2)
	require.Equal(t, http.StatusSeeOther, r.StatusCode, r.body)
	assert.Equal(t, "/two", r.Header.Get("Location"))
	r = b.get(cb1)
	require.Equal(t, http.StatusSeeOther, r.StatusCode, r.body)
	assert.Equal(t, "/one", r.Header.Get("Location"))
	// The second sign-in replaced the first session of this browser.
	assert.Equal(t, 1, e.sessionsInStore())
	assert.Equal(t, "alice", e.session(b).Subject)
}

// callbackWith rewrites a callback URL's query.
func callbackWith(t *testing.T, cb string, edit func(url.Values)) string {
	u, err := url.Parse(cb)
	require.NoError(t, err)
	q := u.Query()
	edit(q)
	u.RawQuery = q.Encode()
	return u.String()
}

// requireRefused checks a refused callback: the status, the page's
// plain-words title and its reference, no session cookie, and that the
// technical cause (which the page never shows) was logged under that
// reference.
func requireRefused(t *testing.T, e *env, r *response, status int, title, cause string) {
	t.Helper()
	require.Equal(t, status, r.StatusCode, r.body)
	assert.Contains(t, r.body, "<title>"+title+"</title>")
	ref := pageReference(t, r.body)
	assert.Contains(t, e.logLine(ref), cause, "the cause is logged under the page's reference")
	if len(cause) > 5 {
		assert.NotContains(t, r.body, cause, "the page shows no Go error text")
	}
	assertNoGoErrorText(t, r.body)
	for _, c := range r.Cookies() {
		assert.NotEqual(t, defaultCookieName, c.Name, "no session cookie on a refused callback")
	}
	assert.NotContains(t, r.body, webSecret)
}

// Page titles of refused callbacks.
const (
	titleState    = "Sign-in link no longer valid"
	titleExpired  = "Sign-in took too long"
	titleVerify   = "Sign-in could not be verified"
	titleRefused  = "Sign-in failed"
	titleCanceled = "Sign-in cancelled"
)

func TestCallbackStateAttacks(t *testing.T) {
	e := newEnv(t)

	t.Run("missing state", func(t *testing.T) {
		b := e.browser()
		cb := callbackWith(t, e.authorize(b, e.startSignIn(b, "")), func(q url.Values) { q.Del("state") })
		requireRefused(t, e, b.get(cb), http.StatusBadRequest, titleState, "no valid state parameter")
	})
	t.Run("mismatched state", func(t *testing.T) {
		b := e.browser()
		cb := callbackWith(t, e.authorize(b, e.startSignIn(b, "")), func(q url.Values) { q.Set("state", q.Get("state")+"x") })
		requireRefused(t, e, b.get(cb), http.StatusBadRequest, titleState, "no sign-in attempt for this state")
	})
	t.Run("state from another browser", func(t *testing.T) {
		victim, attacker := e.browser(), e.browser()
		cb := e.authorize(attacker, e.startSignIn(attacker, ""))
		requireRefused(t, e, victim.get(cb), http.StatusBadRequest, titleState, "no sign-in attempt")
	})
	t.Run("replayed callback", func(t *testing.T) {
		b := e.browser()
		a := e.startSignIn(b, "")
		st := mustQuery(t, a).Get("state")
		name := e.c.attemptCookieName(st)
		attemptCookie := b.cookie(e.app.URL+"/callback", name)
		require.NotNil(t, attemptCookie)
		cb := e.authorize(b, a)
		r := b.get(cb)
		require.Equal(t, http.StatusSeeOther, r.StatusCode, r.body)
		// The cookie is gone: a plain replay fails (the browser is signed
		// in, so it just goes on to the app)...
		r = b.get(cb)
		require.Equal(t, http.StatusSeeOther, r.StatusCode, r.body)
		assert.Equal(t, "/", r.Header.Get("Location"))
		// ...as it does in a browser that is not signed in...
		requireRefused(t, e, e.browser().get(cb), http.StatusBadRequest, titleState, "no sign-in attempt")
		// ...and so does a replay that brings the attempt cookie back.
		u, _ := url.Parse(e.app.URL + "/callback")
		b.jar.SetCookies(u, []*http.Cookie{{Name: name, Value: attemptCookie.Value, Path: "/callback"}})
		requireRefused(t, e, b.get(cb), http.StatusBadRequest, titleState, "already used")
	})
	t.Run("expired attempt", func(t *testing.T) {
		b := e.browser()
		cb := e.authorize(b, e.startSignIn(b, ""))
		e.clk.off.Add(int64(attemptTTL + time.Second))
		defer e.clk.off.Add(-int64(attemptTTL + time.Second))
		requireRefused(t, e, b.get(cb), http.StatusBadRequest, titleExpired, "expired")
	})
	t.Run("tampered cookie", func(t *testing.T) {
		b := e.browser()
		a := e.startSignIn(b, "")
		name := e.c.attemptCookieName(mustQuery(t, a).Get("state"))
		ck := b.cookie(e.app.URL+"/callback", name)
		raw, _ := base64.RawURLEncoding.DecodeString(ck.Value)
		raw[len(raw)-20] ^= 1
		u, _ := url.Parse(e.app.URL + "/callback")
		b.jar.SetCookies(u, []*http.Cookie{{Name: name, Value: base64.RawURLEncoding.EncodeToString(raw), Path: "/callback"}})
		requireRefused(t, e, b.get(e.authorize(b, a)), http.StatusBadRequest, titleState, "tampered")
	})
	t.Run("cookie moved to another attempt", func(t *testing.T) {
		// Sealed with its name as associated data: a valid cookie of attempt
		// 1 does not open under attempt 2's name.
		b := e.browser()
		a1, a2 := e.startSignIn(b, ""), e.startSignIn(b, "")
		n1 := e.c.attemptCookieName(mustQuery(t, a1).Get("state"))
		n2 := e.c.attemptCookieName(mustQuery(t, a2).Get("state"))
		c1 := b.cookie(e.app.URL+"/callback", n1)
		u, _ := url.Parse(e.app.URL + "/callback")
		b.jar.SetCookies(u, []*http.Cookie{{Name: n2, Value: c1.Value, Path: "/callback"}})
		requireRefused(t, e, b.get(e.authorize(b, a2)), http.StatusBadRequest, titleState, "tampered")
	})
	// Only the first, legitimate use of the replayed callback signed in.
	assert.Equal(t, 1, e.sessionsInStore())
	assert.Equal(t, 1, erpnetctl.Of(e.idp).Grants("authorization_code"), "no code is redeemed for a refused callback")
}

func mustQuery(t *testing.T, u string) url.Values {
	pu, err := url.Parse(u)
	require.NoError(t, err)
	return pu.Query()
}

func TestCallbackErrorResponse(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	a := e.startSignIn(b, "")
	st := mustQuery(t, a).Get("state")
	r := b.get(e.app.URL + "/callback?" + url.Values{"state": {st}, "error": {"access_denied"},
		"error_description": {"<script>alert(1)</script> user said no"}}.Encode())
	require.Equal(t, http.StatusForbidden, r.StatusCode)
	// A live attempt of this browser: the identity server's words are
	// shown, HTML-escaped, under a plain-words title.
	assert.Contains(t, r.body, "<title>"+titleCanceled+"</title>")
	assert.Contains(t, r.body, "&lt;script&gt;alert(1)&lt;/script&gt; user said no")
	assert.NotContains(t, r.body, "<script>")
	pageReference(t, r.body)
	assertNoGoErrorText(t, r.body)
	var cleared bool
	for _, c := range r.Cookies() {
		if strings.Contains(c.Name, "_signin_") && c.MaxAge < 0 {
			cleared = true
		}
	}
	assert.True(t, cleared, "the attempt cookie is cleared")

	// API callers get JSON: the identity server's code for a live attempt...
	a = e.startSignIn(b, "")
	st = mustQuery(t, a).Get("state")
	r = b.do(http.MethodGet, e.app.URL+"/callback?"+url.Values{"state": {st}, "error": {"server_error"}}.Encode(),
		http.Header{"Accept": {"application/json"}})
	require.Equal(t, http.StatusBadRequest, r.StatusCode)
	var body map[string]string
	require.NoError(t, json.Unmarshal([]byte(r.body), &body))
	assert.Equal(t, "server_error", body["error"])
	assert.Contains(t, body["error_description"], "reference ")
	// ...but nothing of a callback without an attempt (anyone can craft one).
	r = b.do(http.MethodGet, e.app.URL+"/callback?error=server_error&error_description=call+evil.example", http.Header{"Accept": {"application/json"}})
	require.Equal(t, http.StatusBadRequest, r.StatusCode)
	body = nil
	require.NoError(t, json.Unmarshal([]byte(r.body), &body))
	assert.Equal(t, "invalid_state", body["error"])
	assert.NotContains(t, r.body, "server_error")
	assert.NotContains(t, r.body, "evil.example")
}

func TestCodeReplayAndWrongVerifier(t *testing.T) {
	e := newEnv(t)
	t.Run("code replay", func(t *testing.T) {
		b := e.browser()
		cb := e.authorize(b, e.startSignIn(b, ""))
		require.Equal(t, http.StatusSeeOther, b.get(cb).StatusCode)
		code := mustQuery(t, cb).Get("code")
		// A fresh attempt of the same browser, fed the already redeemed code.
		cb2 := e.authorize(b, e.startSignIn(b, ""))
		cb2 = callbackWith(t, cb2, func(q url.Values) { q.Set("code", code) })
		r := b.get(cb2)
		requireRefused(t, e, r, http.StatusBadRequest, titleRefused, "invalid_grant")
		assert.NotContains(t, r.body, code)
	})
	t.Run("wrong verifier", func(t *testing.T) {
		// The code of attempt 1 delivered with the state of attempt 2: the
		// client sends attempt 2's verifier, which does not match.
		b := e.browser()
		a1, a2 := e.startSignIn(b, ""), e.startSignIn(b, "")
		cb1, cb2 := e.authorize(b, a1), e.authorize(b, a2)
		mixed := callbackWith(t, cb2, func(q url.Values) { q.Set("code", mustQuery(t, cb1).Get("code")) })
		r := b.get(mixed)
		requireRefused(t, e, r, http.StatusBadRequest, titleRefused, "invalid_grant")
		verifierLeak := false
		for _, req := range e.rec.requests() {
			if v := req.Form.Get("code_verifier"); v != "" && strings.Contains(r.body, v) {
				verifierLeak = true
			}
		}
		assert.False(t, verifierLeak)
	})
}

func TestIDTokenAttacks(t *testing.T) {
	e := newEnv(t)
	cases := []struct {
		name   string
		tamper erpnetctl.Tamper
	}{
		{"wrong iss", erpnetctl.Tamper{Claims: map[string]any{"iss": "http://127.0.0.1:1/id"}}},
		{"wrong aud", erpnetctl.Tamper{Claims: map[string]any{"aud": "com.example/other"}}},
		{"wrong nonce", erpnetctl.Tamper{Claims: map[string]any{"nonce": "not-the-nonce"}}},
		{"no nonce", erpnetctl.Tamper{Claims: map[string]any{"nonce": nil}}},
		{"expired", erpnetctl.Tamper{Claims: map[string]any{"exp": time.Now().Add(-time.Hour).Unix()}}},
		{"alg none", erpnetctl.Tamper{Alg: "none"}},
		{"HS256 keyed with the client secret", erpnetctl.Tamper{Alg: "HS256"}},
		{"bad signature", erpnetctl.Tamper{BadSignature: true}},
		{"unknown key", erpnetctl.Tamper{UnknownKey: true}},
		{"wrong at_hash", erpnetctl.Tamper{Claims: map[string]any{"at_hash": "AAAAAAAAAAAAAAAAAAAAAA"}}},
		{"no sub", erpnetctl.Tamper{Claims: map[string]any{"sub": nil}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := e.browser()
			cb := e.authorize(b, e.startSignIn(b, ""))
			erpnetctl.Of(e.idp).TamperNextIDToken(tc.tamper)
			r := b.get(cb)
			requireRefused(t, e, r, http.StatusBadGateway, titleVerify, "ID token rejected")
			_, err := e.sessionErr(b)
			assert.ErrorIs(t, err, ErrNoSession)
		})
	}
	assert.Equal(t, 0, e.sessionsInStore())
	// The JWKS was fetched for the first verification, and once more for
	// the first signature no cached key verifies (the bad signature); the
	// unknown kid came within the refetch cooldown, so it fetched nothing.
	// Never for the unsigned or HMAC tokens, whose alg is refused before
	// any key is looked at.
	assert.Equal(t, 2, e.idp.Requests("jwks"))
	e.mustSignIn(e.browser(), "")
}

func TestKeyRotationRefetchesJWKSOnce(t *testing.T) {
	e := newEnv(t)
	e.mustSignIn(e.browser(), "")
	e.mustSignIn(e.browser(), "")
	require.Equal(t, 1, e.idp.Requests("jwks"), "the JWKS is cached")
	e.idp.RotateKeys()
	e.mustSignIn(e.browser(), "")
	assert.Equal(t, 2, e.idp.Requests("jwks"), "an unknown kid refetches the JWKS exactly once")
	e.mustSignIn(e.browser(), "")
	assert.Equal(t, 2, e.idp.Requests("jwks"))
}

func TestAuthorizationResponseIss(t *testing.T) {
	t.Run("advertised", func(t *testing.T) {
		e := newEnv(t) // the server sends iss by default
		e.mustSignIn(e.browser(), "")
		b := e.browser()
		cb := e.authorize(b, e.startSignIn(b, ""))
		require.Equal(t, e.idp.Authority(), mustQuery(t, cb).Get("iss"))
		requireRefused(t, e, b.get(callbackWith(t, cb, func(q url.Values) { q.Del("iss") })), http.StatusBadRequest, titleVerify, "iss")
		b = e.browser()
		cb = e.authorize(b, e.startSignIn(b, ""))
		requireRefused(t, e, b.get(callbackWith(t, cb, func(q url.Values) { q.Set("iss", "https://evil.example/id") })), http.StatusBadRequest, titleVerify, "iss")
	})
	t.Run("not advertised", func(t *testing.T) {
		e := newEnv(t, withIDP(func(c *erpnettest.Config) { c.OmitIss = true }))
		b := e.browser()
		cb := e.authorize(b, e.startSignIn(b, ""))
		requireRefused(t, e, b.get(callbackWith(t, cb, func(q url.Values) { q.Set("iss", "https://evil.example/id") })), http.StatusBadRequest, titleVerify, "iss")
	})
}

func TestPublicClientSendsNoSecret(t *testing.T) {
	e := newEnv(t, withPublicClient())
	b := e.browser()
	e.mustSignIn(b, "/me")
	s := e.session(b)
	e.advance(time.Hour + time.Minute)
	_, err := e.c.TokenSource(context.Background(), s).Token()
	require.NoError(t, err)
	reqs := e.rec.requests()
	require.Len(t, reqs, 2)
	for _, r := range reqs {
		assert.Empty(t, r.Header.Get("Authorization"))
		assert.False(t, r.Form.Has("client_secret"))
		assert.Equal(t, spaID, r.Form.Get("client_id"))
	}
	assert.Len(t, reqs[0].Form.Get("code_verifier"), 43, "PKCE")
	assert.Equal(t, "refresh_token", reqs[1].Form.Get("grant_type"))
}

func TestConfidentialClientAuthStyles(t *testing.T) {
	for _, style := range []oauth2.AuthStyle{oauth2.AuthStyleInHeader, oauth2.AuthStyleInParams} {
		e := newEnv(t, withClient(func(c *Config) { c.AuthStyle = style }))
		e.mustSignIn(e.browser(), "")
		reqs := e.rec.requests()
		require.Len(t, reqs, 1)
		r := reqs[0]
		assert.NotEmpty(t, r.Form.Get("code_verifier"), "PKCE for confidential clients too")
		if style == oauth2.AuthStyleInHeader {
			assert.True(t, strings.HasPrefix(r.Header.Get("Authorization"), "Basic "))
			assert.False(t, r.Form.Has("client_secret"))
		} else {
			assert.Empty(t, r.Header.Get("Authorization"))
			assert.Equal(t, webSecret, r.Form.Get("client_secret"))
		}
	}
}

func TestChallengeIsS256(t *testing.T) {
	a := (&Client{clock: clock.Real}).newAttempt("/")
	sum := sha256.Sum256([]byte(a.Verifier))
	assert.Equal(t, base64.RawURLEncoding.EncodeToString(sum[:]), a.challenge())
	assert.Len(t, a.Verifier, 43)
	assert.NotEqual(t, a.State, a.Nonce)
}
