package erpnettest

import (
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func (e *env) refresh(rt, id, secret string) (*http.Response, map[string]any) {
	e.t.Helper()
	return e.token(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}, id, secret)
}

func TestRefreshRotationAndReuseRevokesFamily(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tokens := e.userTokens(Demo.Alice, "openid profile read offline_access")
	rt1 := tokens["refresh_token"].(string)
	_, idc := e.verify(tokens["id_token"].(string))

	resp, t2 := e.refresh(rt1, Demo.WebAppID, Demo.WebAppSecret)
	require.Equal(t, http.StatusOK, resp.StatusCode, "body: %v", t2)
	rt2 := t2["refresh_token"].(string)
	assert.NotEqual(t, rt1, rt2, "rotation: a new refresh token every time")
	assert.Equal(t, "openid profile read offline_access", t2["scope"])
	// A fresh ID token with the same sid and auth_time, and no nonce.
	_, idc2 := e.verify(t2["id_token"].(string))
	assert.Equal(t, idc["sid"], idc2["sid"])
	assert.Equal(t, idc["auth_time"], idc2["auth_time"])
	assert.NotContains(t, idc2, "nonce")
	at2 := t2["access_token"].(string)
	_, atc := e.verify(at2)
	assert.Equal(t, idc["sid"], atc["sid"])

	// rt2 works once more -> rt3.
	resp, t3 := e.refresh(rt2, Demo.WebAppID, Demo.WebAppSecret)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	rt3 := t3["refresh_token"].(string)

	// Replaying rt1 (rotated): invalid_grant AND the whole family dies, rt3 included.
	resp, body := e.refresh(rt1, Demo.WebAppID, Demo.WebAppSecret)
	requireOAuthError(t, resp, body, http.StatusBadRequest, "invalid_grant")
	resp, body = e.refresh(rt3, Demo.WebAppID, Demo.WebAppSecret)
	requireOAuthError(t, resp, body, http.StatusBadRequest, "invalid_grant")
	r, _ := e.api("GET", customers, bearer(at2), "")
	assert.Equal(t, http.StatusUnauthorized, r.StatusCode)

	var revoked, total int
	for _, rec := range e.ctl().Tokens() {
		if rec.Kind == "refresh_token" {
			total++
			if rec.Revoked {
				revoked++
			}
		}
	}
	assert.Equal(t, 3, total)
	assert.Equal(t, 3, revoked)
	assert.Equal(t, 4, e.ctl().Grants("refresh_token"))
}

func TestRefreshBoundToClient(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tokens := e.userTokens(Demo.Alice, "openid read offline_access")
	rt := tokens["refresh_token"].(string)
	resp, body := e.refresh(rt, Demo.WorkerID, Demo.WorkerSecret)
	requireOAuthError(t, resp, body, http.StatusBadRequest, "invalid_grant")
	resp, body = e.refresh(rt, Demo.CLIID, "")
	requireOAuthError(t, resp, body, http.StatusBadRequest, "invalid_grant")
	// The right client still can (the foreign attempts did not burn it).
	resp, _ = e.refresh(rt, Demo.WebAppID, Demo.WebAppSecret)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	// Garbage.
	resp, body = e.refresh("garbage", Demo.WebAppID, Demo.WebAppSecret)
	requireOAuthError(t, resp, body, http.StatusBadRequest, "invalid_grant")
}

func TestRefreshExpiry(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	// Public client: 24 hours.
	tokens := e.cliTokens(Demo.Bob, "openid read offline_access")
	e.s.Advance(23 * time.Hour)
	resp, t2 := e.refresh(tokens["refresh_token"].(string), Demo.CLIID, "")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	e.s.Advance(61 * time.Minute)
	resp, body := e.refresh(t2["refresh_token"].(string), Demo.CLIID, "")
	requireOAuthError(t, resp, body, http.StatusBadRequest, "invalid_grant")
	assert.Contains(t, body["error_description"], "expired")

	// Confidential client: 30 days.
	tokens = e.userTokens(Demo.Alice, "read offline_access")
	e.s.Advance(29 * 24 * time.Hour)
	resp, t2 = e.refresh(tokens["refresh_token"].(string), Demo.WebAppID, Demo.WebAppSecret)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	e.s.Advance(25 * time.Hour)
	resp, body = e.refresh(t2["refresh_token"].(string), Demo.WebAppID, Demo.WebAppSecret)
	requireOAuthError(t, resp, body, http.StatusBadRequest, "invalid_grant")

	// One knob for both.
	e2 := newEnv(t, func(c *Config) { c.RefreshTokenLifetime = time.Hour })
	tokens = e2.userTokens(Demo.Alice, "read offline_access")
	e2.s.Advance(time.Hour)
	resp, body = e2.refresh(tokens["refresh_token"].(string), Demo.WebAppID, Demo.WebAppSecret)
	requireOAuthError(t, resp, body, http.StatusBadRequest, "invalid_grant")
}

func TestRefreshScopeNarrowing(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tokens := e.userTokens(Demo.Alice, "openid read offline_access")
	rt := tokens["refresh_token"].(string)
	resp, body := e.token(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "scope": {"read update"}}, Demo.WebAppID, Demo.WebAppSecret)
	requireOAuthError(t, resp, body, http.StatusBadRequest, "invalid_scope")
	resp, body = e.token(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "scope": {"read"}}, Demo.WebAppID, Demo.WebAppSecret)
	require.Equal(t, http.StatusOK, resp.StatusCode, "body: %v", body)
	assert.Equal(t, "read", body["scope"])
	assert.NotContains(t, body, "id_token")
	// The new refresh token keeps the original grant.
	resp, body = e.refresh(body["refresh_token"].(string), Demo.WebAppID, Demo.WebAppSecret)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "openid read offline_access", body["scope"])
}
