// These tests run the SDK's packages against erpnettest with the Hooks of
// otelauth.New in their Config, and assert on what reaches OpenTelemetry.
// (Build tag integration_hooks until every Config has its Hooks field.)

package otelauth_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/codes"

	"github.com/erpnetgo/auth"
	"github.com/erpnetgo/auth/authcode"
	"github.com/erpnetgo/auth/clientcreds"
	"github.com/erpnetgo/auth/erpnettest"
	"github.com/erpnetgo/auth/reftoken"
)

const (
	workerAttrs = "erpnet.auth.client_id=com.example/worker,erpnet.auth.flow=clientcreds"
	webAttrs    = "erpnet.auth.client_id=com.example/webapp,erpnet.auth.flow=authcode"
)

func newWorker(t *testing.T, srv *erpnettest.Server, tm *telemetry, retry auth.Retry) *clientcreds.Source {
	t.Helper()
	src, err := clientcreds.New(clientcreds.Config{
		Authority:    srv.URL(),
		ClientID:     erpnettest.Demo.WorkerID,
		ClientSecret: erpnettest.Demo.WorkerSecret,
		Retry:        retry,
		Hooks:        tm.hooks,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	return src
}

// get makes a GET through c and returns its status (or the error).
func get(c *http.Client, url string) (int, error) {
	resp, err := c.Get(url)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

// count counts name among names.
func count(names []string, name string) int {
	n := 0
	for _, s := range names {
		if s == name {
			n++
		}
	}
	return n
}

// noErrorSpans fails the test for every span with status Error.
func noErrorSpans(t *testing.T, tm *telemetry) {
	t.Helper()
	for _, s := range tm.spans.Ended() {
		if s.Status().Code == codes.Error {
			t.Errorf("span %s: status %v", s.Name(), s.Status())
		}
	}
}

// noSecrets fails the test if any of secrets appears in the telemetry.
func noSecrets(t *testing.T, tm *telemetry, secrets ...string) {
	t.Helper()
	all := tm.everything()
	for _, s := range secrets {
		if s != "" && strings.Contains(all, s) {
			t.Errorf("a secret reached the telemetry:\n%s", all)
		}
	}
}

// A worker's run: N API calls make one token request, N-1 or N cache hits
// and one ERP.net session.
func TestIntegrationWorkerRun(t *testing.T) {
	const calls = 5
	srv := erpnettest.NewServer(t)
	tm := newTelemetry(t, false)
	src := newWorker(t, srv, tm, auth.Retry{})
	ctx := context.Background()
	client := src.Client(ctx)
	for i := range calls {
		if st, err := get(client, srv.DomainAPI()+"Crm_Sales_Customers"); err != nil || st != http.StatusOK {
			t.Fatalf("call %d: %d %v", i, st, err)
		}
	}

	if got, want := tm.counts("erpnet.auth.token.requests"),
		map[string]int64{workerAttrs + ",erpnet.auth.grant=client_credentials,erpnet.auth.outcome=issued": 1}; !reflect.DeepEqual(got, want) {
		t.Errorf("token requests %v, want %v", got, want)
	}
	if got := tm.points("erpnet.auth.token.request.retries"); got != nil {
		t.Errorf("token retries %v, want none", got)
	}
	hits := tm.counts("erpnet.auth.token.cache_hits")
	if len(hits) != 1 || (hits[workerAttrs] != calls-1 && hits[workerAttrs] != calls) {
		t.Errorf("cache hits %v, want %d or %d with %s", hits, calls-1, calls, workerAttrs)
	}
	if got, want := tm.counts("erpnet.auth.api.sessions_opened"), map[string]int64{workerAttrs: 1}; !reflect.DeepEqual(got, want) {
		t.Errorf("sessions opened %v, want %v", got, want)
	}
	if n := srv.SessionsOpened(); n != 1 {
		t.Errorf("the server opened %d sessions, want 1", n)
	}
	if n := tm.total("erpnet.auth.token.wait.duration"); n > 1 {
		t.Errorf("%d waits for a token, want at most 1 (the cold start)", n)
	}
	for _, name := range []string{"erpnet.auth.api.backoffs", "erpnet.auth.api.unauthorized_retries", "erpnet.auth.signins", "erpnet.auth.reauth_required"} {
		if got := tm.points(name); got != nil {
			t.Errorf("%s: %v, want none", name, got)
		}
	}
	names := tm.spanNames()
	if count(names, "erpnet.auth token") != 1 || count(names, "erpnet.auth discovery") < 1 {
		t.Errorf("spans %q, want one token call and discovery", names)
	}
	noErrorSpans(t, tm)

	tok, err := src.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	noSecrets(t, tm, erpnettest.Demo.WorkerSecret, tok.AccessToken)
}

// webApp is an authcode app on httptest: /me calls the Domain API as the
// signed-in user and remembers the session.
type webApp struct {
	ts *httptest.Server
	c  *authcode.Client

	mu      sync.Mutex
	session *authcode.Session
}

func newWebApp(t *testing.T, srv *erpnettest.Server, tm *telemetry) *webApp {
	t.Helper()
	mux := http.NewServeMux()
	a := &webApp{ts: httptest.NewServer(mux)}
	t.Cleanup(a.ts.Close)
	c, err := authcode.New(authcode.Config{
		Authority:    srv.URL(),
		ClientID:     erpnettest.Demo.WebAppID,
		ClientSecret: erpnettest.Demo.WebAppSecret,
		RedirectURL:  a.ts.URL + "/callback",
		Hooks:        tm.hooks,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	a.c = c
	mux.Handle("/signin", c.SignIn())
	mux.Handle("/callback", c.Callback())
	mux.Handle("/me", c.RequireUser(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := authcode.SessionFromContext(r.Context())
		a.mu.Lock()
		a.session = s
		a.mu.Unlock()
		st, err := get(c.UserClient(r.Context(), s), srv.DomainAPI()+"General_Contacts")
		if err != nil || st != http.StatusOK {
			http.Error(w, fmt.Sprintf("API: %d %v", st, err), http.StatusBadGateway)
			return
		}
		fmt.Fprint(w, "ok")
	})))
	return a
}

func (a *webApp) me(t *testing.T, browser *http.Client) {
	t.Helper()
	if st, err := get(browser, a.ts.URL+"/me"); err != nil || st != http.StatusOK {
		t.Fatalf("GET /me: %d %v", st, err)
	}
}

func (a *webApp) current() *authcode.Session {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.session
}

// A user signs in, the token is refreshed, the user signs out: one sign-in,
// an authorization_code and a refresh_token request, one ERP.net session
// (the sign-in's), one sign-out with a revocation call; the user
// appears only with IncludeUser.
func TestIntegrationSignInRefreshSignOut(t *testing.T) {
	for _, include := range []bool{false, true} {
		t.Run(fmt.Sprintf("IncludeUser=%v", include), func(t *testing.T) {
			srv := erpnettest.NewServer(t)
			tm := newTelemetry(t, include)
			app := newWebApp(t, srv, tm)
			browser, err := srv.SignIn(app.ts.URL+"/signin", erpnettest.Demo.Bob)
			if err != nil {
				t.Fatal(err)
			}
			app.me(t, browser)
			s := app.current()
			app.c.Invalidate(s)
			app.me(t, browser)
			if err := app.c.SignOutSession(context.Background(), s); err != nil {
				t.Fatal(err)
			}

			user := ""
			if include {
				user = "enduser.id=bob," // attribute keys sort first
			}
			if got, want := tm.counts("erpnet.auth.signins"),
				map[string]int64{user + webAttrs + ",erpnet.auth.outcome=completed": 1}; !reflect.DeepEqual(got, want) {
				t.Errorf("sign-ins %v, want %v", got, want)
			}
			if got, want := tm.counts("erpnet.auth.token.requests"), map[string]int64{
				webAttrs + ",erpnet.auth.grant=authorization_code,erpnet.auth.outcome=issued": 1,
				webAttrs + ",erpnet.auth.grant=refresh_token,erpnet.auth.outcome=issued":      1,
			}; !reflect.DeepEqual(got, want) {
				t.Errorf("token requests %v, want %v", got, want)
			}
			// ERP.net keys a user's API session by the sign-in, so the
			// refreshed token goes on in the session the first one opened:
			// the metric must count what the server opened (one license).
			if n := srv.SessionsOpened(); n != 1 {
				t.Fatalf("the server opened %d sessions, want 1 (one sign-in)", n)
			}
			if got, want := tm.counts("erpnet.auth.api.sessions_opened"), map[string]int64{webAttrs: 1}; !reflect.DeepEqual(got, want) {
				t.Errorf("sessions opened %v, want %v (as many as the server opened)", got, want)
			}
			if got, want := tm.counts("erpnet.auth.signouts"), map[string]int64{user + webAttrs: 1}; !reflect.DeepEqual(got, want) {
				t.Errorf("sign-outs %v, want %v", got, want)
			}
			if got := tm.points("erpnet.auth.reauth_required"); got != nil {
				t.Errorf("reauth required %v, want none", got)
			}
			names := tm.spanNames()
			if count(names, "erpnet.auth token") != 2 || count(names, "erpnet.auth revocation") != 1 || count(names, "erpnet.auth discovery") < 1 {
				t.Errorf("spans %q, want two token calls, one revocation, discovery", names)
			}
			noErrorSpans(t, tm)
			all := tm.everything()
			if has := strings.Contains(all, "bob"); has != include {
				t.Errorf("user in the telemetry: %v, want %v:\n%s", has, include, all)
			}
			noSecrets(t, tm, erpnettest.Demo.WebAppSecret, erpnettest.Demo.BobPassword)
		})
	}
}

// A password change kills the refresh token: the refresh fails as reauth,
// and the session reports re-authentication required.
func TestIntegrationReauthRequired(t *testing.T) {
	srv := erpnettest.NewServer(t)
	tm := newTelemetry(t, false)
	app := newWebApp(t, srv, tm)
	browser, err := srv.SignIn(app.ts.URL+"/signin", erpnettest.Demo.Alice)
	if err != nil {
		t.Fatal(err)
	}
	app.me(t, browser)
	s := app.current()
	srv.RevokeUser(erpnettest.Demo.Alice)
	app.c.Invalidate(s)
	_, err = app.c.TokenSource(context.Background(), s).Token()
	if !errors.Is(err, auth.ErrReauthRequired) {
		t.Fatalf("Token after RevokeUser: %v, want ErrReauthRequired", err)
	}
	if got := tm.counts("erpnet.auth.reauth_required"); len(got) != 1 || got[webAttrs+",error.type=reauth"] != 1 {
		t.Errorf("reauth required %v, want 1 with %s,error.type=reauth", got, webAttrs)
	}
	failed := 0
	for attrs, n := range tm.counts("erpnet.auth.token.requests") {
		if strings.Contains(attrs, "erpnet.auth.outcome=failed") {
			if !strings.Contains(attrs, "erpnet.auth.grant=refresh_token") || !strings.Contains(attrs, "error.type=reauth") {
				t.Errorf("failed token request {%s}, want a refresh_token request failed as reauth", attrs)
			}
			failed += int(n)
		}
	}
	if failed != 1 {
		t.Errorf("%d failed token requests, want 1", failed)
	}
	if strings.Contains(tm.everything(), "alice") {
		t.Error("the user reached the telemetry without IncludeUser")
	}
}

// An outage: three 503s inside one token request are retried (one issued
// token, Attempts 4: three retries); a 429 from the API is backed off.
func TestIntegrationOutageWithRetries(t *testing.T) {
	srv := erpnettest.NewServer(t)
	tm := newTelemetry(t, false)
	src := newWorker(t, srv, tm, auth.Retry{Attempts: 5, Base: time.Millisecond, Cap: 5 * time.Millisecond})
	srv.InjectFault("token", erpnettest.Fault{Status: http.StatusServiceUnavailable, Times: 3})
	srv.InjectFault("domainapi", erpnettest.Fault{Status: http.StatusTooManyRequests, Times: 1})
	if st, err := get(src.Client(context.Background()), srv.DomainAPI()+"Crm_Sales_Customers"); err != nil || st != http.StatusOK {
		t.Fatalf("API call: %d %v", st, err)
	}
	if n := srv.Requests("token"); n != 4 {
		t.Fatalf("the server saw %d token requests, want 4", n)
	}

	issued := workerAttrs + ",erpnet.auth.grant=client_credentials,erpnet.auth.outcome=issued"
	if got, want := tm.counts("erpnet.auth.token.requests"), map[string]int64{issued: 1}; !reflect.DeepEqual(got, want) {
		t.Errorf("token requests %v, want %v", got, want)
	}
	if got, want := tm.counts("erpnet.auth.token.request.retries"), map[string]int64{issued: 3}; !reflect.DeepEqual(got, want) {
		t.Errorf("token retries %v, want %v", got, want)
	}
	if got, want := tm.counts("erpnet.auth.api.backoffs"), map[string]int64{workerAttrs + ",http.response.status_code=429": 1}; !reflect.DeepEqual(got, want) {
		t.Errorf("API backoffs %v, want %v", got, want)
	}
	if got, want := tm.counts("erpnet.auth.api.sessions_opened"), map[string]int64{workerAttrs: 1}; !reflect.DeepEqual(got, want) {
		t.Errorf("sessions opened %v, want %v", got, want)
	}
	if names := tm.spanNames(); count(names, "erpnet.auth token") != 1 {
		t.Errorf("spans %q, want one token call (its retries inside it)", names)
	}
	noErrorSpans(t, tm)
}

// An outage longer than the retries: the token request fails as temporary
// (with the status and the retry count), and the span says so; the next
// request succeeds.
func TestIntegrationOutageFails(t *testing.T) {
	srv := erpnettest.NewServer(t)
	tm := newTelemetry(t, false)
	src := newWorker(t, srv, tm, auth.Retry{Attempts: 2, Base: time.Millisecond, Cap: 5 * time.Millisecond})
	srv.InjectFault("token", erpnettest.Fault{Status: http.StatusServiceUnavailable, Times: 2})
	ctx := context.Background()
	if _, err := src.Token(ctx); !errors.Is(err, auth.ErrTemporary) {
		t.Fatalf("Token during the outage: %v, want ErrTemporary", err)
	}
	if _, err := src.Token(ctx); err != nil {
		t.Fatalf("Token after the outage: %v", err)
	}
	grant := workerAttrs + ",erpnet.auth.grant=client_credentials"
	failed := grant + ",erpnet.auth.outcome=failed,error.type=temporary,http.response.status_code=503"
	if got, want := tm.counts("erpnet.auth.token.requests"), map[string]int64{failed: 1, grant + ",erpnet.auth.outcome=issued": 1}; !reflect.DeepEqual(got, want) {
		t.Errorf("token requests %v, want %v", got, want)
	}
	if got, want := tm.counts("erpnet.auth.token.request.retries"), map[string]int64{failed: 1}; !reflect.DeepEqual(got, want) {
		t.Errorf("token retries %v, want %v", got, want)
	}
	var errSpans []string
	for _, s := range tm.spans.Ended() {
		if s.Status().Code == codes.Error {
			errSpans = append(errSpans, s.Name()+": "+s.Status().Description)
		}
	}
	if want := []string{"erpnet.auth token: temporary"}; !reflect.DeepEqual(errSpans, want) {
		t.Errorf("failed spans %q, want %q", errSpans, want)
	}
}

// A revoked reference token is rejected by the API: one rejection.
func TestIntegrationRefTokenRejected(t *testing.T) {
	srv := erpnettest.NewServer(t)
	tm := newTelemetry(t, false)
	raw := srv.MintPAT(erpnettest.Demo.Alice)
	tok, err := reftoken.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	client, err := tok.Client(reftoken.Config{Authority: srv.URL(), Hooks: tm.hooks})
	if err != nil {
		t.Fatal(err)
	}
	defer client.CloseIdleConnections()
	if st, err := get(client, srv.DomainAPI()+"General_Contacts"); err != nil || st != http.StatusOK {
		t.Fatalf("before revocation: %d %v", st, err)
	}
	srv.RevokeToken(raw)
	if st, err := get(client, srv.DomainAPI()+"General_Contacts"); err != nil || st != http.StatusUnauthorized {
		t.Fatalf("after revocation: %d %v, want 401", st, err)
	}
	if got, want := tm.counts("erpnet.auth.reftoken.rejections"), map[string]int64{"erpnet.auth.flow=reftoken,http.response.status_code=401": 1}; !reflect.DeepEqual(got, want) {
		t.Errorf("rejections %v, want %v", got, want)
	}
	noSecrets(t, tm, raw)
}
