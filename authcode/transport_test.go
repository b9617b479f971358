package authcode

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/erpnetgo/auth"
	"github.com/erpnetgo/auth/internal/erpnetctl"
)

// apiStub is an API server that answers the queued statuses (then 200)
// and records what reached it.
type apiStub struct {
	srv        *httptest.Server
	mu         sync.Mutex
	statuses   []int
	retryAfter string // sent with every 429 and 503
	redirectTo string // where /redirect sends the client
	auths      []string
	bodies     []string
}

func newAPIStub(t *testing.T) *apiStub {
	a := &apiStub{}
	a.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		a.mu.Lock()
		a.auths = append(a.auths, r.Header.Get("Authorization"))
		a.bodies = append(a.bodies, string(body))
		status := http.StatusOK
		if len(a.statuses) > 0 {
			status, a.statuses = a.statuses[0], a.statuses[1:]
		}
		retryAfter, redirectTo := a.retryAfter, a.redirectTo
		a.mu.Unlock()
		if r.URL.Path == "/redirect" {
			http.Redirect(w, r, redirectTo, http.StatusFound)
			return
		}
		if retryAfter != "" && (status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable) {
			w.Header().Set("Retry-After", retryAfter)
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, "body-to-drain")
	}))
	t.Cleanup(a.srv.Close)
	return a
}

// reset forgets the recorded calls and queues statuses.
func (a *apiStub) reset(retryAfter string, statuses ...int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.statuses, a.retryAfter, a.auths, a.bodies = statuses, retryAfter, nil, nil
}

func (a *apiStub) calls() ([]string, []string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.auths...), append([]string(nil), a.bodies...)
}

// apiEnv is an env whose Domain API is the stub (Config.DomainAPI), with
// retries whose backoff is negligible.
func apiEnv(t *testing.T) (*env, *apiStub, *Session) {
	api := newAPIStub(t)
	e := newEnv(t, withClient(func(c *Config) {
		c.DomainAPI = api.srv.URL + "/"
		c.Retry = auth.Retry{Base: time.Millisecond, Cap: time.Millisecond}
	}))
	b := e.browser()
	e.mustSignIn(b, "")
	return e, api, e.session(b)
}

func TestUserClient401RetriesOnce(t *testing.T) {
	e, api, s := apiEnv(t)

	t.Run("GET retried once with a new token", func(t *testing.T) {
		api.reset("", http.StatusUnauthorized)
		resp, err := e.c.UserClient(context.Background(), s).Get(api.srv.URL)
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusOK, resp.StatusCode)
		auths, _ := api.calls()
		require.Len(t, auths, 2)
		assert.NotEqual(t, auths[0], auths[1])
		assert.True(t, strings.HasPrefix(auths[1], "Bearer "))
		assert.Equal(t, 1, erpnetctl.Of(e.idp).Grants("refresh_token"))
	})
	t.Run("second 401 within the guard interval is returned", func(t *testing.T) {
		api.reset("", http.StatusUnauthorized, http.StatusUnauthorized)
		resp, err := e.c.UserClient(context.Background(), s).Get(api.srv.URL)
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
		auths, _ := api.calls()
		assert.Len(t, auths, 1, "no refresh storm against an API that refuses fresh tokens")
		assert.Equal(t, 1, erpnetctl.Of(e.idp).Grants("refresh_token"))
	})
	e.clk.off.Add(int64(30 * time.Second)) // the guard interval // client clock only: tokens stay valid
	t.Run("POST with a replayable body", func(t *testing.T) {
		api.reset("", http.StatusUnauthorized)
		resp, err := e.c.UserClient(context.Background(), s).Post(api.srv.URL, "text/plain", bytes.NewReader([]byte("payload")))
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusOK, resp.StatusCode)
		_, bodies := api.calls()
		assert.Equal(t, []string{"payload", "payload"}, bodies)
		assert.Equal(t, 2, erpnetctl.Of(e.idp).Grants("refresh_token"))
	})
	e.clk.off.Add(int64(30 * time.Second)) // the guard interval
	t.Run("body that cannot be replayed is not retried", func(t *testing.T) {
		api.reset("", http.StatusUnauthorized)
		req, _ := http.NewRequest(http.MethodPost, api.srv.URL, io.NopCloser(strings.NewReader("once")))
		resp, err := e.c.UserClient(context.Background(), s).Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
		auths, _ := api.calls()
		assert.Len(t, auths, 1)
		assert.Equal(t, 2, erpnetctl.Of(e.idp).Grants("refresh_token"))
		// ...but the refused token is dropped: the next request carries a
		// fresh one.
		api.reset("")
		resp, err = e.c.UserClient(context.Background(), s).Get(api.srv.URL)
		require.NoError(t, err)
		resp.Body.Close()
		next, _ := api.calls()
		require.Len(t, next, 1)
		assert.NotEqual(t, auths[0], next[0])
		assert.Equal(t, 3, erpnetctl.Of(e.idp).Grants("refresh_token"))
	})
	t.Run("403 is never retried", func(t *testing.T) {
		api.reset("", http.StatusForbidden)
		req, _ := http.NewRequest(http.MethodGet, api.srv.URL, nil)
		req.Header.Set("X-Custom", "1")
		resp, err := e.c.UserClient(context.Background(), s).Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusForbidden, resp.StatusCode)
		auths, _ := api.calls()
		assert.Len(t, auths, 1)
		assert.Equal(t, 3, erpnetctl.Of(e.idp).Grants("refresh_token"), "a 403 does not refresh either")
		assert.Empty(t, req.Header.Get("Authorization"), "the caller's request is not modified")
		assert.Equal(t, "1", req.Header.Get("X-Custom"))
	})
}

func TestUserClientOtherHosts(t *testing.T) {
	e, api, s := apiEnv(t)
	other := newAPIStub(t) // another origin (another port)

	t.Run("request to another host is refused, nothing sent", func(t *testing.T) {
		resp, err := e.c.UserClient(context.Background(), s).Get(other.srv.URL + "/steal")
		if resp != nil {
			resp.Body.Close()
		}
		require.Error(t, err)
		assert.ErrorIs(t, err, auth.ErrMisconfigured)
		auths, _ := other.calls()
		assert.Empty(t, auths, "nothing reached the other host")
	})
	t.Run("Host header naming another host is refused", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodGet, api.srv.URL, nil)
		req.Host = "evil.example"
		_, err := e.c.UserClient(context.Background(), s).Do(req)
		assert.ErrorIs(t, err, auth.ErrMisconfigured)
		auths, _ := api.calls()
		assert.Empty(t, auths)
	})
	t.Run("redirect to another host drops the token", func(t *testing.T) {
		api.reset("")
		other.reset("")
		api.mu.Lock()
		api.redirectTo = other.srv.URL + "/landing"
		api.mu.Unlock()
		resp, err := e.c.UserClient(context.Background(), s).Get(api.srv.URL + "/redirect")
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusOK, resp.StatusCode)
		auths, _ := api.calls()
		require.Len(t, auths, 1)
		assert.True(t, strings.HasPrefix(auths[0], "Bearer "), "the instance gets the token")
		oauths, _ := other.calls()
		require.Len(t, oauths, 1, "the redirect is followed")
		assert.Empty(t, oauths[0], "without the token")
	})
	t.Run("redirect on the same origin keeps the token", func(t *testing.T) {
		api.reset("")
		api.mu.Lock()
		api.redirectTo = api.srv.URL + "/landing"
		api.mu.Unlock()
		resp, err := e.c.UserClient(context.Background(), s).Get(api.srv.URL + "/redirect")
		require.NoError(t, err)
		resp.Body.Close()
		auths, _ := api.calls()
		require.Len(t, auths, 2)
		assert.Equal(t, auths[0], auths[1])
		assert.True(t, strings.HasPrefix(auths[1], "Bearer "))
	})
}

func TestUserClientBusyRetries(t *testing.T) {
	e, api, s := apiEnv(t)
	hc := e.c.UserClient(context.Background(), s)

	t.Run("429 and 503 on a GET are retried", func(t *testing.T) {
		api.reset("", http.StatusTooManyRequests, http.StatusServiceUnavailable)
		resp, err := hc.Get(api.srv.URL)
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusOK, resp.StatusCode)
		auths, _ := api.calls()
		assert.Len(t, auths, 3)
	})
	t.Run("429 with Retry-After on a GET is retried after it", func(t *testing.T) {
		// Retry-After is honoured: this waits about a second.
		api.reset("1", http.StatusTooManyRequests)
		resp, err := hc.Get(api.srv.URL)
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusOK, resp.StatusCode)
		auths, _ := api.calls()
		assert.Len(t, auths, 2)
	})
	t.Run("429 with Retry-After beyond MaxRetryAfter is returned at once", func(t *testing.T) {
		api.reset("3600", http.StatusTooManyRequests)
		resp, err := hc.Get(api.srv.URL)
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
		assert.Equal(t, "3600", resp.Header.Get("Retry-After"))
		auths, _ := api.calls()
		assert.Len(t, auths, 1)
	})
	t.Run("429 on a POST with a body that cannot be replayed is not retried", func(t *testing.T) {
		api.reset("", http.StatusTooManyRequests)
		req, _ := http.NewRequest(http.MethodPost, api.srv.URL, io.NopCloser(strings.NewReader("once")))
		req.Header.Set("Idempotency-Key", "k1") // idempotent, but the body is gone after one send
		resp, err := hc.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
		auths, _ := api.calls()
		assert.Len(t, auths, 1)
	})
	t.Run("429 on a plain POST is not retried", func(t *testing.T) {
		api.reset("", http.StatusTooManyRequests)
		resp, err := hc.Post(api.srv.URL, "text/plain", strings.NewReader("payload"))
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
		auths, _ := api.calls()
		assert.Len(t, auths, 1, "a POST is not idempotent")
	})
	t.Run("429 on a POST with an Idempotency-Key and a replayable body is retried", func(t *testing.T) {
		api.reset("", http.StatusTooManyRequests)
		req, _ := http.NewRequest(http.MethodPost, api.srv.URL, strings.NewReader("payload"))
		req.Header.Set("Idempotency-Key", "k2")
		resp, err := hc.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusOK, resp.StatusCode)
		_, bodies := api.calls()
		assert.Equal(t, []string{"payload", "payload"}, bodies)
	})
	assert.Zero(t, erpnetctl.Of(e.idp).Grants("refresh_token"), "busy answers never refresh the token")
}
