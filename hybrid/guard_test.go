package hybrid_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/erpnetgo/auth"
	"github.com/erpnetgo/auth/erpnettest"
	"github.com/erpnetgo/auth/hybrid"
	"github.com/erpnetgo/auth/internal/erpnetctl"
)

// TestServiceTokenNeverReachesTheBrowser: handlers behind WithUser or
// GuardResponses that try to send the service token to the browser (in a
// cookie, a header, the body, or split across writes) are stopped.
func TestServiceTokenNeverReachesTheBrowser(t *testing.T) {
	e := newEnv(t, nil)
	b := e.browser()
	b.signIn(erpnettest.Demo.Alice)

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

// TestGuardChecksEveryHeaderSetAndTrailers (issue 12, item 5): a 1xx
// informational response is not the final header set, and trailers are
// sent after the body; neither may carry the service token.
func TestGuardChecksEveryHeaderSetAndTrailers(t *testing.T) {
	e := newEnv(t, nil)
	b := e.browser()
	svcTok := e.serviceToken()
	noToken := func(t *testing.T, hs ...http.Header) {
		t.Helper()
		for _, h := range hs {
			for k, vs := range h {
				for _, v := range vs {
					assert.NotContains(t, v, svcTok, k)
				}
			}
		}
	}

	t.Run("cookie set after a 103", func(t *testing.T) {
		r := b.get(e.srv.URL + "/leak/after103")
		assert.Equal(t, http.StatusInternalServerError, r.status)
		require.Len(t, r.info, 1, "the clean 103 goes out")
		assert.Equal(t, "</app.css>; rel=preload; as=style", r.info[0].Get("Link"))
		noToken(t, r.header, r.trailer)
		assert.NotContains(t, r.body, svcTok)
	})
	t.Run("token in the 103", func(t *testing.T) {
		r := b.get(e.srv.URL + "/leak/in103")
		assert.Equal(t, http.StatusInternalServerError, r.status)
		assert.Empty(t, r.info, "the 103 carrying the token is not sent")
		noToken(t, append(r.info, r.header, r.trailer)...)
		assert.NotContains(t, r.body, svcTok)
	})
	for _, path := range []string{"/leak/trailer", "/leak/prefixtrailer"} {
		t.Run(path, func(t *testing.T) {
			r := b.do(http.MethodGet, e.srv.URL+path, nil)
			assert.Error(t, r.err, "the response must be cut off")
			noToken(t, r.header, r.trailer)
		})
	}
	t.Run("cookie of a handler that writes nothing", func(t *testing.T) {
		r := b.get(e.srv.URL + "/leak/implicit")
		assert.Equal(t, http.StatusInternalServerError, r.status)
		noToken(t, r.header)
	})
	for _, v := range b.cookieValues() {
		assert.NotContains(t, v, svcTok)
	}
	assert.Equal(t, 5, strings.Count(e.logs.String(), `"msg":"hybrid: refused to send a service token to a browser"`))
	assert.Equal(t, 2, strings.Count(e.logs.String(), `"where":"trailer"`))
	assert.NotContains(t, e.logs.String(), svcTok)

	// 1xx responses and trailers without a token pass.
	r := b.get(e.srv.URL + "/trailer")
	require.Equal(t, http.StatusOK, r.status)
	assert.Equal(t, "hello", r.body)
	require.Len(t, r.info, 1)
	assert.Equal(t, "abc", r.trailer.Get("X-Checksum"))
	assert.Equal(t, "def", r.trailer.Get("X-Late"))
}

// TestGuardLearnsRefreshedServiceTokens: the guard asks the App's Source
// for its token, and still knows the one before a refresh.
func TestGuardLearnsRefreshedServiceTokens(t *testing.T) {
	e := newEnv(t, nil)
	b := e.browser()
	b.signIn(erpnettest.Demo.Alice)
	// A token fetched through ServiceClient alone (no ServiceTokenSource) is
	// known to the guard.
	_, _, err := callAPI(t.Context(), e.app.Service().ServiceClient(), e.apiURL())
	require.NoError(t, err)
	first := e.serviceToken()
	r := b.get(e.srv.URL + "/leak/body")
	assert.Equal(t, http.StatusInternalServerError, r.status)
	assert.NotContains(t, r.body, first)

	// After the API refuses the token, ServiceClient gets a new one; both
	// stay known.
	e.idp.InjectFault("domainapi", erpnettest.Fault{Status: http.StatusUnauthorized})
	caller, _, err := callAPI(t.Context(), e.app.Service().ServiceClient(), e.apiURL())
	require.NoError(t, err)
	require.Equal(t, systemCaller, caller)
	second := e.serviceToken()
	require.NotEqual(t, first, second)
	for _, tok := range []string{first, second} {
		h := e.app.GuardResponses(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, "x"+tok+"x")
		}))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
		assert.Equal(t, http.StatusInternalServerError, rec.Code)
		assert.NotContains(t, rec.Body.String(), tok)
	}
}

// TestGuardPeeksSilently: learning the service token for the response
// guard is not a use of it. Service calls report one cache hit each (the
// call's own), and a guarded response while the token is in its refresh
// window starts no refresh.
func TestGuardPeeksSilently(t *testing.T) {
	var hits, aheads atomic.Int32
	var off atomic.Int64
	e := newEnv(t, func(c *hybrid.Config) {
		c.Now = func() time.Time { return time.Now().Add(time.Duration(off.Load())) }
		c.Hooks = &auth.Hooks{Event: func(_ context.Context, ev auth.Event) {
			if ev.Flow != "clientcreds" {
				return
			}
			switch ev.Name {
			case "token.cache_hit":
				hits.Add(1)
			case "token.refresh_ahead":
				aheads.Add(1)
			}
		}}
	})
	_, _, err := callAPI(t.Context(), e.app.Service().ServiceClient(), e.apiURL()) // fetches the token
	require.NoError(t, err)
	hits.Store(0)
	for range 10 {
		_, status, err := callAPI(t.Context(), e.app.Service().ServiceClient(), e.apiURL())
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, status)
	}
	assert.EqualValues(t, 10, hits.Load(), "cache hits of 10 service calls")

	// Into the refresh window (both clocks): guarded responses peek only.
	off.Add(int64(56 * time.Minute))
	e.idp.Advance(56 * time.Minute)
	grants := erpnetctl.Of(e.idp).Grants("client_credentials")
	h := e.app.GuardResponses(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "nothing secret")
	}))
	for range 5 {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
		require.Equal(t, http.StatusOK, rec.Code)
	}
	assert.Zero(t, aheads.Load(), "a peek started a refresh")
	assert.Equal(t, grants, erpnetctl.Of(e.idp).Grants("client_credentials"))
	assert.EqualValues(t, 0, hits.Load()-10, "a peek counted as a cache hit")
}
