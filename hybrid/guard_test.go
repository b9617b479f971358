package hybrid_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/erpnetgo/auth/internal/devserver"
)

// TestServiceTokenNeverReachesTheBrowser: handlers behind WithUser or
// GuardResponses that try to send the service token to the browser (in a
// cookie, a header, the body, or split across writes) are stopped.
func TestServiceTokenNeverReachesTheBrowser(t *testing.T) {
	e := newEnv(t, nil)
	b := e.browser()
	b.signIn(devserver.DemoAlice)

	// Before the App has any service token the guard has nothing to do.
	r := b.get(e.srv.URL + "/plain")
	require.Equal(t, http.StatusOK, r.status)
	require.Equal(t, strings.Repeat("fine ", 1000), r.body)

	svcTok := e.serviceToken()
	for _, path := range []string{"/leak/cookie", "/leak/body", "/leak/redirect"} {
		t.Run(path, func(t *testing.T) {
			r := b.get(e.srv.URL + path)
			assert.Equal(t, http.StatusInternalServerError, r.status)
			assert.NotContains(t, r.body, svcTok)
			for k, vs := range r.header {
				for _, v := range vs {
					assert.NotContains(t, v, svcTok, k)
				}
			}
		})
	}
	t.Run("/leak/split", func(t *testing.T) {
		// The headers and the token's first half are already out when the
		// second half is written: the response is aborted.
		r := b.do(http.MethodGet, e.srv.URL+"/leak/split", nil)
		assert.Error(t, r.err, "the response must be cut off")
		assert.NotContains(t, r.body, svcTok)
	})
	for _, v := range b.cookieValues() {
		assert.NotContains(t, v, svcTok)
	}
	assert.Equal(t, 4, strings.Count(e.logs.String(), `"msg":"hybrid: refused to send a service token to a browser"`))
	assert.NotContains(t, e.logs.String(), svcTok)

	// Ordinary responses pass untouched.
	r = b.get(e.srv.URL + "/plain")
	require.Equal(t, http.StatusOK, r.status)
	require.Equal(t, strings.Repeat("fine ", 1000), r.body)
	r = b.get(e.srv.URL + "/customers")
	require.Equal(t, http.StatusOK, r.status)
	require.Equal(t, "user:alice", r.header.Get("X-Caller"))
}
