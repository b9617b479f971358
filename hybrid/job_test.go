package hybrid_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/erpnetgo/auth/authcode"
	"github.com/erpnetgo/auth/erpnettest"
	"github.com/erpnetgo/auth/hybrid"
)

// auditRecords parses the JSON audit log.
func auditRecords(t *testing.T, s string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(s), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &m), line)
		out = append(out, m)
	}
	return out
}

// jobRecords returns the audit records of job, in order.
func jobRecords(t *testing.T, e *env, job string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, m := range auditRecords(t, e.audit.String()) {
		if m["job"] == job {
			out = append(out, m)
		}
	}
	return out
}

func TestRunAsServiceAuditsWhoDidWhat(t *testing.T) {
	e := newEnv(t, nil)
	alice := e.browser()
	alice.signIn(erpnettest.Demo.Alice)
	r := alice.do(http.MethodPost, e.srv.URL+"/import", nil)
	require.NoError(t, r.err)
	require.Equal(t, http.StatusOK, r.status, r.body)
	require.Equal(t, systemCaller, r.header.Get("X-Caller"), "the job ran as the System User")

	recs := jobRecords(t, e, "import")
	require.Len(t, recs, 2)
	start, end := recs[0], recs[1]
	assert.Equal(t, "hybrid: service job started", start["msg"])
	assert.Equal(t, "hybrid: service job finished", end["msg"])
	for _, m := range recs {
		assert.Equal(t, "user", m["trigger"])
		assert.Equal(t, erpnettest.Demo.Alice, m["triggered_by"], "who asked")
		assert.Equal(t, e.idp.Authority(), m["issuer"])
		assert.Equal(t, "system_user", m["acting_as"])
		assert.Equal(t, erpnettest.Demo.WebAppID, m["client_id"], "which System User did it")
		assert.NotEmpty(t, m["start"])
	}
	assert.Equal(t, start["run"], end["run"])
	assert.Len(t, start["run"], 16)
	assert.Equal(t, "ok", end["outcome"])
	assert.Contains(t, end, "duration")
	assert.NotContains(t, start, "outcome")

	svcTok, aliceTok := e.serviceToken(), alice.userToken()
	assert.NotContains(t, e.audit.String(), svcTok)
	assert.NotContains(t, e.audit.String(), aliceTok)
}

type probeKey struct{}

// TestRunAsServiceHidesTheUser: inside fn neither the user's UserAPI nor
// session (nor any other value of the request's context) is reachable;
// cancellation and the deadline are.
func TestRunAsServiceHidesTheUser(t *testing.T) {
	e := newEnv(t, nil)
	alice := e.browser()
	alice.signIn(erpnettest.Demo.Alice)

	var (
		userInCtx   bool
		sessInCtx   *authcode.Session
		valInCtx    any
		deadline    time.Time
		hasDeadline bool
		caller      string
		svcTok      string
		callerDL    time.Time
	)
	h := e.app.WithUser(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, ok := hybrid.UserFrom(r.Context())
		require.True(t, ok, "the handler itself has the user")
		ctx, cancel := context.WithTimeout(context.WithValue(r.Context(), probeKey{}, "request value"), time.Minute)
		defer cancel()
		callerDL, _ = ctx.Deadline()
		err := e.app.RunAsService(ctx, r, "probe", func(ctx context.Context, svc hybrid.ServiceAPI) error {
			_, userInCtx = hybrid.UserFrom(ctx)
			sessInCtx = authcode.SessionFromContext(ctx)
			valInCtx = ctx.Value(probeKey{})
			deadline, hasDeadline = ctx.Deadline()
			tok, err := svc.ServiceTokenSource().Token()
			if err != nil {
				return err
			}
			svcTok = tok.AccessToken
			caller, _, err = callAPI(ctx, svc.ServiceClient(), e.apiURL())
			return err
		})
		require.NoError(t, err)
	}))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httpRequestFor(alice))
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())

	assert.False(t, userInCtx, "no UserAPI inside the job")
	assert.Nil(t, sessInCtx, "no session inside the job")
	assert.Nil(t, valInCtx, "no request context values inside the job")
	assert.True(t, hasDeadline)
	assert.Equal(t, callerDL, deadline)
	assert.Equal(t, systemCaller, caller)
	assert.Equal(t, e.serviceToken(), svcTok)
	assert.NotEqual(t, alice.userToken(), svcTok)
}

func TestRunAsServiceFollowsCancellation(t *testing.T) {
	e := newEnv(t, nil)
	alice := e.browser()
	alice.signIn(erpnettest.Demo.Alice)
	ctx, cancel := context.WithCancel(t.Context())
	err := e.app.RunAsService(ctx, httpRequestFor(alice), "cancelled", func(ctx context.Context, _ hybrid.ServiceAPI) error {
		cancel()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Second):
			return errors.New("the job's context was not cancelled")
		}
	})
	assert.ErrorIs(t, err, context.Canceled)
	recs := jobRecords(t, e, "cancelled")
	require.Len(t, recs, 2)
	assert.Equal(t, "canceled", recs[1]["outcome"])

	// Already cancelled: fn sees it at once.
	err = e.app.RunAsService(ctx, httpRequestFor(alice), "cancelled", func(ctx context.Context, _ hybrid.ServiceAPI) error {
		return ctx.Err()
	})
	assert.ErrorIs(t, err, context.Canceled)
}

func TestRunAsServiceOutlivesTheRequest(t *testing.T) {
	e := newEnv(t, nil)
	alice := e.browser()
	alice.signIn(erpnettest.Demo.Alice)
	done := make(chan string, 1)
	h := e.app.WithUser(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		go func() {
			// net/http cancels the request's context when the handler
			// has returned.
			<-r.Context().Done()
			var caller string
			err := e.app.RunAsService(context.WithoutCancel(r.Context()), r, "later", func(ctx context.Context, svc hybrid.ServiceAPI) error {
				var err error
				caller, _, err = callAPI(ctx, svc.ServiceClient(), e.apiURL())
				return err
			})
			if err != nil {
				caller = err.Error()
			}
			done <- caller
		}()
		w.WriteHeader(http.StatusAccepted)
	}))
	srv := httptest.NewServer(h)
	defer srv.Close()
	req, _ := http.NewRequest(http.MethodPost, srv.URL, nil)
	for _, c := range httpRequestFor(alice).Cookies() {
		req.AddCookie(c)
	}
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusAccepted, resp.StatusCode)
	select {
	case c := <-done:
		assert.Equal(t, systemCaller, c)
	case <-time.After(10 * time.Second):
		t.Fatal("the job did not finish")
	}
	recs := jobRecords(t, e, "later")
	require.Len(t, recs, 2)
	assert.Equal(t, erpnettest.Demo.Alice, recs[1]["triggered_by"])
}

func TestRunAsServiceRefusesAnonymousRequests(t *testing.T) {
	e := newEnv(t, nil)
	called := false
	fn := func(context.Context, hybrid.ServiceAPI) error { called = true; return nil }
	err := e.app.RunAsService(t.Context(), httpRequestFor(e.browser()), "anon", fn)
	assert.ErrorIs(t, err, authcode.ErrNoSession)
	err = e.app.RunAsService(t.Context(), nil, "anon", fn)
	assert.ErrorIs(t, err, authcode.ErrNoSession)
	assert.False(t, called, "no System User work for anonymous requests")
	recs := jobRecords(t, e, "anon")
	require.Len(t, recs, 2)
	for _, m := range recs {
		assert.Equal(t, "hybrid: service job refused", m["msg"])
		assert.Equal(t, "WARN", m["level"])
	}
	assert.Zero(t, e.idp.Requests("token"), "no service token was fetched")
}

func TestRunAsServiceReportsErrorsAndPanics(t *testing.T) {
	e := newEnv(t, nil)
	alice := e.browser()
	alice.signIn(erpnettest.Demo.Alice)
	svcTok := e.serviceToken()

	boom := errors.New("import failed; token was " + svcTok)
	err := e.app.RunAsService(t.Context(), httpRequestFor(alice), "failing", func(context.Context, hybrid.ServiceAPI) error {
		return boom
	})
	assert.Same(t, boom, err, "fn's error is returned as is")
	recs := jobRecords(t, e, "failing")
	require.Len(t, recs, 2)
	assert.Equal(t, "error", recs[1]["outcome"])
	assert.Equal(t, "WARN", recs[1]["level"])
	assert.Equal(t, "import failed; token was [REDACTED]", recs[1]["error"], "a token in the job's error is scrubbed")

	func() {
		defer func() { assert.Equal(t, "kaboom", recover()) }()
		_ = e.app.RunAsService(t.Context(), httpRequestFor(alice), "panicking", func(context.Context, hybrid.ServiceAPI) error {
			panic("kaboom")
		})
	}()
	recs = jobRecords(t, e, "panicking")
	require.Len(t, recs, 2)
	assert.Equal(t, "panic", recs[1]["outcome"])
	assert.Equal(t, "ERROR", recs[1]["level"])
	assert.NotContains(t, e.audit.String(), svcTok)
}

func TestRunBackgroundAudit(t *testing.T) {
	e := newEnv(t, nil)
	var caller string
	err := e.app.RunBackground(t.Context(), "nightly", func(ctx context.Context, svc hybrid.ServiceAPI) error {
		var err error
		caller, _, err = callAPI(ctx, svc.ServiceClient(), e.apiURL())
		return err
	})
	require.NoError(t, err)
	assert.Equal(t, systemCaller, caller)
	recs := jobRecords(t, e, "nightly")
	require.Len(t, recs, 2)
	for _, m := range recs {
		assert.Equal(t, "background", m["trigger"])
		assert.NotContains(t, m, "triggered_by")
		assert.Equal(t, erpnettest.Demo.WebAppID, m["client_id"])
	}
	assert.Equal(t, "ok", recs[1]["outcome"])
}
