package clientcreds_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"golang.org/x/oauth2"

	"github.com/erpnetgo/auth"
	"github.com/erpnetgo/auth/clientcreds"
	"github.com/erpnetgo/auth/erpnettest"
	"github.com/erpnetgo/auth/internal/erpnetctl"
	"github.com/erpnetgo/auth/internal/testutil"
)

func TestMain(m *testing.M) { testutil.VerifyNoLeaks(m) }

// fast retries keep the tests quick; the policy itself is tested in internal/retry.
var fast = auth.Retry{Base: 5 * time.Millisecond, Cap: 20 * time.Millisecond}

func workerConfig(s *erpnettest.Server) clientcreds.Config {
	return clientcreds.Config{
		Authority:    s.Authority(),
		ClientID:     erpnettest.Demo.WorkerID,
		ClientSecret: erpnettest.Demo.WorkerSecret,
		Scopes:       []string{"read", "update"},
		Retry:        fast,
	}
}

func newSource(t *testing.T, cfg clientcreds.Config) *clientcreds.Source {
	t.Helper()
	src, err := clientcreds.New(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { src.Close() })
	return src
}

func TestConfigValidationNamesFieldAndHidesSecret(t *testing.T) {
	const secret = "s3cr3t-do-not-print"
	ok := clientcreds.Config{Authority: "https://demodb.my.erp.net", ClientID: "com.example/x", ClientSecret: secret}
	_, err := clientcreds.New(ok)
	require.NoError(t, err)
	cases := []struct {
		field string
		edit  func(*clientcreds.Config)
	}{
		{"Authority", func(c *clientcreds.Config) { c.Authority = "" }},
		{"Authority", func(c *clientcreds.Config) { c.Authority = "demodb.my.erp.net" }},
		{"Authority", func(c *clientcreds.Config) { c.Authority = "http://demodb.my.erp.net" }},
		{"Authority", func(c *clientcreds.Config) { c.Authority = "https://demodb.my.erp.net/?x=" + secret }},
		{"ClientID", func(c *clientcreds.Config) { c.ClientID = "" }},
		{"ClientSecret", func(c *clientcreds.Config) { c.ClientSecret = "" }},
		{"ClientSecret", func(c *clientcreds.Config) { c.ClientSecret = secret + "\n" }},
		{"Scopes[1]", func(c *clientcreds.Config) { c.Scopes = []string{"read", "up date"} }},
		{"RefreshWindow", func(c *clientcreds.Config) { c.RefreshWindow = -time.Second }},
		{"DomainAPI", func(c *clientcreds.Config) { c.DomainAPI = "http://demodb.my.erp.net/api/domain/odata/" }},
		{"AuthStyle", func(c *clientcreds.Config) { c.AuthStyle = 7 }},
	}
	for _, tc := range cases {
		cfg := ok
		tc.edit(&cfg)
		_, err := clientcreds.New(cfg)
		require.Error(t, err, tc.field)
		var ce *auth.ConfigError
		require.ErrorAs(t, err, &ce)
		assert.Equal(t, tc.field, ce.Field)
		assert.ErrorIs(t, err, auth.ErrMisconfigured)
		assert.NotContains(t, err.Error(), secret)
	}
}

func TestConfigFromEnv(t *testing.T) {
	t.Setenv("ERPNET_AUTHORITY", "https://demodb.my.erp.net/id")
	t.Setenv("ERPNET_CLIENT_ID", "com.example/worker")
	t.Setenv("ERPNET_CLIENT_SECRET", "")
	t.Setenv("ERPNET_SCOPES", "read, update")
	_, err := clientcreds.ConfigFromEnv()
	require.ErrorContains(t, err, "ERPNET_CLIENT_SECRET")
	t.Setenv("ERPNET_CLIENT_SECRET", "top:secret\n")
	cfg, err := clientcreds.ConfigFromEnv()
	require.NoError(t, err)
	assert.Equal(t, []string{"read", "update"}, cfg.Scopes)
	assert.Equal(t, "top:secret", cfg.ClientSecret)
	_, err = clientcreds.New(cfg)
	assert.NoError(t, err)
}

func TestNewDoesNoNetworkIO(t *testing.T) {
	s := erpnettest.NewServer(t)
	newSource(t, workerConfig(s))
	for _, ep := range []string{"discovery", "autodiscovery", "token"} {
		assert.Zero(t, s.Requests(ep))
	}
}

// recorder records how client credentials travelled.
type recorder struct {
	basic, form atomic.Int32
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	if strings.HasSuffix(req.URL.Path, "/connect/token") {
		if _, _, ok := req.BasicAuth(); ok {
			r.basic.Add(1)
		}
		if req.Body != nil {
			b, _ := io.ReadAll(req.Body)
			if strings.Contains(string(b), "client_secret=") {
				r.form.Add(1)
			}
			req.Body = io.NopCloser(strings.NewReader(string(b)))
		}
	}
	return http.DefaultTransport.RoundTrip(req)
}

func TestClientAuthenticationStylesWithSpecialCharacters(t *testing.T) {
	for _, tc := range []struct {
		name        string
		advertised  []string
		style       oauth2.AuthStyle
		basic, form int32
	}{
		{"auto picks basic", nil, oauth2.AuthStyleAutoDetect, 1, 0},
		{"auto picks form when only post is listed", []string{"client_secret_post"}, oauth2.AuthStyleAutoDetect, 0, 1},
		{"forced basic", []string{"client_secret_post"}, oauth2.AuthStyleInHeader, 1, 0},
		{"forced form", nil, oauth2.AuthStyleInParams, 0, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := erpnettest.NewServer(t)
			erpnetctl.Of(s).Set(erpnetctl.Knobs{AuthMethods: tc.advertised})
			rec := &recorder{}
			cc := workerConfig(s)
			cc.AuthStyle = tc.style
			cc.HTTPClient = &http.Client{Transport: rec}
			src := newSource(t, cc)
			tok, err := src.Token(context.Background())
			require.NoError(t, err)
			assert.Equal(t, "Bearer", tok.TokenType)
			assert.Equal(t, tc.basic, rec.basic.Load())
			assert.Equal(t, tc.form, rec.form.Load())
			assert.Contains(t, erpnettest.Demo.WorkerSecret, "%")
			assert.Contains(t, erpnettest.Demo.WorkerID, "/")
		})
	}
}

func TestAuthorityAsInstanceRootUsesAutoDiscovery(t *testing.T) {
	s := erpnettest.NewServer(t)
	cfg := workerConfig(s)
	cfg.Authority = s.URL() + "/"
	src := newSource(t, cfg)
	_, err := src.Token(context.Background())
	require.NoError(t, err)
	assert.Equal(t, 1, s.Requests("autodiscovery"))
}

func TestColdCacheThousandGoroutinesOneRequest(t *testing.T) {
	s := erpnettest.NewServer(t)
	s.InjectFault("token", erpnettest.Fault{Latency: 200 * time.Millisecond})
	src := newSource(t, workerConfig(s))
	var wg sync.WaitGroup
	tokens := make([]string, 1000)
	for i := range tokens {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tok, err := src.Token(context.Background())
			if assert.NoError(t, err) {
				tokens[i] = tok.AccessToken
			}
		}()
	}
	wg.Wait()
	assert.Equal(t, 1, erpnetctl.Of(s).Grants("client_credentials"))
	for _, tk := range tokens {
		require.Equal(t, tokens[0], tk)
	}
}

func TestRefreshWindowThousandGoroutinesNobodyWaits(t *testing.T) {
	s := erpnettest.NewServer(t)
	cfg := workerConfig(s)
	// A one-hour token whose refresh window opens 300 ms after it is issued.
	cfg.RefreshWindow = time.Hour - 300*time.Millisecond
	src := newSource(t, cfg)
	first, err := src.Token(context.Background())
	require.NoError(t, err)
	time.Sleep(350 * time.Millisecond)
	// Hold the background refresh on the server so we can see nobody waits.
	release := 3 * time.Second
	s.InjectFault("token", erpnettest.Fault{Latency: release})
	start := time.Now()
	var wg sync.WaitGroup
	var newer atomic.Int32
	for i := 0; i < 1000; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 20; j++ {
				tok, err := src.Token(context.Background())
				if !assert.NoError(t, err) {
					return
				}
				if tok.AccessToken != first.AccessToken {
					newer.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if time.Since(start) >= release {
		t.Skip("machine too slow to tell waiting from not waiting")
	}
	// Every call finished while the refresh was still held: none waited on it.
	assert.Zero(t, newer.Load())
	// The held refresh reaches the server's counter asynchronously.
	require.Eventually(t, func() bool { return erpnetctl.Of(s).Grants("client_credentials") >= 2 }, 5*time.Second, 5*time.Millisecond)
	require.Eventually(t, func() bool {
		tok, err := src.Token(context.Background())
		return err == nil && tok.AccessToken != first.AccessToken
	}, 10*time.Second, 20*time.Millisecond)
	assert.Equal(t, 2, erpnetctl.Of(s).Grants("client_credentials"), "one initial and exactly one background refresh")
}

func TestTransientFailuresRecover(t *testing.T) {
	for _, tc := range []struct {
		name     string
		faults   []erpnettest.Fault
		attempts int
		minWait  time.Duration
	}{
		{"500 then ok", []erpnettest.Fault{{Status: 500}}, 2, 0},
		{"503 503 then ok", []erpnettest.Fault{{Status: 503}, {Status: 503}}, 3, 0},
		{"429 Retry-After 1", []erpnettest.Fault{{Status: 429, RetryAfter: time.Second}}, 2, time.Second},
		{"dropped connection", []erpnettest.Fault{{Drop: true}}, 2, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := erpnettest.NewServer(t)
			src := newSource(t, workerConfig(s))
			for _, f := range tc.faults {
				s.InjectFault("token", f)
			}
			start := time.Now()
			_, err := src.Token(context.Background())
			require.NoError(t, err)
			assert.Equal(t, tc.attempts, erpnetctl.Of(s).Grants("client_credentials"), "the dev server counts every attempt, dropped ones included")
			assert.GreaterOrEqual(t, time.Since(start), tc.minWait, "Retry-After must be honoured")
		})
	}
}

func TestPersistentOutageIsTemporaryAfterRetries(t *testing.T) {
	s := erpnettest.NewServer(t)
	src := newSource(t, workerConfig(s))
	s.InjectFault("token", erpnettest.Fault{Status: 503, Times: 5})
	_, err := src.Token(context.Background())
	require.ErrorIs(t, err, auth.ErrTemporary)
	var e *auth.Error
	require.ErrorAs(t, err, &e)
	assert.Equal(t, 503, e.StatusCode)
	assert.Equal(t, 4, e.Attempts)
	assert.Equal(t, 4, erpnetctl.Of(s).Grants("client_credentials"))
}

func TestMisconfigurationIsNeverRetried(t *testing.T) {
	s := erpnettest.NewServer(t, erpnettest.Config{Apps: []erpnettest.App{{ID: "com.example/nosystem", Secret: "nosystem-secret"}}})
	for _, tc := range []struct {
		name, id, secret, code string
		scopes                 []string
	}{
		{"wrong secret", erpnettest.Demo.WorkerID, "wrong-secret-value", "invalid_client", nil},
		{"unknown client", "com.example/nobody", "whatever-secret", "invalid_client", nil},
		{"no system user", "com.example/nosystem", "nosystem-secret", "unauthorized_client", nil},
		{"scope not allowed", erpnettest.Demo.WorkerID, erpnettest.Demo.WorkerSecret, "invalid_scope", []string{"sec"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			erpnetctl.Of(s).ResetCounts()
			src := newSource(t, clientcreds.Config{Authority: s.Authority(), ClientID: tc.id, ClientSecret: tc.secret, Scopes: tc.scopes, Retry: fast})
			_, err := src.Token(context.Background())
			require.ErrorIs(t, err, auth.ErrMisconfigured)
			var e *auth.Error
			require.ErrorAs(t, err, &e)
			assert.Equal(t, tc.code, e.Code)
			assert.Equal(t, 1, erpnetctl.Of(s).Grants("client_credentials"), "must not retry")
			assert.NotContains(t, err.Error(), tc.secret)
		})
	}
}

// TestGarbageAndOversizedResponses: a 200 from the token endpoint that is
// malformed, oversized or empty is a temporary failure, retried as
// Config.Retry allows (a client_credentials request redeems nothing, so
// sending it again is safe), and reported as ErrTemporary once the attempts
// are spent (issue 23: it failed after one attempt whatever Retry said).
func TestGarbageAndOversizedResponses(t *testing.T) {
	for _, body := range []erpnettest.Fault{{Malformed: true}, {Oversized: true}, {Empty: true}} {
		body.Times = 2
		s := erpnettest.NewServer(t)
		cfg := workerConfig(s)
		cfg.Retry.Attempts = 3
		src := newSource(t, cfg)
		s.InjectFault("token", body)
		_, err := src.Token(context.Background())
		require.NoError(t, err, "two unusable answers, then a good one, within 3 attempts")
		assert.Equal(t, 3, erpnetctl.Of(s).Grants("client_credentials"))

		s2 := erpnettest.NewServer(t)
		cfg = workerConfig(s2)
		cfg.Retry.Attempts = 2
		src = newSource(t, cfg)
		s2.InjectFault("token", body)
		_, err = src.Token(context.Background())
		require.Error(t, err)
		assert.ErrorIs(t, err, auth.ErrTemporary)
		assert.NotErrorIs(t, err, auth.ErrMisconfigured)
		assert.Less(t, len(err.Error()), 400, "error must be short: %s", err)
		assert.Contains(t, err.Error(), "after 2 attempts")
		assert.Equal(t, 2, erpnetctl.Of(s2).Grants("client_credentials"))
		// The next call recovers.
		_, err = src.Token(context.Background())
		require.NoError(t, err)
	}
}

func TestCancelledContextReturnsPromptly(t *testing.T) {
	s := erpnettest.NewServer(t)
	src := newSource(t, workerConfig(s))
	s.InjectFault("token", erpnettest.Fault{Latency: 5 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() { _, err := src.Token(ctx); done <- err }()
	select {
	case err := <-done:
		require.ErrorIs(t, err, context.DeadlineExceeded)
	case <-time.After(3 * time.Second):
		t.Fatal("Token did not return when its context ended")
	}
	// An already-cancelled context never starts a request.
	s2 := erpnettest.NewServer(t)
	src2 := newSource(t, workerConfig(s2))
	ctx2, cancel2 := context.WithCancel(context.Background())
	cancel2()
	_, err := src2.Token(ctx2)
	require.ErrorIs(t, err, context.Canceled)
	assert.Zero(t, erpnetctl.Of(s2).Grants("client_credentials"))
}

func TestInvalidateForcesFetch(t *testing.T) {
	s := erpnettest.NewServer(t)
	src := newSource(t, workerConfig(s))
	a, err := src.Token(context.Background())
	require.NoError(t, err)
	b, _ := src.Token(context.Background())
	assert.Same(t, a, b)
	src.Invalidate()
	c, err := src.Token(context.Background())
	require.NoError(t, err)
	assert.NotEqual(t, a.AccessToken, c.AccessToken)
	assert.Equal(t, 2, erpnetctl.Of(s).Grants("client_credentials"))
}

func TestClientCallsDomainAPIAndRetries401Once(t *testing.T) {
	s := erpnettest.NewServer(t)
	src := newSource(t, workerConfig(s))
	hc := src.Client(context.Background())
	api := s.URL() + "/api/domain/odata/Crm_Sales_Customers"
	resp, err := hc.Get(api)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode)
	assert.Equal(t, "system:worker-system", resp.Header.Get("X-Erpnet-Caller"))

	// The server's clock jumps past expiry: the API answers 401 to the
	// cached token, the transport fetches a new one and retries once.
	s.Advance(2 * time.Hour)
	resp, err = hc.Get(api)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, 200, resp.StatusCode)
	assert.Equal(t, 2, erpnetctl.Of(s).Grants("client_credentials"))

	// A body that cannot be replayed is not retried: the 401 comes back.
	s.Advance(2 * time.Hour)
	req, _ := http.NewRequest(http.MethodPost, api, io.NopCloser(strings.NewReader(`{"Name":"x"}`)))
	resp, err = hc.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, 401, resp.StatusCode)
	// ...while a replayable one is.
	req, _ = http.NewRequest(http.MethodPost, api, strings.NewReader(`{"Name":"x"}`))
	resp, err = hc.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, 201, resp.StatusCode)
}

func TestClientNeverRetries403(t *testing.T) {
	s := erpnettest.NewServer(t)
	cfg := workerConfig(s)
	cfg.Scopes = []string{"read"} // no update: writes are forbidden
	src := newSource(t, cfg)
	req, _ := http.NewRequest(http.MethodPost, s.URL()+"/api/domain/odata/Crm_Sales_Customers", strings.NewReader(`{}`))
	resp, err := src.Client(context.Background()).Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, 403, resp.StatusCode)
	assert.Equal(t, 1, erpnetctl.Of(s).Grants("client_credentials"))
	assert.Equal(t, 1, s.Requests("domainapi"))
}

func TestOAuth2TokenSourceInterop(t *testing.T) {
	s := erpnettest.NewServer(t)
	src := newSource(t, workerConfig(s))
	ctx := context.Background()
	hc := oauth2.NewClient(ctx, src.TokenSource(ctx))
	resp, err := hc.Get(s.URL() + "/api/domain/odata/Crm_Sales_Customers")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, 200, resp.StatusCode)
}

func TestCloseStopsBackgroundWork(t *testing.T) {
	s := erpnettest.NewServer(t)
	cfg := workerConfig(s)
	cfg.RefreshWindow = time.Hour - time.Millisecond
	src, err := clientcreds.New(cfg)
	require.NoError(t, err)
	_, err = src.Token(context.Background())
	require.NoError(t, err)
	s.InjectFault("token", erpnettest.Fault{Latency: 10 * time.Second})
	time.Sleep(5 * time.Millisecond)
	src.Token(context.Background()) // starts a background refresh held by the server
	done := make(chan struct{})
	go func() { src.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		t.Fatal("Close did not stop the background refresh")
	}
	// goleak in TestMain checks that nothing outlived Close.
}

func TestErrorsNeverContainSecret(t *testing.T) {
	s := erpnettest.NewServer(t)
	secret := erpnettest.Demo.WorkerSecret + "-wrong"
	src := newSource(t, clientcreds.Config{Authority: s.Authority(), ClientID: erpnettest.Demo.WorkerID, ClientSecret: secret, Retry: fast})
	_, err := src.Token(context.Background())
	require.Error(t, err)
	for _, out := range []string{err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err)} {
		assert.NotContains(t, out, secret)
	}
	if !errors.Is(err, auth.ErrMisconfigured) {
		t.Fatalf("err = %v", err)
	}
}

// TestCloseEndsHungTokenRequest proves with goleak that Close ends a token
// request to an identity server that never answers (and an HTTP client
// without a timeout): nothing the Source started is left afterwards.
func TestCloseEndsHungTokenRequest(t *testing.T) {
	release, entered := make(chan struct{}), make(chan struct{}, 1)
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/id/.well-known/openid-configuration":
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(map[string]any{"issuer": srv.URL + "/id", "token_endpoint": srv.URL + "/id/connect/token"})
		case "/id/connect/token":
			hungTokenEndpoint(entered, release)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) }) // first: the test has ended

	tr := &http.Transport{}
	src, err := clientcreds.New(clientcreds.Config{Authority: srv.URL + "/id", ClientID: "worker", ClientSecret: "s3cret",
		HTTPClient: &http.Client{Transport: tr}, Retry: fast})
	require.NoError(t, err)
	before := goleak.IgnoreCurrent()
	done := make(chan error, 1)
	go func() {
		_, err := src.Token(context.Background())
		done <- err
	}()
	select {
	case <-entered:
	case err := <-done:
		t.Fatal("the token request ended before reaching the server:", err)
	}
	require.NoError(t, src.Close())
	select {
	case err := <-done:
		require.Error(t, err)
	case <-time.After(time.Minute): // a guard against hanging the suite, not a measurement
		t.Fatal("Token still running a minute after Close")
	}
	tr.CloseIdleConnections()
	err = testutil.FindLeaks(before, goleak.IgnoreAnyFunction("github.com/erpnetgo/auth/clientcreds_test.hungTokenEndpoint"))
	require.NoError(t, err, "goroutines outlived Source.Close")
}

// hungTokenEndpoint is a token endpoint that never answers: it blocks until
// the test ends, whether or not the client is still there.
func hungTokenEndpoint(entered, release chan struct{}) {
	select {
	case entered <- struct{}{}:
	default:
	}
	<-release
}
