package oidctest_test

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/erpnetgo/auth/internal/oidctest"
	"github.com/erpnetgo/auth/internal/testutil"
)

func TestMain(m *testing.M) { testutil.VerifyNoLeaks(m) }

const (
	// A client_id with '/' and a secret with every character that needs
	// escaping in HTTP Basic credentials.
	workerID     = "com.example/worker"
	workerSecret = "s3:cr%et+/=x"
	posterID     = "com.example/poster"
	posterSecret = "p:o%s+t/e=r=="

	webID     = "com.example/web"
	webSecret = "w:e%b+/="
	spaID     = "com.example/spa"

	callback  = "http://127.0.0.1:9/callback"
	loggedOut = "http://127.0.0.1:9/logged-out"
	user      = "alice"
)

var testClients = []oidctest.Client{
	{ID: workerID, Secret: workerSecret, AuthMethod: "client_secret_basic", GrantTypes: []string{"client_credentials"}, Scope: "read update"},
	{ID: posterID, Secret: posterSecret, AuthMethod: "client_secret_post", GrantTypes: []string{"client_credentials"}, Scope: "read"},
	{
		ID: webID, Secret: webSecret, AuthMethod: "client_secret_basic",
		GrantTypes:             []string{"authorization_code", "refresh_token"},
		RedirectURIs:           []string{callback},
		PostLogoutRedirectURIs: []string{loggedOut},
		Scope:                  "openid offline_access profile email read update",
	},
	{
		ID: spaID, AuthMethod: "none",
		GrantTypes:   []string{"authorization_code", "refresh_token"},
		RedirectURIs: []string{callback},
	},
}

// env is one provider plus a test HTTP client whose connections are closed
// at cleanup (for goleak).
type env struct {
	p    *oidctest.Provider
	ctx  context.Context // carries the HTTP client for oauth2 and go-oidc
	hc   *http.Client
	op   *oidc.Provider
	meta struct {
		EndSession    string   `json:"end_session_endpoint"`
		Revocation    string   `json:"revocation_endpoint"`
		Introspection string   `json:"introspection_endpoint"`
		JWKS          string   `json:"jwks_uri"`
		PKCE          []string `json:"code_challenge_methods_supported"`
	}
}

func newEnv(t *testing.T, cfg oidctest.Config) *env {
	t.Helper()
	e := &env{p: oidctest.Start(t, cfg)}
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	e.hc = &http.Client{Transport: tr, Timeout: 10 * time.Second}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	e.ctx = oidc.ClientContext(ctx, e.hc)

	op, err := oidc.NewProvider(e.ctx, e.p.Issuer()) // also checks the discovery issuer
	require.NoError(t, err)
	require.NoError(t, op.Claims(&e.meta))
	e.op = op
	return e
}

func TestProvider(t *testing.T) {
	e := newEnv(t, oidctest.Config{Clients: testClients})

	t.Run("Discovery", func(t *testing.T) {
		assert.True(t, strings.HasPrefix(e.p.Issuer(), "http://127.0.0.1:"), e.p.Issuer())
		assert.Equal(t, e.p.Issuer()+"/token", e.op.Endpoint().TokenURL)
		assert.Equal(t, []string{"S256"}, e.meta.PKCE)
		assert.NotEmpty(t, e.meta.EndSession)
		assert.NotEmpty(t, e.meta.Revocation)
		assert.NotEmpty(t, e.meta.Introspection)
		assert.Equal(t, "urn:erpnet:domainapi", e.p.Resource())
	})

	t.Run("ClientCredentialsBasic", func(t *testing.T) {
		tok := e.clientCredentials(t, workerID, workerSecret, oauth2.AuthStyleInHeader, "read", "update")
		claims := e.verifyAccessToken(t, tok.AccessToken)
		assert.Equal(t, workerID, claims.Subject)
		assert.Equal(t, workerID, claims.ClientID)
		assert.Equal(t, "read update", claims.Scope)
	})

	t.Run("ClientCredentialsPost", func(t *testing.T) {
		tok := e.clientCredentials(t, posterID, posterSecret, oauth2.AuthStyleInParams, "read")
		claims := e.verifyAccessToken(t, tok.AccessToken)
		assert.Equal(t, posterID, claims.ClientID)
		assert.Equal(t, "read", claims.Scope)
	})

	t.Run("ClientCredentialsWrongSecret", func(t *testing.T) {
		cc := clientcredentials.Config{ClientID: workerID, ClientSecret: workerSecret + "x", TokenURL: e.op.Endpoint().TokenURL, AuthStyle: oauth2.AuthStyleInHeader}
		_, err := cc.Token(e.ctx)
		assertOAuthError(t, err, "invalid_client")
	})

	t.Run("ClientCredentialsScopeNotAllowed", func(t *testing.T) {
		cc := clientcredentials.Config{ClientID: posterID, ClientSecret: posterSecret, TokenURL: e.op.Endpoint().TokenURL, Scopes: []string{"update"}, AuthStyle: oauth2.AuthStyleInParams}
		_, err := cc.Token(e.ctx)
		assertOAuthError(t, err, "invalid_scope")
	})

	t.Run("AuthorizationCodeConfidentialWithRotation", func(t *testing.T) {
		conf := e.oauth2Config(webID, webSecret, oauth2.AuthStyleInHeader, "openid", "offline_access", "profile", "email", "read", "update")
		tok, idToken := e.login(t, conf, user, oauth2.SetAuthURLParam("prompt", "consent"))
		var idClaims struct {
			Email string `json:"email"`
			Name  string `json:"name"`
		}
		require.NoError(t, idToken.Claims(&idClaims))
		assert.Equal(t, user+"@example.test", idClaims.Email)
		assert.Equal(t, user, idClaims.Name)

		at := e.verifyAccessToken(t, tok.AccessToken)
		assert.Equal(t, user, at.Subject)
		assert.Equal(t, webID, at.ClientID)
		assert.Equal(t, "read update", at.Scope)
		require.NotEmpty(t, tok.RefreshToken)

		refreshed, err := conf.TokenSource(e.ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
		require.NoError(t, err)
		require.NotEmpty(t, refreshed.RefreshToken)
		assert.NotEqual(t, tok.RefreshToken, refreshed.RefreshToken, "refresh token must rotate")
		at = e.verifyAccessToken(t, refreshed.AccessToken)
		assert.Equal(t, user, at.Subject)
		assert.Equal(t, "read update", at.Scope)

		_, err = conf.TokenSource(e.ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
		assertOAuthError(t, err, "invalid_grant")
	})

	t.Run("AuthorizationCodePublic", func(t *testing.T) {
		conf := e.oauth2Config(spaID, "", oauth2.AuthStyleInParams, "openid", "offline_access", "read")
		tok, _ := e.login(t, conf, user, oauth2.SetAuthURLParam("prompt", "consent"))
		at := e.verifyAccessToken(t, tok.AccessToken)
		assert.Equal(t, spaID, at.ClientID)
		assert.Equal(t, "read", at.Scope)
		require.NotEmpty(t, tok.RefreshToken)

		refreshed, err := conf.TokenSource(e.ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
		require.NoError(t, err)
		assert.NotEqual(t, tok.RefreshToken, refreshed.RefreshToken)
	})

	t.Run("NoRefreshTokenWithoutPromptConsent", func(t *testing.T) {
		// offline_access is dropped unless prompt includes consent.
		conf := e.oauth2Config(webID, webSecret, oauth2.AuthStyleInHeader, "openid", "offline_access", "read")
		tok, _ := e.login(t, conf, user)
		assert.Empty(t, tok.RefreshToken)
		assert.Equal(t, "read", tok.Extra("scope"))
	})

	t.Run("PKCERequired", func(t *testing.T) {
		conf := e.oauth2Config(webID, webSecret, oauth2.AuthStyleInHeader, "openid")
		u, err := e.p.Login(e.ctx, conf.AuthCodeURL("st"), user)
		var re *oidctest.RedirectError
		require.ErrorAs(t, err, &re)
		assert.Equal(t, "invalid_request", re.Code)
		assert.Equal(t, "st", u.Query().Get("state"))
	})

	t.Run("RevocationAndIntrospection", func(t *testing.T) {
		conf := e.oauth2Config(webID, webSecret, oauth2.AuthStyleInHeader, "openid", "offline_access", "read")
		tok, _ := e.login(t, conf, user, oauth2.SetAuthURLParam("prompt", "consent"))
		require.NotEmpty(t, tok.RefreshToken)

		var intro struct {
			Active   bool   `json:"active"`
			ClientID string `json:"client_id"`
			Sub      string `json:"sub"`
		}
		e.postForm(t, e.meta.Introspection, webID, webSecret, url.Values{"token": {tok.RefreshToken}}, &intro)
		assert.True(t, intro.Active)
		assert.Equal(t, webID, intro.ClientID)
		assert.Equal(t, user, intro.Sub)

		e.postForm(t, e.meta.Revocation, webID, webSecret, url.Values{"token": {tok.RefreshToken}, "token_type_hint": {"refresh_token"}}, nil)

		e.postForm(t, e.meta.Introspection, webID, webSecret, url.Values{"token": {tok.RefreshToken}}, &intro)
		assert.False(t, intro.Active)
		_, err := conf.TokenSource(e.ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
		assertOAuthError(t, err, "invalid_grant")
	})

	t.Run("EndSession", func(t *testing.T) {
		conf := e.oauth2Config(webID, webSecret, oauth2.AuthStyleInHeader, "openid")
		tok, _ := e.login(t, conf, user)
		rawID, _ := tok.Extra("id_token").(string)

		u, err := url.Parse(e.meta.EndSession)
		require.NoError(t, err)
		u.RawQuery = url.Values{"id_token_hint": {rawID}, "post_logout_redirect_uri": {loggedOut}, "state": {"bye"}}.Encode()
		landed, err := e.p.EndSession(e.ctx, u.String())
		require.NoError(t, err)
		require.NotNil(t, landed)
		assert.Equal(t, loggedOut+"?state=bye", landed.String())

		// The session is gone: a silent authorization request now fails.
		verifier := oauth2.GenerateVerifier()
		_, err = e.p.Login(e.ctx, conf.AuthCodeURL("s", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("prompt", "none")), user)
		var re *oidctest.RedirectError
		require.ErrorAs(t, err, &re)
		assert.Equal(t, "login_required", re.Code)

		// Without post_logout_redirect_uri the provider shows its own page.
		u.RawQuery = url.Values{"client_id": {webID}}.Encode()
		landed, err = e.p.EndSession(e.ctx, u.String())
		require.NoError(t, err)
		assert.Nil(t, landed)
	})

	t.Run("SilentSSO", func(t *testing.T) {
		conf := e.oauth2Config(webID, webSecret, oauth2.AuthStyleInHeader, "openid")
		e.login(t, conf, user)
		// Same browser, same user, consent already given: prompt=none works.
		tok, _ := e.login(t, conf, user, oauth2.SetAuthURLParam("prompt", "none"))
		assert.NotEmpty(t, tok.AccessToken)
		// Another user gets a fresh browser.
		verifier := oauth2.GenerateVerifier()
		_, err := e.p.Login(e.ctx, conf.AuthCodeURL("s", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("prompt", "none")), "bob")
		var re *oidctest.RedirectError
		require.ErrorAs(t, err, &re)
		assert.Equal(t, "login_required", re.Code)
	})

	t.Run("BasicCredentialsMustBeFormEncoded", func(t *testing.T) {
		// RFC 6749 section 2.3.1: oidc-provider form-decodes Basic
		// credentials, so a raw secret with '%' is rejected.
		req, err := http.NewRequestWithContext(e.ctx, http.MethodPost, e.op.Endpoint().TokenURL,
			strings.NewReader("grant_type=client_credentials"))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(workerID, workerSecret)
		resp, err := e.hc.Do(req)
		require.NoError(t, err)
		var body struct {
			Error string `json:"error"`
		}
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
		resp.Body.Close()
		assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
		assert.Equal(t, "invalid_request", body.Error)
	})
}

func TestAccessTokenTTLAndUsers(t *testing.T) {
	e := newEnv(t, oidctest.Config{
		Clients:        testClients,
		AccessTokenTTL: 2 * time.Second,
		Users:          map[string]string{"carol": "secret"},
	})
	tok := e.clientCredentials(t, workerID, workerSecret, oauth2.AuthStyleInHeader, "read")
	claims := e.verifyAccessToken(t, tok.AccessToken)
	assert.Equal(t, 2*time.Second, claims.Expiry.Time().Sub(claims.IssuedAt.Time()))

	conf := e.oauth2Config(webID, webSecret, oauth2.AuthStyleInHeader, "openid", "read")
	tok, _ = e.login(t, conf, "carol")
	assert.EqualValues(t, 2, tok.Extra("expires_in"))
	claims = e.verifyAccessToken(t, tok.AccessToken)
	assert.Equal(t, "carol", claims.Subject)
	assert.Equal(t, 2*time.Second, claims.Expiry.Time().Sub(claims.IssuedAt.Time()))

	_, err := e.p.Login(e.ctx, conf.AuthCodeURL("s"), "mallory")
	assert.ErrorContains(t, err, "not in Config.Users")
}

func TestStopsProvider(t *testing.T) {
	var issuer string
	t.Run("start", func(t *testing.T) {
		issuer = oidctest.Start(t, oidctest.Config{}).Issuer()
	})
	u, err := url.Parse(issuer)
	require.NoError(t, err)
	conn, err := net.DialTimeout("tcp", u.Host, time.Second)
	if err == nil {
		conn.Close()
		t.Fatalf("provider at %s still accepts connections after cleanup", issuer)
	}
}

func (e *env) oauth2Config(id, secret string, style oauth2.AuthStyle, scopes ...string) *oauth2.Config {
	ep := e.op.Endpoint()
	ep.AuthStyle = style
	return &oauth2.Config{ClientID: id, ClientSecret: secret, Endpoint: ep, RedirectURL: callback, Scopes: scopes}
}

// login runs authorization_code + PKCE for who through Provider.Login, exchanges the
// code and verifies the ID token (signature, iss, aud, nonce, sub).
func (e *env) login(t *testing.T, conf *oauth2.Config, who string, authOpts ...oauth2.AuthCodeOption) (*oauth2.Token, *oidc.IDToken) {
	t.Helper()
	verifier := oauth2.GenerateVerifier()
	state, nonce := oauth2.GenerateVerifier(), oauth2.GenerateVerifier()
	authURL := conf.AuthCodeURL(state, append(authOpts, oidc.Nonce(nonce), oauth2.S256ChallengeOption(verifier))...)

	redirect, err := e.p.Login(e.ctx, authURL, who)
	require.NoError(t, err)
	assert.Equal(t, callback, redirect.Scheme+"://"+redirect.Host+redirect.Path)
	q := redirect.Query()
	require.Equal(t, state, q.Get("state"))
	assert.Equal(t, e.p.Issuer(), q.Get("iss"))

	tok, err := conf.Exchange(e.ctx, q.Get("code"), oauth2.VerifierOption(verifier))
	require.NoError(t, err)
	rawID, ok := tok.Extra("id_token").(string)
	require.True(t, ok, "no id_token")
	idToken, err := e.op.Verifier(&oidc.Config{ClientID: conf.ClientID}).Verify(e.ctx, rawID)
	require.NoError(t, err)
	assert.Equal(t, nonce, idToken.Nonce)
	assert.Equal(t, who, idToken.Subject)
	return tok, idToken
}

func (e *env) clientCredentials(t *testing.T, id, secret string, style oauth2.AuthStyle, scopes ...string) *oauth2.Token {
	t.Helper()
	cc := clientcredentials.Config{ClientID: id, ClientSecret: secret, TokenURL: e.op.Endpoint().TokenURL, Scopes: scopes, AuthStyle: style}
	tok, err := cc.Token(e.ctx)
	require.NoError(t, err)
	return tok
}

type accessClaims struct {
	jwt.Claims
	ClientID string `json:"client_id"`
	Scope    string `json:"scope"`
}

// verifyAccessToken checks a JWT access token against the provider's JWKS.
func (e *env) verifyAccessToken(t *testing.T, raw string) accessClaims {
	t.Helper()
	tok, err := jwt.ParseSigned(raw, []jose.SignatureAlgorithm{jose.RS256})
	require.NoError(t, err)
	require.Len(t, tok.Headers, 1)
	assert.Equal(t, "at+jwt", tok.Headers[0].ExtraHeaders[jose.HeaderType])

	var jwks jose.JSONWebKeySet
	e.get(t, e.meta.JWKS, &jwks)
	var claims accessClaims
	require.NoError(t, tok.Claims(jwks, &claims))
	require.NoError(t, claims.Validate(jwt.Expected{
		Issuer:      e.p.Issuer(),
		AnyAudience: jwt.Audience{e.p.Resource()},
		Time:        time.Now(),
	}))
	return claims
}

func (e *env) get(t *testing.T, u string, v any) {
	t.Helper()
	req, err := http.NewRequestWithContext(e.ctx, http.MethodGet, u, nil)
	require.NoError(t, err)
	resp, err := e.hc.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.NoError(t, json.NewDecoder(resp.Body).Decode(v))
}

// postForm posts to an endpoint with client_secret_basic authentication
// (form-encoded credentials, as RFC 6749 section 2.3.1 requires).
func (e *env) postForm(t *testing.T, endpoint, id, secret string, form url.Values, v any) {
	t.Helper()
	req, err := http.NewRequestWithContext(e.ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	resp, err := e.hc.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	if v != nil {
		require.NoError(t, json.NewDecoder(resp.Body).Decode(v))
	}
}

func assertOAuthError(t *testing.T, err error, code string) {
	t.Helper()
	var re *oauth2.RetrieveError
	if assert.ErrorAs(t, err, &re) {
		assert.Equal(t, code, re.ErrorCode)
	}
}

// TestERPNetStyle checks the ERP.net layout itself: auto-discovery at the
// root, the provider under /id with IdentityServer's routes, nothing at the
// root's discovery path, a login and an RP-initiated logout through the
// mounted pages, and the Domain API stand-in.
func TestERPNetStyle(t *testing.T) {
	e := newEnv(t, oidctest.Config{Clients: testClients, ERPNetStyle: true})
	root := e.p.Root()
	assert.Equal(t, root+"/id", e.p.Issuer())
	assert.Equal(t, root+"/api/domain/odata/", e.p.DomainAPI())

	var ad struct {
		WebSites []struct {
			Type                 string
			URL                  string `json:"Url"`
			AdditionalProperties map[string]string
		}
	}
	e.get(t, root+"/sys/auto-discovery", &ad)
	require.Len(t, ad.WebSites, 2)
	assert.Equal(t, "ID", ad.WebSites[0].Type)
	assert.Equal(t, root+"/id", ad.WebSites[0].URL)
	assert.Equal(t, "DomainAPI", ad.WebSites[1].Type)
	assert.Equal(t, root+"/api/domain/odata/", ad.WebSites[1].AdditionalProperties["ODataServiceRoot"])

	ep := e.op.Endpoint()
	assert.Equal(t, root+"/id/connect/authorize", ep.AuthURL)
	assert.Equal(t, root+"/id/connect/token", ep.TokenURL)
	assert.Equal(t, root+"/id/connect/endsession", e.meta.EndSession)
	assert.Equal(t, root+"/id/connect/revocation", e.meta.Revocation)
	assert.Equal(t, root+"/id/connect/introspect", e.meta.Introspection)
	assert.Equal(t, root+"/id/.well-known/openid-configuration/jwks", e.meta.JWKS)
	for _, u := range []string{root + "/.well-known/openid-configuration", root + "/connect/token"} {
		resp, err := e.hc.Get(u)
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusNotFound, resp.StatusCode, u)
	}

	// Sign-in, client credentials and logout through the mounted provider.
	tok, idToken := e.login(t, e.oauth2Config(webID, webSecret, oauth2.AuthStyleInHeader, "openid", "read"), user)
	assert.Equal(t, e.p.Issuer(), idToken.Issuer)
	e.verifyAccessToken(t, tok.AccessToken)
	e.verifyAccessToken(t, e.clientCredentials(t, workerID, workerSecret, oauth2.AuthStyleInHeader, "read").AccessToken)
	rawID, _ := tok.Extra("id_token").(string)
	back, err := e.p.EndSession(e.ctx, e.meta.EndSession+"?"+url.Values{
		"id_token_hint": {rawID}, "post_logout_redirect_uri": {loggedOut}, "state": {"s1"}}.Encode())
	require.NoError(t, err)
	require.NotNil(t, back)
	assert.Equal(t, loggedOut+"?state=s1", back.String())

	// The Domain API stand-in wants a Bearer token.
	for auth, want := range map[string]int{"": http.StatusUnauthorized, "Bearer " + tok.AccessToken: http.StatusOK} {
		req, err := http.NewRequestWithContext(e.ctx, http.MethodGet, e.p.DomainAPI()+"Crm_Sales_Customers", nil)
		require.NoError(t, err)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := e.hc.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, want, resp.StatusCode)
	}
}
