package erpnettest

import (
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/erpnetgo/auth/internal/erpnetctl"
)

var refTokenRe = regexp.MustCompile(`^enrt_[0-9A-F]{64}$`)

func TestReferenceTokensMintUseRevokeExpire(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	pat := e.s.MintPAT(Demo.Alice)
	assert.Regexp(t, refTokenRe, pat)
	sat := e.s.MintSAT(Demo.WorkerID)
	assert.Regexp(t, refTokenRe, sat)
	assert.NotEqual(t, pat, sat)

	// Every header style works; names are case-insensitive.
	styles := []struct {
		hdr map[string]string
		via string
	}{
		{bearer(pat), "bearer"},
		{map[string]string{"X-Api-Key": pat}, "x-api-key"},
		{map[string]string{"X-API-KEY": pat}, "x-api-key"},
		{map[string]string{"x-api-key": pat}, "x-api-key"},
		{map[string]string{"Api-Key": pat}, "api-key"},
		{map[string]string{"API-KEY": pat}, "api-key"},
	}
	e.ctl().ResetAPICalls()
	for _, st := range styles {
		resp, body := e.api("GET", customers, st.hdr, "")
		require.Equal(t, http.StatusOK, resp.StatusCode, "%v: %v", st.hdr, body)
		assert.Equal(t, "pat:"+Demo.Alice, resp.Header.Get("X-Erpnet-Caller"))
		assert.Equal(t, "pat", body["caller"].(map[string]any)["kind"])
	}
	calls := e.ctl().APICalls()
	require.Len(t, calls, len(styles))
	for i, c := range calls {
		assert.Equal(t, styles[i].via, c.Via)
		assert.Equal(t, "pat", c.Kind)
		assert.Equal(t, Demo.Alice, c.Subject)
		assert.Equal(t, http.StatusOK, c.Status)
		assert.Equal(t, calls[0].Session, c.Session, "one session per reference token")
	}

	resp, body := e.api("GET", customers, map[string]string{"X-Api-Key": sat}, "")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "sat:"+"worker-system", resp.Header.Get("X-Erpnet-Caller"))
	assert.Equal(t, Demo.WorkerID, body["caller"].(map[string]any)["client_id"])

	// Revocation is immediate.
	e.s.RevokeToken(pat)
	resp, _ = e.api("GET", customers, bearer(pat), "")
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	assert.Contains(t, resp.Header.Get("WWW-Authenticate"), `error="invalid_token"`)
	e.s.RevokeToken("enrt_unknown") // no-op

	// Expiry, a year after.
	e.s.Advance(365*24*time.Hour + time.Second)
	resp, _ = e.api("GET", customers, map[string]string{"Api-Key": sat}, "")
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)

	// Unknown, well-formed token; lower-case hex.
	resp, _ = e.api("GET", customers, bearer("enrt_"+strings.Repeat("AB", 32)), "")
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	pat2 := e.s.MintPAT(Demo.Bob)
	resp, _ = e.api("GET", customers, bearer(strings.ToLower(pat2)), "")
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)

	// Only hashes are stored.
	for _, rec := range e.ctl().Tokens() {
		assert.NotContains(t, rec.JTI, "enrt_")
	}
}

func TestReferenceTokenRefusals(t *testing.T) {
	t.Parallel()
	s, err := Start(testConfig()) // its misuse panics
	require.NoError(t, err)
	defer s.Close()
	refused := func(mint func()) (msg string) {
		defer func() {
			if r := recover(); r != nil {
				msg = fmt.Sprint(r)
			}
		}()
		mint()
		return ""
	}
	// A SAT needs a System User of an enabled, known application.
	assert.Contains(t, refused(func() { s.MintSAT(testNoSystemID) }), "System User")
	assert.Contains(t, refused(func() { s.MintSAT(Demo.CLIID) }), "System User")
	assert.Contains(t, refused(func() { s.MintSAT(testDisabledID) }), "disabled")
	assert.Contains(t, refused(func() { s.MintSAT("com.example/none") }), "unknown")
	// SAT scopes are limited by the app.
	assert.Contains(t, refused(func() { s.MintSAT(testReadOnlyID, "update") }), `scope "update"`)
	assert.Empty(t, refused(func() { s.MintSAT(testReadOnlyID) }))
	// PAT: unknown user, bad scope.
	assert.Contains(t, refused(func() { s.MintPAT("mallory") }), `unknown user "mallory"`)
	assert.Contains(t, refused(func() { s.MintPAT(Demo.Alice, "openid") }), `scope "openid"`)
}

func TestReferenceTokenLifetimeAndScopes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	// Default lifetime: one year; a read-only PAT cannot write.
	ro := e.s.MintPAT(Demo.Bob, "read")
	recs := e.ctl().Tokens()
	last := recs[len(recs)-1]
	assert.Equal(t, "reference_token", last.Kind)
	assert.Equal(t, []string{"read"}, last.Scopes)
	assert.WithinDuration(t, e.s.now().AddDate(1, 0, 0), last.ExpiresAt, time.Minute)
	resp, _ := e.api("POST", customers, bearer(ro), `{"Name":"x"}`)
	assert.Equal(t, http.StatusForbidden, resp.StatusCode)
	assert.Contains(t, resp.Header.Get("WWW-Authenticate"), `error="insufficient_scope"`)
}

func TestDomainAPIBothHeadersIs400(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	pat := e.s.MintPAT(Demo.Alice)
	for _, h := range []map[string]string{
		{"Authorization": "Bearer " + pat, "X-Api-Key": pat},
		{"Authorization": "Bearer " + pat, "api-key": pat},
		{"X-Api-Key": pat, "Api-Key": pat},
	} {
		resp, body := e.api("GET", customers, h, "")
		assert.Equal(t, http.StatusBadRequest, resp.StatusCode, "%v", h)
		assert.Contains(t, body, "error")
	}
}

func TestDomainAPIAuthErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	good := e.cc(Demo.WorkerID, Demo.WorkerSecret, "")

	// Missing: 401 with a bare challenge.
	resp, body := e.api("GET", customers, nil, "")
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	assert.True(t, strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer"))
	assert.NotContains(t, resp.Header.Get("WWW-Authenticate"), "error=")
	assert.Contains(t, body, "error")
	resp, _ = e.api("GET", customers, map[string]string{"Authorization": basicAuth("a", "b")}, "")
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)

	parts := strings.Split(good, ".")
	flipped := flipSignature(good)
	idTok := e.userTokens(Demo.Alice, "openid read")["id_token"].(string)
	for name, tok := range map[string]string{
		"malformed":      "not-a-jwt",
		"bad signature":  flipped,
		"alg none":       b64url([]byte(`{"alg":"none","typ":"at+jwt"}`)) + "." + parts[1] + ".",
		"id token":       idTok,
		"ref malformed":  "enrt_123",
		"empty segments": "..",
	} {
		resp, _ := e.api("GET", customers, bearer(tok), "")
		assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, name)
		assert.Contains(t, resp.Header.Get("WWW-Authenticate"), `error="invalid_token"`, name)
	}
	// A JWT is not an API key.
	resp, _ = e.api("GET", customers, map[string]string{"X-Api-Key": good}, "")
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)

	// Expired.
	e.s.Advance(time.Hour)
	resp, _ = e.api("GET", customers, bearer(good), "")
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	assert.Contains(t, resp.Header.Get("WWW-Authenticate"), "expired")

	// Token from another server instance (other issuer) is refused.
	other := newEnv(t)
	foreign := other.cc(Demo.WorkerID, Demo.WorkerSecret, "")
	resp, _ = e.api("GET", customers, bearer(foreign), "")
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)

	// Scopes: read-only token cannot write; update-only cannot read.
	ro := e.cc(Demo.WorkerID, Demo.WorkerSecret, "read")
	resp, _ = e.api("POST", customers, bearer(ro), `{"Name":"New"}`)
	assert.Equal(t, http.StatusForbidden, resp.StatusCode)
	assert.Contains(t, resp.Header.Get("WWW-Authenticate"), `error="insufficient_scope"`)
	assert.Equal(t, "system:"+"worker-system", resp.Header.Get("X-Erpnet-Caller"))
	uo := e.cc(Demo.WorkerID, Demo.WorkerSecret, "update")
	resp, _ = e.api("GET", customers, bearer(uo), "")
	assert.Equal(t, http.StatusForbidden, resp.StatusCode)
	assert.Contains(t, resp.Header.Get("WWW-Authenticate"), `scope="read"`)
	resp, _ = e.api("POST", customers, bearer(uo), `{"Name":"New"}`)
	assert.Equal(t, http.StatusCreated, resp.StatusCode)
}

func TestDomainAPIEntities(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tok := e.userTokens(Demo.Alice, "openid read update")["access_token"].(string)
	resp, body := e.api("GET", customers, bearer(tok), "")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "user:"+Demo.Alice, resp.Header.Get("X-Erpnet-Caller"))
	assert.Equal(t, e.s.URL()+"/api/domain/odata/$metadata#Crm_Sales_Customers", body["@odata.context"])
	assert.Len(t, body["value"], 3)
	assert.Equal(t, map[string]any{"kind": "user", "subject": Demo.Alice, "client_id": Demo.WebAppID}, body["caller"])

	resp, body = e.api("GET", customers+"?$top=1&$skip=1", bearer(tok), "")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Len(t, body["value"], 1)
	assert.Equal(t, "C-0002", body["value"].([]any)[0].(map[string]any)["Number"])

	resp, body = e.api("GET", "/api/domain/odata/General_Contacts", bearer(tok), "")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Len(t, body["value"], 2)

	resp, body = e.api("GET", "/api/domain/odata/Nope_Entities", bearer(tok), "")
	assert.Equal(t, http.StatusNotFound, resp.StatusCode)
	assert.NotEmpty(t, body["error"].(map[string]any)["code"])
	assert.NotEmpty(t, body["error"].(map[string]any)["message"])

	resp, body = e.api("GET", "/api/domain/odata/", bearer(tok), "")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Len(t, body["value"], 2)

	// POST creates; business rule violation is HTTP 500 nested under "error".
	resp, body = e.api("POST", customers, bearer(tok), `{"Name":"Wayne Enterprises","Number":"C-0004"}`)
	require.Equal(t, http.StatusCreated, resp.StatusCode, "%v", body)
	id := body["Id"].(string)
	assert.NotEmpty(t, resp.Header.Get("Location"))
	resp, body = e.api("GET", customers+"("+id+")", bearer(tok), "")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "Wayne Enterprises", body["Name"])
	resp, body = e.api("POST", customers, bearer(tok), `{"Number":"C-0005"}`)
	assert.Equal(t, http.StatusInternalServerError, resp.StatusCode)
	assert.Equal(t, "BusinessRuleViolation", body["error"].(map[string]any)["code"])
	resp, _ = e.api("POST", customers, bearer(tok), `{not json`)
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
	resp, _ = e.api("PATCH", customers+"("+id+")", bearer(tok), `{"Name":"Wayne Ent."}`)
	assert.Equal(t, http.StatusNoContent, resp.StatusCode)
	resp, _ = e.api("DELETE", customers+"("+id+")", bearer(tok), "")
	assert.Equal(t, http.StatusNoContent, resp.StatusCode)
	resp, _ = e.api("GET", customers+"("+id+")", bearer(tok), "")
	assert.Equal(t, http.StatusNotFound, resp.StatusCode)
	resp, _ = e.api("GET", customers+"?$top=x", bearer(tok), "")
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
	assert.Equal(t, 13, e.s.Requests("domainapi"))
}

func TestLicenseCountExceeded(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *Config) { c.LicenseCount = 1 })
	a := e.cc(Demo.WorkerID, Demo.WorkerSecret, "")
	b := e.cc(Demo.WorkerID, Demo.WorkerSecret, "")

	// Parallel requests with one token share one session.
	var wg sync.WaitGroup
	codes := make([]int, 8)
	for i := range codes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest("GET", e.s.URL()+customers, nil)
			req.Header.Set("Authorization", "Bearer "+a)
			resp, err := e.c.Do(req)
			if err == nil {
				codes[i] = resp.StatusCode
				resp.Body.Close()
			}
		}()
	}
	wg.Wait()
	for _, c := range codes {
		assert.Equal(t, http.StatusOK, c)
	}
	assert.Equal(t, 1, e.s.LicensesInUse())

	resp, body := e.api("GET", customers, bearer(b), "")
	assert.Equal(t, http.StatusForbidden, resp.StatusCode)
	assert.Equal(t, "MaximumLicenseCountExceeded", body["error"].(map[string]any)["code"])
	assert.NotEmpty(t, body["error"].(map[string]any)["message"])

	// When a's session times out (20 minutes idle), b gets the slot.
	e.s.Advance(20 * time.Minute)
	assert.Equal(t, 0, e.s.LicensesInUse())
	resp, _ = e.api("GET", customers, bearer(b), "")
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, 1, e.s.LicensesInUse())
}

func TestSessionSlidingAndSystemSessionLimit(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *Config) { c.AccessTokenLifetime = 3 * time.Hour })
	userTok := e.userTokens(Demo.Alice, "openid read offline_access")
	at := userTok["access_token"].(string)
	sys := e.cc(Demo.WorkerID, Demo.WorkerSecret, "read")
	e.ctl().ResetAPICalls()

	call := func(tok string) erpnetctl.APICall {
		t.Helper()
		resp, _ := e.api("GET", customers, bearer(tok), "")
		require.Equal(t, http.StatusOK, resp.StatusCode)
		calls := e.ctl().APICalls()
		return calls[len(calls)-1]
	}
	u0, s0 := call(at), call(sys)
	assert.True(t, u0.NewSession)
	assert.True(t, s0.NewSession)
	assert.Equal(t, 2, e.s.LicensesInUse())
	// Slides: 3 x 19 minutes keeps both alive (57 minutes).
	for i := 0; i < 3; i++ {
		e.s.Advance(19 * time.Minute)
		u, s := call(at), call(sys)
		assert.Equal(t, u0.Session, u.Session)
		assert.Equal(t, s0.Session, s.Session)
		assert.False(t, u.NewSession)
	}
	// At 62 minutes the client-credentials session has hit its 1-hour cap; the user one slides on.
	e.s.Advance(5 * time.Minute)
	u, s := call(at), call(sys)
	assert.Equal(t, u0.Session, u.Session)
	assert.NotEqual(t, s0.Session, s.Session)
	assert.True(t, s.NewSession)
	// A refresh keeps the same ERP.net session (same sid).
	resp, t2 := e.refresh(userTok["refresh_token"].(string), Demo.WebAppID, Demo.WebAppSecret)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, u0.Session, call(t2["access_token"].(string)).Session)
	// 20 idle minutes end the user session.
	e.s.Advance(20 * time.Minute)
	u = call(at)
	assert.NotEqual(t, u0.Session, u.Session)
	assert.True(t, u.NewSession)
}

func TestUserinfo(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	at := e.userTokens(Demo.Alice, "openid profile read")["access_token"].(string)
	req, _ := http.NewRequest("GET", e.s.URL()+pathUserinfo, nil)
	req.Header.Set("Authorization", "Bearer "+at)
	resp, body := e.do(req)
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
	assert.Contains(t, string(body), `"sub":"alice"`)
	assert.Contains(t, string(body), "alice@example.com")

	sys := e.cc(Demo.WorkerID, Demo.WorkerSecret, "")
	req, _ = http.NewRequest("GET", e.s.URL()+pathUserinfo, nil)
	req.Header.Set("Authorization", "Bearer "+sys)
	resp, _ = e.do(req)
	assert.Equal(t, http.StatusForbidden, resp.StatusCode)
	req, _ = http.NewRequest("GET", e.s.URL()+pathUserinfo, nil)
	resp, _ = e.do(req)
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	assert.NotEmpty(t, resp.Header.Get("WWW-Authenticate"))
	assert.Equal(t, 3, e.s.Requests("userinfo"))
}
