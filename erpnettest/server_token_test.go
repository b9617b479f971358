package erpnettest

import (
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/erpnetgo/auth/internal/erpnetctl"
)

func ccForm(scope string) url.Values {
	f := url.Values{"grant_type": {"client_credentials"}}
	if scope != "" {
		f.Set("scope", scope)
	}
	return f
}

func TestClientAuthBasicWithEncodedSpecialCharacters(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	// RFC 6749 §2.3.1: both parts form-urlencoded before base64.
	want := "Basic " + base64.StdEncoding.EncodeToString([]byte("com.example%2Fworker:w0rker%3As3cret%25%2B%2F%3D"))
	require.Equal(t, want, basicAuth(Demo.WorkerID, Demo.WorkerSecret))
	resp, body := e.postForm(pathToken, ccForm(""), want)
	require.Equal(t, http.StatusOK, resp.StatusCode, "body: %v", body)
	assert.NotEmpty(t, body["access_token"])

	// Raw (unencoded) credentials with '%' and '+' do not decode: invalid_client, secret never echoed.
	raw := "Basic " + base64.StdEncoding.EncodeToString([]byte(Demo.WorkerID+":"+Demo.WorkerSecret))
	resp, body = e.postForm(pathToken, ccForm(""), raw)
	requireOAuthError(t, resp, body, http.StatusUnauthorized, "invalid_client")
	assert.NotContains(t, body["error_description"], "s3cret")
	assert.Contains(t, resp.Header.Get("WWW-Authenticate"), "Basic")
}

func TestClientAuthFormBody(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	f := ccForm("read")
	f.Set("client_id", Demo.WorkerID)
	f.Set("client_secret", Demo.WorkerSecret)
	resp, body := e.postForm(pathToken, f, "")
	require.Equal(t, http.StatusOK, resp.StatusCode, "body: %v", body)
	assert.Equal(t, "read", body["scope"])
}

func TestClientAuthBothMethodsAtOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	f := ccForm("")
	f.Set("client_id", Demo.WorkerID)
	f.Set("client_secret", Demo.WorkerSecret)
	resp, body := e.postForm(pathToken, f, basicAuth(Demo.WorkerID, Demo.WorkerSecret))
	requireOAuthError(t, resp, body, http.StatusBadRequest, "invalid_request")

	// client_id in the body that disagrees with Basic is refused too.
	f = ccForm("")
	f.Set("client_id", Demo.WebAppID)
	resp, body = e.postForm(pathToken, f, basicAuth(Demo.WorkerID, Demo.WorkerSecret))
	requireOAuthError(t, resp, body, http.StatusBadRequest, "invalid_request")
	// ...while a matching one is fine.
	f.Set("client_id", Demo.WorkerID)
	resp, _ = e.postForm(pathToken, f, basicAuth(Demo.WorkerID, Demo.WorkerSecret))
	assert.Equal(t, http.StatusOK, resp.StatusCode)
}

func TestClientAuthPublicClientWithSecret(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	f := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"whatever"},
		"client_id": {Demo.CLIID}, "client_secret": {"oops"}}
	resp, body := e.postForm(pathToken, f, "")
	requireOAuthError(t, resp, body, http.StatusUnauthorized, "invalid_client")
	assert.NotContains(t, body["error_description"], "oops")
	resp, body = e.postForm(pathToken, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"x"}}, basicAuth(Demo.CLIID, "oops"))
	requireOAuthError(t, resp, body, http.StatusUnauthorized, "invalid_client")
	// Public client with client_id only: authenticated, the grant itself fails.
	resp, body = e.postForm(pathToken, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"x"}, "client_id": {Demo.CLIID}}, "")
	requireOAuthError(t, resp, body, http.StatusBadRequest, "invalid_grant")
}

func TestClientAuthDisabledApp(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	resp, body := e.token(ccForm(""), testDisabledID, testDisabledSecret)
	requireOAuthError(t, resp, body, http.StatusBadRequest, "unauthorized_client")
	// Its authorize request shows an error page and never redirects.
	a := e.newAuthz(testDisabledID, "https://disabled.example/cb", "openid")
	resp2, page := e.authorizeWith(e.c, a.query())
	assert.Equal(t, http.StatusBadRequest, resp2.StatusCode)
	assert.Empty(t, resp2.Header.Get("Location"))
	assert.Contains(t, string(page), "invalid_client")
}

func TestClientAuthUnknownClientAndWrongSecret(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	resp, body := e.token(ccForm(""), "com.example/nobody", "x")
	requireOAuthError(t, resp, body, http.StatusUnauthorized, "invalid_client")
	resp, body = e.token(ccForm(""), Demo.WorkerID, "wrong-secret-value")
	requireOAuthError(t, resp, body, http.StatusUnauthorized, "invalid_client")
	assert.NotContains(t, body["error_description"], "wrong-secret-value")
	// Confidential client without any secret.
	resp, body = e.postForm(pathToken, url.Values{"grant_type": {"client_credentials"}, "client_id": {Demo.WorkerID}}, "")
	requireOAuthError(t, resp, body, http.StatusUnauthorized, "invalid_client")
	// No client at all.
	resp, body = e.postForm(pathToken, ccForm(""), "")
	requireOAuthError(t, resp, body, http.StatusUnauthorized, "invalid_client")
}

func TestClientAuthMalformedBasicHeaders(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, h := range []string{
		"Basic", "Basic ", "Basic !!!notbase64", "Basic " + base64.StdEncoding.EncodeToString([]byte("no-colon")),
		"Basic " + base64.StdEncoding.EncodeToString([]byte(":secret")),
		"Basic " + base64.StdEncoding.EncodeToString([]byte("%zz:%zz")),
		"Bearer abc", "Digest x=y", strings.Repeat("A", 5000),
	} {
		resp, body := e.postForm(pathToken, ccForm(""), h)
		requireOAuthError(t, resp, body, http.StatusUnauthorized, "invalid_client")
	}
}

func TestClientCredentialsTokenClaims(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	resp, body := e.token(ccForm(""), Demo.WorkerID, Demo.WorkerSecret)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "no-store", resp.Header.Get("Cache-Control"))
	assert.Equal(t, "Bearer", body["token_type"])
	assert.EqualValues(t, 3600, body["expires_in"])
	assert.Equal(t, "read update", body["scope"], "nothing requested: every allowed API scope")
	assert.NotContains(t, body, "refresh_token")
	assert.NotContains(t, body, "id_token")

	typ, c := e.verify(body["access_token"].(string))
	assert.Equal(t, "at+jwt", typ)
	assert.Equal(t, e.s.Authority(), c["iss"])
	assert.Equal(t, "worker-system", c["sub"])
	assert.Equal(t, "worker-system", c["name"])
	assert.Equal(t, "system", c["erp_user_type"])
	assert.Equal(t, Demo.WorkerID, c["client_id"])
	assert.Contains(t, c["aud"], "DomainAPI")
	assert.Equal(t, []any{"read", "update"}, c["scope"])
	for _, k := range []string{"iat", "nbf", "exp", "jti"} {
		assert.Contains(t, c, k)
	}
	assert.NotContains(t, c, "sid")
	assert.NotContains(t, c, "auth_time")
	assert.Equal(t, 1, e.ctl().Grants("client_credentials"))
}

func TestClientCredentialsRefusals(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	resp, body := e.token(ccForm(""), testNoSystemID, testNoSystemSecret)
	requireOAuthError(t, resp, body, http.StatusBadRequest, "unauthorized_client")
	resp, body = e.token(ccForm(""), Demo.CLIID, "")
	requireOAuthError(t, resp, body, http.StatusBadRequest, "unauthorized_client")
	resp, body = e.token(ccForm("read openid"), Demo.WorkerID, Demo.WorkerSecret)
	requireOAuthError(t, resp, body, http.StatusBadRequest, "invalid_scope")
	resp, body = e.token(ccForm("offline_access"), Demo.WorkerID, Demo.WorkerSecret)
	requireOAuthError(t, resp, body, http.StatusBadRequest, "invalid_scope")
}

func TestScopeGrantIsIntersection(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	cases := []struct {
		id, secret, scope, want, err string
	}{
		{Demo.WorkerID, Demo.WorkerSecret, "read", "read", ""},
		{Demo.WorkerID, Demo.WorkerSecret, "update read", "read update", ""},
		{Demo.WorkerID, Demo.WorkerSecret, "read DomainApi", "read", ""}, // DomainApi not allowed for the worker
		{Demo.WorkerID, Demo.WorkerSecret, "DomainApi", "", "invalid_scope"},
		{Demo.WorkerID, Demo.WorkerSecret, "read sec", "", "invalid_scope"}, // unknown scope
		{testReadOnlyID, testReadOnlySecret, "read update", "read", ""},
		{Demo.WebAppID, Demo.WebAppSecret, "", "read update DomainApi", ""},
	}
	for _, tc := range cases {
		resp, body := e.token(ccForm(tc.scope), tc.id, tc.secret)
		if tc.err != "" {
			requireOAuthError(t, resp, body, http.StatusBadRequest, tc.err)
			continue
		}
		require.Equal(t, http.StatusOK, resp.StatusCode, "%+v: %v", tc, body)
		assert.Equal(t, tc.want, body["scope"], "%+v", tc)
	}
}

func TestTokenEndpointErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	auth := basicAuth(Demo.WorkerID, Demo.WorkerSecret)

	resp, body := e.postForm(pathToken, url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {"alice-password"}}, auth)
	requireOAuthError(t, resp, body, http.StatusBadRequest, "unsupported_grant_type")
	resp, body = e.postForm(pathToken, url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:device_code"}}, auth)
	requireOAuthError(t, resp, body, http.StatusBadRequest, "unsupported_grant_type")
	resp, body = e.postForm(pathToken, url.Values{}, auth)
	requireOAuthError(t, resp, body, http.StatusBadRequest, "invalid_request")
	resp, body = e.postForm(pathToken, url.Values{"grant_type": {"client_credentials", "client_credentials"}}, auth)
	requireOAuthError(t, resp, body, http.StatusBadRequest, "invalid_request")
	resp, body = e.postForm(pathToken, url.Values{"grant_type": {"authorization_code"}}, auth)
	requireOAuthError(t, resp, body, http.StatusBadRequest, "invalid_request")

	// GET and a JSON body are refused.
	req, _ := http.NewRequest(http.MethodGet, e.s.URL()+pathToken+"?grant_type=client_credentials", nil)
	req.Header.Set("Authorization", auth)
	r, raw := e.do(req)
	assert.Equal(t, http.StatusMethodNotAllowed, r.StatusCode)
	assert.Contains(t, string(raw), `"error":"invalid_request"`)
	req, _ = http.NewRequest(http.MethodPost, e.s.URL()+pathToken, strings.NewReader(`{"grant_type":"client_credentials"}`))
	req.Header.Set("Authorization", auth)
	req.Header.Set("Content-Type", "application/json")
	r, raw = e.do(req)
	assert.Equal(t, http.StatusBadRequest, r.StatusCode)
	assert.Contains(t, string(raw), `"error":"invalid_request"`)
	assert.Equal(t, "no-store", r.Header.Get("Cache-Control"))

	// Grant counting includes failures.
	assert.Equal(t, 1, e.ctl().Grants("password"))
	assert.Equal(t, 1, e.ctl().Grants("client_credentials"))
	assert.Equal(t, 1, e.ctl().Grants("authorization_code"))
	assert.Equal(t, 3, e.ctl().Grants(""))
	assert.Equal(t, 7, e.s.Requests("token"))
	e.ctl().ResetCounts()
	assert.Equal(t, 0, e.s.Requests("token"))
	assert.Equal(t, 0, e.ctl().Grants("password"))
}

func TestOmitTokenType(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.ctl().Set(erpnetctl.Knobs{OmitTokenType: true})
	resp, body := e.token(ccForm(""), Demo.WorkerID, Demo.WorkerSecret)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.NotContains(t, body, "token_type")
	assert.NotEmpty(t, body["access_token"])
}
