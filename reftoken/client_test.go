package reftoken_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/erpnetgo/auth"
	"github.com/erpnetgo/auth/erpnettest"
	"github.com/erpnetgo/auth/internal/erpnetctl"
	"github.com/erpnetgo/auth/reftoken"
)

const customersPath = "/api/domain/odata/Crm_Sales_Customers"

// env is a dev server with a client for one token.
type env struct {
	srv *erpnettest.Server
	raw string
}

// kind is a reference token's kind: "PAT" (a user's) or "SAT" (an application's).
type kind string

const (
	pat kind = "PAT"
	sat kind = "SAT"
)

func newEnv(t *testing.T, kind kind, subject string, scopes ...string) *env {
	t.Helper()
	srv := erpnettest.NewServer(t)
	return &env{srv: srv, raw: mint(t, srv, kind, subject, scopes...)}
}

func mint(t *testing.T, srv *erpnettest.Server, kind kind, subject string, scopes ...string) string {
	t.Helper()
	if len(scopes) == 0 {
		scopes = []string{"read"}
	}
	if kind == sat {
		return srv.MintSAT(subject, scopes...)
	}
	return srv.MintPAT(subject, scopes...)
}

func (e *env) client(t *testing.T, cfg reftoken.Config) (*http.Client, *recorder) {
	t.Helper()
	rec := newRecorder(t)
	tok := reftoken.MustParse(e.raw)
	cfg.Authority, cfg.Transport = e.srv.URL(), rec
	c, err := tok.Client(cfg)
	require.NoError(t, err)
	return c, rec
}

func get(t *testing.T, c *http.Client, rawURL string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, rawURL, nil)
	require.NoError(t, err)
	resp, err := c.Do(req)
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

func TestDomainAPIAcceptsPATAndSATInBothHeaders(t *testing.T) {
	srv := erpnettest.NewServer(t)
	for _, kc := range []struct {
		kind    kind
		subject string
		caller  string
	}{
		{pat, erpnettest.Demo.Alice, "pat:alice"},
		{sat, erpnettest.Demo.WorkerID, "sat:worker-system"},
	} {
		raw := mint(t, srv, kc.kind, kc.subject)
		e := &env{srv: srv, raw: raw}
		for _, hc := range []struct {
			h   reftoken.Header
			via string
		}{{reftoken.Bearer, "bearer"}, {reftoken.APIKey, "x-api-key"}} {
			t.Run(string(kc.kind)+"/"+hc.h.String(), func(t *testing.T) {
				erpnetctl.Of(srv).ResetAPICalls()
				c, rec := e.client(t, reftoken.Config{Header: hc.h})
				resp := get(t, c, srv.URL()+customersPath+"?$top=10")
				require.Equal(t, http.StatusOK, resp.StatusCode)
				require.NoError(t, reftoken.CheckResponse(resp))
				assert.Equal(t, kc.caller, resp.Header.Get("X-Erpnet-Caller"))

				calls := erpnetctl.Of(srv).APICalls()
				require.Len(t, calls, 1)
				assert.Equal(t, hc.via, calls[0].Via)
				assert.Equal(t, strings.ToLower(string(kc.kind)), calls[0].Kind)
				assert.Equal(t, strings.SplitN(kc.caller, ":", 2)[1], calls[0].Subject)

				s := rec.last()
				switch hc.h {
				case reftoken.Bearer:
					assert.Equal(t, "Bearer "+raw, s.Header.Get("Authorization"))
					assert.Empty(t, s.Header.Values("X-Api-Key"))
				case reftoken.APIKey:
					assert.Equal(t, raw, s.Header.Get("X-Api-Key"))
					assert.Empty(t, s.Header.Values("Authorization"))
				}
			})
		}
	}
}

func TestCallerCredentialsStripped(t *testing.T) {
	e := newEnv(t, pat, erpnettest.Demo.Alice)
	other := mint(t, e.srv, sat, erpnettest.Demo.WorkerID)
	for _, h := range []reftoken.Header{reftoken.Bearer, reftoken.APIKey} {
		t.Run(h.String(), func(t *testing.T) {
			erpnetctl.Of(e.srv).ResetAPICalls()
			c, rec := e.client(t, reftoken.Config{Header: h})
			u, err := url.Parse(e.srv.URL() + customersPath)
			require.NoError(t, err)
			u.User = url.UserPassword("mallory", "pw") // would become Authorization: Basic
			req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, u.String(), nil)
			require.NoError(t, err)
			req.Header.Set("Authorization", "Bearer "+other)
			req.Header["x-api-key"] = []string{other} // non-canonical keys, set directly
			req.Header["X-API-KEY"] = []string{other}
			req.Header.Set("Api-Key", other)
			req.Header.Set("Cookie", "session=abc")
			req.Header.Set("Accept", "application/json")
			before := req.Header.Clone()

			resp, err := c.Do(req)
			require.NoError(t, err)
			resp.Body.Close()
			require.Equal(t, http.StatusOK, resp.StatusCode, "the server got both headers or the wrong token")
			assert.Equal(t, "pat:alice", resp.Header.Get("X-Erpnet-Caller"))

			s := rec.last()
			assert.False(t, s.UserInfo, "URL user info must be removed")
			assert.Equal(t, "application/json", s.Header.Get("Accept"))
			n := 0
			for k := range s.Header {
				switch strings.ToLower(k) {
				case "authorization", "x-api-key", "api-key":
					n++
				}
			}
			assert.Equal(t, 1, n, "exactly one credential header: %v", s.Header)

			// The caller's request is untouched.
			assert.Equal(t, before, req.Header)
			assert.NotNil(t, req.URL.User)
		})
	}
}

func TestRejectedTokens(t *testing.T) {
	srv := erpnettest.NewServer(t)
	check := func(t *testing.T, raw string) {
		t.Helper()
		erpnetctl.Of(srv).ResetCounts()
		c, _ := (&env{srv: srv, raw: raw}).client(t, reftoken.Config{})
		resp := get(t, c, srv.URL()+customersPath+"?$top=1")
		require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
		assert.Equal(t, 1, srv.Requests("domainapi"), "a rejected reference token is not retried")
		err := reftoken.CheckResponse(resp)
		require.ErrorIs(t, err, reftoken.ErrTokenRejected)
		var re *auth.Error
		require.ErrorAs(t, err, &re)
		assert.Equal(t, "API request", re.Op)
		assert.Equal(t, http.StatusUnauthorized, re.StatusCode)
		assert.Equal(t, "invalid_token", re.Code)
		require.Error(t, re.Err)
		assert.Equal(t, http.MethodGet+" "+srv.URL()+customersPath, re.Err.Error())
		assertNoSecret(t, "401 error", err.Error(), raw)
		t.Log(err)
	}
	t.Run("revoked", func(t *testing.T) {
		raw := mint(t, srv, pat, erpnettest.Demo.Alice)
		srv.RevokeToken(raw)
		check(t, raw)
	})
	t.Run("expired", func(t *testing.T) {
		raw := mint(t, srv, sat, erpnettest.Demo.WorkerID) // valid a year
		c, _ := (&env{srv: srv, raw: raw}).client(t, reftoken.Config{Header: reftoken.APIKey})
		require.Equal(t, http.StatusOK, get(t, c, srv.URL()+customersPath).StatusCode)
		srv.Advance(366 * 24 * time.Hour)
		check(t, raw)
	})
	t.Run("unknown", func(t *testing.T) {
		check(t, "enrt_"+strings.Repeat("AB", 32))
	})
}

func TestNotPermitted(t *testing.T) {
	e := newEnv(t, pat, erpnettest.Demo.Alice, "update")
	c, _ := e.client(t, reftoken.Config{})
	resp := get(t, c, e.srv.URL()+customersPath)
	require.Equal(t, http.StatusForbidden, resp.StatusCode)
	err := reftoken.CheckResponse(resp)
	require.ErrorIs(t, err, reftoken.ErrNotPermitted)
	assert.NotErrorIs(t, err, reftoken.ErrTokenRejected)
	assert.NotErrorIs(t, err, auth.ErrTemporary)
	var re *auth.Error
	require.ErrorAs(t, err, &re)
	assert.Equal(t, "insufficient_scope", re.Code)
	assert.Equal(t, 1, e.srv.Requests("domainapi"))
}

func TestRateLimitedThenSuccess(t *testing.T) {
	e := newEnv(t, pat, erpnettest.Demo.Alice)
	e.srv.InjectFault("domainapi", erpnettest.Fault{Status: http.StatusTooManyRequests, RetryAfter: time.Second})
	c, rec := e.client(t, reftoken.Config{Header: reftoken.APIKey})
	start := time.Now()
	resp := get(t, c, e.srv.URL()+customersPath)
	elapsed := time.Since(start)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, 2, e.srv.Requests("domainapi"))
	assert.Len(t, rec.sent(), 2)
	assert.GreaterOrEqual(t, elapsed, 900*time.Millisecond, "Retry-After: 1 was not honoured")
	calls := erpnetctl.Of(e.srv).APICalls()
	require.Len(t, calls, 1)
	assert.Equal(t, "x-api-key", calls[0].Via)
}

func TestRateLimitedGivesUp(t *testing.T) {
	e := newEnv(t, pat, erpnettest.Demo.Alice)
	f := erpnettest.Fault{Status: http.StatusTooManyRequests}
	f.Times = 4
	e.srv.InjectFault("domainapi", f)
	c, _ := e.client(t, reftoken.Config{Retry: auth.Retry{Attempts: 3, Base: time.Millisecond}})
	resp := get(t, c, e.srv.URL()+customersPath)
	require.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
	assert.Equal(t, 3, e.srv.Requests("domainapi"))
	err := reftoken.CheckResponse(resp)
	assert.ErrorIs(t, err, auth.ErrTemporary)

	// A Retry-After beyond the limit ends the retries at once.
	e.srv.ClearFaults()
	erpnetctl.Of(e.srv).ResetCounts()
	e.srv.InjectFault("domainapi", erpnettest.Fault{Status: http.StatusTooManyRequests, RetryAfter: 3600 * time.Second})
	resp = get(t, c, e.srv.URL()+customersPath)
	require.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
	assert.Equal(t, 1, e.srv.Requests("domainapi"))
	var re *auth.Error
	require.ErrorAs(t, reftoken.CheckResponse(resp), &re)
	assert.Equal(t, time.Hour, re.RetryAfter)
}

func TestRateLimitedHonoursContext(t *testing.T) {
	e := newEnv(t, pat, erpnettest.Demo.Alice)
	e.srv.InjectFault("domainapi", erpnettest.Fault{Status: http.StatusTooManyRequests, RetryAfter: 5 * time.Second})
	c, _ := e.client(t, reftoken.Config{})
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.srv.URL()+customersPath, nil)
	start := time.Now()
	resp, err := c.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
	assert.Less(t, time.Since(start), time.Second, "must not sleep past the context's deadline")
}

// bodyServer answers 429 to the first n requests, then echoes the body it got.
func bodyServer(t *testing.T, n int32) (*httptest.Server, *atomic.Int32) {
	var hits atomic.Int32
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if hits.Add(1) <= n {
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		_, _ = w.Write(b)
	}))
	t.Cleanup(s.Close)
	return s, &hits
}

func TestRateLimitedReplaysBodies(t *testing.T) {
	tok := reftoken.MustParse(hexToken)
	client := func(t *testing.T, s *httptest.Server) *http.Client {
		c, err := tok.Client(reftoken.Config{Authority: s.URL, Transport: newRecorder(t)})
		require.NoError(t, err)
		return c
	}
	send := func(t *testing.T, c *http.Client, req *http.Request) (int, string) {
		resp, err := c.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	t.Run("PUT with GetBody", func(t *testing.T) {
		s, hits := bodyServer(t, 1)
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPut, s.URL+"/x", strings.NewReader("payload"))
		status, body := send(t, client(t, s), req)
		assert.Equal(t, http.StatusOK, status)
		assert.Equal(t, "payload", body)
		assert.EqualValues(t, 2, hits.Load())
	})
	t.Run("POST with GetBody and Idempotency-Key", func(t *testing.T) {
		s, hits := bodyServer(t, 1)
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, s.URL+"/x", strings.NewReader("payload"))
		req.Header.Set("Idempotency-Key", "k1")
		status, body := send(t, client(t, s), req)
		assert.Equal(t, http.StatusOK, status)
		assert.Equal(t, "payload", body)
		assert.EqualValues(t, 2, hits.Load())
	})
	t.Run("POST without Idempotency-Key", func(t *testing.T) {
		s, hits := bodyServer(t, 1)
		resp, err := client(t, s).Post(s.URL+"/x", "text/plain", strings.NewReader("payload"))
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusTooManyRequests, resp.StatusCode, "a POST is not idempotent: it is not retried")
		assert.EqualValues(t, 1, hits.Load())
	})
	t.Run("no GetBody", func(t *testing.T) {
		s, hits := bodyServer(t, 1)
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPut, s.URL+"/x", io.NopCloser(strings.NewReader("payload")))
		status, _ := send(t, client(t, s), req)
		assert.Equal(t, http.StatusTooManyRequests, status, "a body that cannot be replayed is not retried")
		assert.EqualValues(t, 1, hits.Load())
	})
}

// headerLog is a server that records the credential headers of every request.
type headerLog struct {
	mu   sync.Mutex
	seen []http.Header
}

func (l *headerLog) handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		l.mu.Lock()
		l.seen = append(l.seen, r.Header.Clone())
		l.mu.Unlock()
		if next != nil {
			next.ServeHTTP(w, r)
		}
	})
}

func (l *headerLog) all() []http.Header {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]http.Header(nil), l.seen...)
}

func hasCredential(h http.Header) bool {
	for k := range h {
		switch strings.ToLower(k) {
		case "authorization", "x-api-key", "api-key", "cookie":
			return true
		}
	}
	return false
}

func TestCrossHostRedirectDropsToken(t *testing.T) {
	// The "other host": a second server on another loopback address (another port when that
	// address is not available).
	var otherLog headerLog
	other := httptest.NewUnstartedServer(otherLog.handler(nil))
	if ln, err := net.Listen("tcp", "127.0.0.2:0"); err == nil {
		other.Listener.Close()
		other.Listener = ln
	}
	other.Start()
	defer other.Close()

	var instLog headerLog
	mux := http.NewServeMux()
	mux.HandleFunc("/to-other", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+"/landed", http.StatusFound)
	})
	mux.HandleFunc("/to-other-307", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+"/landed", http.StatusTemporaryRedirect)
	})
	mux.HandleFunc("/to-self", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/landed", http.StatusFound)
	})
	mux.HandleFunc("/landed", func(w http.ResponseWriter, r *http.Request) {})
	inst := httptest.NewServer(instLog.handler(mux))
	defer inst.Close()
	// The same server under another host name: same port, different origin.
	_, port, _ := net.SplitHostPort(inst.Listener.Addr().String())
	mux.HandleFunc("/to-localhost", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://localhost:"+port+"/landed", http.StatusFound)
	})

	tok := reftoken.MustParse(hexToken)
	for _, h := range []reftoken.Header{reftoken.Bearer, reftoken.APIKey} {
		t.Run(h.String(), func(t *testing.T) {
			c, err := tok.Client(reftoken.Config{Authority: inst.URL, Header: h, Transport: newRecorder(t)})
			require.NoError(t, err)

			for _, path := range []string{"/to-other", "/to-other-307"} {
				req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, inst.URL+path, nil)
				req.Header.Set("Cookie", "a=b")
				resp, err := c.Do(req)
				require.NoError(t, err)
				resp.Body.Close()
				assert.Equal(t, http.StatusOK, resp.StatusCode)
				assert.Equal(t, "/landed", resp.Request.URL.Path)
			}
			seen := otherLog.all()
			require.NotEmpty(t, seen)
			for _, hd := range seen {
				assert.False(t, hasCredential(hd), "the other host got a credential: %v", hd)
			}

			// Same host, other name: also another origin.
			n := len(instLog.all())
			get(t, c, inst.URL+"/to-localhost")
			landed := instLog.all()[n+1]
			assert.False(t, hasCredential(landed), "localhost got a credential: %v", landed)

			// A redirect within the instance keeps the token.
			n = len(instLog.all())
			get(t, c, inst.URL+"/to-self")
			landed = instLog.all()[n+1]
			assert.True(t, hasCredential(landed))
		})
	}

}

func TestForeignHostRefused(t *testing.T) {
	tok := reftoken.MustParse(hexToken)
	rec := newRecorder(t)
	c, err := tok.Client(reftoken.Config{Authority: "https://demodb.my.erp.net/id/", Transport: rec})
	require.NoError(t, err)

	for _, raw := range []string{
		"https://evil.example/api", "http://demodb.my.erp.net/api", "https://demodb.my.erp.net:8443/api",
		"https://demodb.my.erp.net.evil.example/api", "https://sub.demodb.my.erp.net/api",
	} {
		body := &closeTracker{Reader: strings.NewReader("x")}
		req, _ := http.NewRequest(http.MethodPost, raw, body)
		_, err := c.Do(req)
		require.ErrorIs(t, err, auth.ErrMisconfigured, raw)
		var ae *auth.Error
		require.ErrorAs(t, err, &ae, raw)
		assert.Contains(t, err.Error(), "https://demodb.my.erp.net:443")
		assert.True(t, body.closed, "the body must be closed on error")
	}
	assert.Empty(t, rec.sent(), "nothing may leave for a foreign host")

	// Same origin, spelled differently, is accepted (the request fails later, offline).
	c2, err := tok.Client(reftoken.Config{Authority: "https://demodb.my.erp.net/", Transport: failing{}})
	require.NoError(t, err)
	req, _ := http.NewRequest(http.MethodGet, "HTTPS://DemoDB.My.ERP.net:443/api", nil)
	_, err = c2.Do(req)
	assert.ErrorIs(t, err, errOffline)

	// A Host header naming another virtual host is refused.
	req, _ = http.NewRequest(http.MethodGet, "https://demodb.my.erp.net/api", nil)
	req.Host = "otherdb.my.erp.net"
	_, err = c2.Do(req)
	assert.ErrorIs(t, err, auth.ErrMisconfigured)
	assert.NotErrorIs(t, err, errOffline)

	// A Domain API on another host gets the token too, and nothing else does.
	rec3 := newRecorder(t)
	c3, err := tok.Client(reftoken.Config{Authority: "https://demodb.my.erp.net", DomainAPI: "https://api.erp.example/odata",
		Transport: failingRecorder{rec3}})
	require.NoError(t, err)
	for raw, allowed := range map[string]bool{
		"https://demodb.my.erp.net/api":     true,
		"https://api.erp.example/odata/X":   true,
		"https://api.erp.example:443/other": true,
		"http://api.erp.example/odata/X":    false,
		"https://erp.example/odata/X":       false,
	} {
		req, _ := http.NewRequest(http.MethodGet, raw, nil)
		_, err := c3.Do(req)
		if allowed {
			assert.ErrorIs(t, err, errOffline, raw)
		} else {
			assert.ErrorIs(t, err, auth.ErrMisconfigured, raw)
		}
	}
	for _, s := range rec3.sent() {
		assert.Equal(t, "Bearer "+hexToken, s.Header.Get("Authorization"), s.URL)
	}
	assert.Len(t, rec3.sent(), 3)
}

func TestMisconfigured(t *testing.T) {
	tok := reftoken.MustParse(hexToken)
	for name, c := range map[string]struct {
		tok   reftoken.Token
		cfg   reftoken.Config
		field string
	}{
		"zero token":         {reftoken.Token{}, reftoken.Config{Authority: "https://x.example"}, "Token"},
		"bad header":         {tok, reftoken.Config{Authority: "https://x.example", Header: reftoken.Header(2)}, "Header"},
		"negative header":    {tok, reftoken.Config{Authority: "https://x.example", Header: reftoken.Header(-1)}, "Header"},
		"empty authority":    {tok, reftoken.Config{}, "Authority"},
		"relative":           {tok, reftoken.Config{Authority: "/api"}, "Authority"},
		"ftp":                {tok, reftoken.Config{Authority: "ftp://x.example"}, "Authority"},
		"remote http":        {tok, reftoken.Config{Authority: "http://x.example"}, "Authority"},
		"user info":          {tok, reftoken.Config{Authority: "https://u:p@x.example"}, "Authority"},
		"query":              {tok, reftoken.Config{Authority: "https://x.example/?a=b"}, "Authority"},
		"unparsable":         {tok, reftoken.Config{Authority: "https://x.example:port"}, "Authority"},
		"control char":       {tok, reftoken.Config{Authority: "https://x.example/\x00"}, "Authority"},
		"relative DomainAPI": {tok, reftoken.Config{Authority: "https://x.example", DomainAPI: "/odata/"}, "DomainAPI"},
		"http DomainAPI":     {tok, reftoken.Config{Authority: "https://x.example", DomainAPI: "http://x.example/odata/"}, "DomainAPI"},
	} {
		t.Run(name, func(t *testing.T) {
			hc, err := c.tok.Client(c.cfg)
			assert.Nil(t, hc)
			assert.ErrorIs(t, err, auth.ErrMisconfigured)
			var ce *auth.ConfigError
			require.ErrorAs(t, err, &ce)
			assert.Equal(t, c.field, ce.Field)
		})
	}
	for _, ok := range []string{"http://127.0.0.1:8080", "http://localhost:1", "http://[::1]:2", "https://x.example/id/", "https://x.example/id"} {
		_, err := tok.Client(reftoken.Config{Authority: ok})
		assert.NoError(t, err, ok)
	}
	_, err := tok.Client(reftoken.Config{Authority: "https://x.example", DomainAPI: "http://127.0.0.1:9/odata/", Header: reftoken.APIKey})
	assert.NoError(t, err)
}

func TestTokenSource(t *testing.T) {
	e := newEnv(t, sat, erpnettest.Demo.WorkerID)
	ts := reftoken.MustParse(e.raw).TokenSource()
	ot, err := ts.Token()
	require.NoError(t, err)
	assert.Equal(t, "Bearer", ot.Type())
	assert.True(t, ot.Expiry.IsZero())
	assert.True(t, ot.Valid())
	ot.AccessToken = "changed"
	ot2, _ := ts.Token()
	assert.Equal(t, e.raw, ot2.AccessToken, "each call returns a fresh token")

	c := oauth2.NewClient(t.Context(), oauth2.ReuseTokenSource(nil, ts))
	resp := get(t, c, e.srv.URL()+customersPath)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "sat:worker-system", resp.Header.Get("X-Erpnet-Caller"))
	assert.Equal(t, "bearer", erpnetctl.Of(e.srv).APICalls()[0].Via)
}

func TestConcurrentRequests(t *testing.T) {
	e := newEnv(t, pat, erpnettest.Demo.Alice)
	c, rec := e.client(t, reftoken.Config{})
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 16 {
		wg.Go(func() {
			req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, e.srv.URL()+customersPath, nil)
			resp, err := c.Do(req)
			if err != nil {
				errs <- err
				return
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				errs <- errors.New(resp.Status)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	assert.Len(t, rec.sent(), 16)
}

func TestCheckResponse(t *testing.T) {
	mk := func(status int, hdr ...string) *http.Response {
		h := http.Header{}
		for i := 0; i+1 < len(hdr); i += 2 {
			h.Add(hdr[i], hdr[i+1])
		}
		req, _ := http.NewRequest(http.MethodPost, "https://u:p@x.example/api/x?secret=1#frag", nil)
		return &http.Response{StatusCode: status, Header: h, Request: req, Body: http.NoBody}
	}
	assert.NoError(t, reftoken.CheckResponse(nil))
	for _, s := range []int{200, 201, 204, 302, 304} {
		assert.NoError(t, reftoken.CheckResponse(mk(s)))
	}
	for s, kind := range map[int]error{401: reftoken.ErrTokenRejected, 403: reftoken.ErrNotPermitted,
		429: auth.ErrTemporary, 502: auth.ErrTemporary, 503: auth.ErrTemporary, 504: auth.ErrTemporary} {
		err := reftoken.CheckResponse(mk(s))
		assert.ErrorIs(t, err, kind, s)
		var re *auth.Error
		require.ErrorAs(t, err, &re)
		assert.Equal(t, kind, re.Kind)
		assert.Equal(t, s, re.StatusCode)
	}
	for _, s := range []int{400, 404, 500} {
		err := reftoken.CheckResponse(mk(s))
		var re *auth.Error
		require.ErrorAs(t, err, &re)
		assert.Nil(t, re.Kind)
		for _, k := range []error{reftoken.ErrTokenRejected, reftoken.ErrNotPermitted, auth.ErrTemporary, auth.ErrMisconfigured} {
			assert.NotErrorIs(t, err, k)
		}
	}

	err := reftoken.CheckResponse(mk(401, "WWW-Authenticate", `Basic realm="x"`,
		"WWW-Authenticate", `Bearer realm="ERP.net", error="invalid_token", error_description="The token \"expired\"`+"\x01\x1b"+`X-Forged: 1"`))
	var re *auth.Error
	require.ErrorAs(t, err, &re)
	assert.Equal(t, "API request", re.Op)
	assert.Equal(t, "invalid_token", re.Code)
	assert.Equal(t, `The token "expired"  X-Forged: 1`, re.Description)
	assert.Equal(t, "POST https://x.example/api/x", re.Err.Error(), "no user info, query or fragment")
	assert.Equal(t, `erpnet auth: API request failed: HTTP 401: invalid_token (The token "expired"  X-Forged: 1): `+
		`POST https://x.example/api/x [reference token rejected (expired, revoked or unknown)]`, err.Error())

	err = reftoken.CheckResponse(mk(429, "Retry-After", "7"))
	require.ErrorAs(t, err, &re)
	assert.Equal(t, 7*time.Second, re.RetryAfter)
	assert.Contains(t, err.Error(), "retry after 7s [temporary failure]")

	err = reftoken.CheckResponse(mk(401, "WWW-Authenticate", `Bearer error=invalid_token, error_description=`+strings.Repeat("x", 500)))
	require.ErrorAs(t, err, &re)
	assert.Equal(t, "invalid_token", re.Code)
	assert.LessOrEqual(t, len(re.Description), 210)

	// No request: no Err.
	err = reftoken.CheckResponse(&http.Response{StatusCode: http.StatusForbidden})
	require.ErrorAs(t, err, &re)
	assert.Nil(t, re.Err)
	assert.ErrorIs(t, err, reftoken.ErrNotPermitted)
}

func TestHeaderString(t *testing.T) {
	assert.Equal(t, "Bearer", reftoken.Bearer.String())
	assert.Equal(t, "X-Api-Key", reftoken.APIKey.String())
	assert.Equal(t, "Bearer", reftoken.Header(0).String(), "the zero Header is Bearer")
	assert.Equal(t, "reftoken.Header(7)", reftoken.Header(7).String())
}

var errOffline = errors.New("offline")

// failing is a base RoundTripper that never reaches the network.
type failing struct{}

func (failing) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		req.Body.Close()
	}
	return nil, errOffline
}

// failingRecorder records what would be sent, then fails like failing.
type failingRecorder struct{ rec *recorder }

func (f failingRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	f.rec.mu.Lock()
	f.rec.reqs = append(f.rec.reqs, sent{Method: req.Method, URL: req.URL.String(), Header: req.Header.Clone(), UserInfo: req.URL.User != nil})
	f.rec.mu.Unlock()
	return failing{}.RoundTrip(req)
}

type closeTracker struct {
	io.Reader
	closed bool
}

func (c *closeTracker) Close() error { c.closed = true; return nil }

// TestResponseRequestIsCallers: the *http.Response a caller gets must point back to the
// caller's request, not to the transport's copy carrying the token in clear.
func TestResponseRequestIsCallers(t *testing.T) {
	e := newEnv(t, pat, erpnettest.Demo.Alice)
	c, _ := e.client(t, reftoken.Config{})
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, e.srv.URL()+customersPath, nil)
	resp, err := c.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Same(t, req, resp.Request)
	assert.NotContains(t, resp.Request.Header.Get("Authorization"), e.raw)
}
