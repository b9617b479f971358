package erpnettest

import (
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/erpnetgo/auth/internal/erpnetctl"
)

func TestDiscoveryDocument(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *Config) { c.OmitIss = true })
	resp, body := e.get(pathDiscovery)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, resp.Header.Get("Content-Type"), "application/json")
	var doc map[string]any
	require.NoError(t, json.Unmarshal(body, &doc))
	base := e.s.URL()
	assert.Equal(t, base+"/id", doc["issuer"])
	assert.Equal(t, e.s.Authority(), doc["issuer"])
	assert.False(t, strings.HasSuffix(doc["issuer"].(string), "/"))
	assert.Equal(t, base+"/id/connect/authorize", doc["authorization_endpoint"])
	assert.Equal(t, base+"/id/connect/token", doc["token_endpoint"])
	assert.Equal(t, base+"/id/connect/userinfo", doc["userinfo_endpoint"])
	assert.Equal(t, base+"/id/connect/revocation", doc["revocation_endpoint"])
	assert.Equal(t, base+"/id/connect/introspect", doc["introspection_endpoint"])
	assert.Equal(t, base+"/id/connect/endsession", doc["end_session_endpoint"])
	assert.Equal(t, base+"/id/.well-known/openid-configuration/jwks", doc["jwks_uri"])
	assert.ElementsMatch(t, []any{"authorization_code", "client_credentials", "refresh_token"}, doc["grant_types_supported"])
	assert.ElementsMatch(t, []any{"code", "token", "id_token", "code id_token"}, doc["response_types_supported"])
	assert.Equal(t, []any{"S256"}, doc["code_challenge_methods_supported"])
	assert.Equal(t, []any{"RS256"}, doc["id_token_signing_alg_values_supported"])
	assert.Equal(t, []any{"client_secret_basic", "client_secret_post"}, doc["token_endpoint_auth_methods_supported"])
	assert.Subset(t, doc["scopes_supported"], []any{"openid", "profile", "read", "update", "offline_access"})
	_, hasIss := doc["authorization_response_iss_parameter_supported"]
	assert.False(t, hasIss)
	assert.Equal(t, 1, e.s.Requests("discovery"))
}

func TestDiscoveryOptions(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.ctl().Set(erpnetctl.Knobs{NoRevocation: true, AuthMethods: []string{"client_secret_post"}})
	_, body := e.get(pathDiscovery)
	var doc map[string]any
	require.NoError(t, json.Unmarshal(body, &doc))
	_, hasRev := doc["revocation_endpoint"]
	assert.False(t, hasRev, "revocation_endpoint must be omitted")
	assert.Equal(t, true, doc["authorization_response_iss_parameter_supported"])
	assert.Equal(t, []any{"client_secret_post"}, doc["token_endpoint_auth_methods_supported"])

	// The endpoint answers 404, and Basic still works although only _post is advertised.
	tok := e.cc(Demo.WorkerID, Demo.WorkerSecret, "")
	resp, _ := e.postForm(pathRevocation, map[string][]string{"token": {tok}}, basicAuth(Demo.WorkerID, Demo.WorkerSecret))
	assert.Equal(t, http.StatusNotFound, resp.StatusCode)
	assert.Equal(t, 0, e.s.Requests("revocation"))
}

func TestJWKS(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	set := e.jwks()
	require.Len(t, set.Keys, 1)
	k := set.Keys[0]
	assert.NotEmpty(t, k.KeyID)
	assert.Equal(t, "RS256", k.Algorithm)
	assert.Equal(t, "sig", k.Use)
	pub, ok := k.Key.(*rsa.PublicKey)
	require.True(t, ok)
	assert.Equal(t, 2048, pub.N.BitLen())
	assert.True(t, k.IsPublic())

	// An access token verifies with go-jose against the published key.
	tok := e.cc(Demo.WorkerID, Demo.WorkerSecret, "")
	typ, claims := e.verify(tok)
	assert.Equal(t, "at+jwt", typ)
	assert.Equal(t, e.s.Authority(), claims["iss"])
	assert.Equal(t, k.KeyID, decodeHeader(t, tok)["kid"])
}

func TestKeyRotationWithGrace(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *Config) { c.AccessTokenLifetime = 3 * time.Hour }) // keys retire after an hour
	oldTok := e.cc(Demo.WorkerID, Demo.WorkerSecret, "")
	oldKid := decodeHeader(t, oldTok)["kid"]

	e.s.RotateKeys()
	set := e.jwks()
	require.Len(t, set.Keys, 2, "old key must stay published during the grace period")
	newTok := e.cc(Demo.WorkerID, Demo.WorkerSecret, "")
	newKid := decodeHeader(t, newTok)["kid"]
	assert.NotEqual(t, oldKid, newKid)
	assert.Equal(t, newKid, set.Keys[0].KeyID, "current key first")

	// Both verify, locally and at the Domain API.
	e.verify(oldTok)
	e.verify(newTok)
	resp, _ := e.api("GET", customers, bearer(oldTok), "")
	assert.Equal(t, http.StatusOK, resp.StatusCode)

	// After the grace period the old key is gone and its tokens stop verifying.
	e.s.Advance(61 * time.Minute)
	set = e.jwks()
	require.Len(t, set.Keys, 1)
	assert.Equal(t, newKid, set.Keys[0].KeyID)
	_, _, err := e.tryVerify(oldTok)
	assert.Error(t, err)
	resp, _ = e.api("GET", customers, bearer(oldTok), "")
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	assert.Contains(t, resp.Header.Get("WWW-Authenticate"), `error="invalid_token"`)
	resp, _ = e.api("GET", customers, bearer(newTok), "")
	assert.Equal(t, http.StatusOK, resp.StatusCode)
}

func TestAutoDiscovery(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	resp, body := e.get("/sys/auto-discovery")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var doc struct {
		WebSites []struct {
			Type                 string
			URL                  string `json:"Url"`
			AdditionalProperties map[string]string
		}
	}
	require.NoError(t, json.Unmarshal(body, &doc))
	require.Len(t, doc.WebSites, 2)
	assert.Equal(t, "ID", doc.WebSites[0].Type)
	assert.Equal(t, e.s.URL()+"/id", doc.WebSites[0].URL)
	assert.Equal(t, "DomainAPI", doc.WebSites[1].Type)
	assert.Equal(t, e.s.URL()+"/api/domain", doc.WebSites[1].URL)
	assert.Equal(t, e.s.URL()+"/api/domain/odata/", doc.WebSites[1].AdditionalProperties["ODataServiceRoot"])
	assert.Equal(t, 1, e.s.Requests("autodiscovery"))
}

func TestStartOnAddrAndClose(t *testing.T) {
	t.Parallel()
	s1 := NewServer(t)
	// Start on the host:port of Addr: reuse a port we know is free by closing s1 first.
	addr := strings.TrimPrefix(s1.URL(), "http://")
	require.NoError(t, s1.Close())
	require.NoError(t, s1.Close(), "Close is idempotent")
	s2, err := Start(Config{Addr: addr})
	require.NoError(t, err)
	assert.Equal(t, "http://"+addr, s2.URL())
	assert.Equal(t, "http://"+addr+"/id", s2.Authority())
	c := &http.Client{Transport: &http.Transport{}}
	resp, err := c.Get(s2.URL() + pathDiscovery)
	require.NoError(t, err)
	resp.Body.Close()
	require.NoError(t, s2.Close())
	_, err = c.Get(s2.URL() + pathDiscovery)
	assert.Error(t, err, "the listener is closed")
	c.CloseIdleConnections()
}

func TestStartWithPortZeroAddr(t *testing.T) {
	t.Parallel()
	s := NewServer(t, Config{Addr: "127.0.0.1:0"})
	assert.NotEqual(t, "http://127.0.0.1:0", s.URL())
	assert.True(t, strings.HasPrefix(s.URL(), "http://127.0.0.1:"))
	c := &http.Client{Transport: &http.Transport{}}
	defer c.CloseIdleConnections()
	resp, err := c.Get(s.URL() + pathDiscovery)
	require.NoError(t, err)
	defer resp.Body.Close()
	var doc map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&doc))
	assert.Equal(t, s.Authority(), doc["issuer"])
}

func TestConfigValidation(t *testing.T) {
	t.Parallel()
	bad := []Config{
		{Apps: []App{{ID: ""}}},
		{Apps: []App{{ID: "x y"}}},
		{Apps: []App{{ID: "x/s", Scopes: []string{"sec"}}}},
		{Apps: []App{{ID: "x/r", RedirectURIs: []string{"/relative"}}}},
		{Apps: []App{{ID: "x/f", PostLogoutURIs: []string{"http://127.0.0.1/#frag"}}}},
		{Apps: []App{{ID: "x/l", AccessTokenLifetime: -1}}},
		{Users: []User{{Username: " alice"}}},
		{Addr: "127.0.0.1:99999"},
		{LicenseCount: -1},
		{IDTokenLifetime: -time.Second},
	}
	for i, cfg := range bad {
		_, err := Start(cfg)
		assert.Error(t, err, "case %d", i)
	}
	// The demo configuration is valid; defaults are filled in.
	s, err := newServer(Config{})
	require.NoError(t, err)
	assert.Equal(t, time.Hour, s.cfg.AccessTokenLifetime)
	assert.Equal(t, 5*time.Minute, s.cfg.IDTokenLifetime)
	assert.Equal(t, 30*24*time.Hour, s.refreshLifetime(s.apps[Demo.WebAppID]))
	assert.Equal(t, 24*time.Hour, s.refreshLifetime(s.apps[Demo.CLIID]))
}
