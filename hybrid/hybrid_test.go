package hybrid_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/erpnetgo/auth"
	"github.com/erpnetgo/auth/authcode"
	"github.com/erpnetgo/auth/erpnettest"
	"github.com/erpnetgo/auth/hybrid"
	"github.com/erpnetgo/auth/internal/erpnetctl"
	"github.com/erpnetgo/auth/internal/testutil"
)

const systemCaller = "system:" + "portal-system"

// TestInterleavedCallsKeepEachIdentity: alice, bob and the System User
// call the Domain API from many goroutines at once; every call carries the
// intended identity, as the API itself reports it.
func TestInterleavedCallsKeepEachIdentity(t *testing.T) {
	e := newEnv(t, nil)
	alice, bob := e.browser(), e.browser()
	alice.signIn(erpnettest.Demo.Alice)
	bob.signIn(erpnettest.Demo.Bob)
	erpnetctl.Of(e.idp).ResetAPICalls()
	ccBefore := erpnetctl.Of(e.idp).Grants("client_credentials")

	const workers, rounds = 6, 8
	var userCalls = map[string]*atomic.Int64{erpnettest.Demo.Alice: {}, erpnettest.Demo.Bob: {}}
	var svcCalls atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		for _, who := range []struct {
			b    *browser
			name string
		}{{alice, erpnettest.Demo.Alice}, {bob, erpnettest.Demo.Bob}} {
			wg.Go(func() {
				for j := range rounds {
					r := who.b.do(http.MethodGet, e.srv.URL+"/customers", nil)
					if assert.NoError(t, r.err) && assert.Equal(t, http.StatusOK, r.status, r.body) {
						assert.Equal(t, "user:"+who.name, r.header.Get("X-Caller"))
					}
					userCalls[who.name].Add(1)
					if j%3 == 0 { // a job this user triggers runs as the System User
						r := who.b.do(http.MethodPost, e.srv.URL+"/import", nil)
						if assert.NoError(t, r.err) && assert.Equal(t, http.StatusOK, r.status, r.body) {
							assert.Equal(t, systemCaller, r.header.Get("X-Caller"))
						}
						svcCalls.Add(1)
					}
				}
			})
		}
		wg.Go(func() { // background work as the System User
			for range rounds {
				caller, status, err := callAPI(t.Context(), e.app.Service().ServiceClient(), e.apiURL())
				if assert.NoError(t, err) && assert.Equal(t, http.StatusOK, status) {
					assert.Equal(t, systemCaller, caller)
				}
				svcCalls.Add(1)
			}
		})
	}
	wg.Wait()

	tally := map[string]int{}
	for _, c := range erpnetctl.Of(e.idp).APICalls() {
		assert.Equal(t, http.StatusOK, c.Status)
		assert.Equal(t, erpnettest.Demo.WebAppID, c.ClientID, "one Trusted Application serves both flows")
		assert.Equal(t, "bearer", c.Via)
		tally[c.Kind+":"+c.Subject]++
	}
	assert.Equal(t, map[string]int{
		"user:" + erpnettest.Demo.Alice: int(userCalls[erpnettest.Demo.Alice].Load()),
		"user:" + erpnettest.Demo.Bob:   int(userCalls[erpnettest.Demo.Bob].Load()),
		systemCaller:                    int(svcCalls.Load()),
	}, tally)
	assert.Equal(t, 1, erpnetctl.Of(e.idp).Grants("client_credentials")-ccBefore, "one service token for the whole process")
	assert.Zero(t, erpnetctl.Of(e.idp).Grants("authorization_code")-2, "no user signed in again")
}

// TestTokensStayInTheirOwnPlace: the service token never reaches a cookie
// or the user Store; user tokens never reach the service cache or client.
func TestTokensStayInTheirOwnPlace(t *testing.T) {
	e := newEnv(t, nil)
	alice, bob := e.browser(), e.browser()
	alice.signIn(erpnettest.Demo.Alice)
	svcTok := e.serviceToken() // the service token exists before bob signs in...
	bob.signIn(erpnettest.Demo.Bob)
	for _, b := range []*browser{alice, bob} { // ...and is used while users work
		require.Equal(t, http.StatusOK, b.get(e.srv.URL+"/customers").status)
		require.Equal(t, http.StatusOK, b.do(http.MethodPost, e.srv.URL+"/import", nil).status)
	}
	aliceTok, bobTok := alice.userToken(), bob.userToken()
	require.NotEqual(t, aliceTok, bobTok)

	// The service cache holds the service token, not a user's.
	assert.Equal(t, svcTok, e.serviceToken())
	assert.NotEqual(t, aliceTok, svcTok)
	assert.NotEqual(t, bobTok, svcTok)

	// No cookie, set or held, contains the service token (or a user token:
	// the session cookie holds only a sealed session id).
	for _, b := range []*browser{alice, bob} {
		values := b.cookieValues()
		require.NotEmpty(t, values)
		for _, v := range values {
			for _, tok := range []string{svcTok, aliceTok, bobTok} {
				assert.NotContains(t, v, tok)
			}
		}
	}

	// The Store holds user sessions only, under authcode's key space; no
	// record contains the service token.
	saved := e.store.saved()
	require.NotEmpty(t, saved)
	sessions := 0
	for _, s := range saved {
		assert.True(t, strings.HasPrefix(s.key, "erpnetgo/authcode/"), s.key)
		assert.NotContains(t, string(s.value), svcTok)
		if strings.Contains(string(s.value), aliceTok) || strings.Contains(string(s.value), bobTok) {
			sessions++
		}
	}
	assert.Equal(t, 2, sessions, "each user's token is in that user's session record")

	// Service work never touches the Store.
	ops := e.store.ops.Load()
	for range 5 {
		caller, _, err := callAPI(t.Context(), e.app.Service().ServiceClient(), e.apiURL())
		require.NoError(t, err)
		require.Equal(t, systemCaller, caller)
	}
	assert.Equal(t, ops, e.store.ops.Load(), "the service side never uses the user Store")

	// The service client never sent a user token: every system call was
	// made with the service token (the API saw the System User).
	for _, c := range erpnetctl.Of(e.idp).APICalls() {
		if c.Kind == "system" {
			assert.Equal(t, "portal-system", c.Subject)
		}
	}
	assert.NotContains(t, e.logs.String()+e.audit.String(), svcTok, "tokens are never logged")
	assert.NotContains(t, e.logs.String()+e.audit.String(), aliceTok)
}

// TestGuardRefusesRequestsCarryingCredentials: a request that already
// carries a credential is refused by either client before anything is sent.
func TestGuardRefusesRequestsCarryingCredentials(t *testing.T) {
	e := newEnv(t, nil)
	alice := e.browser()
	alice.signIn(erpnettest.Demo.Alice)
	aliceTok, svcTok := alice.userToken(), e.serviceToken()

	req := httpRequestFor(alice)
	u, err := e.app.User(req)
	require.NoError(t, err)

	cases := []struct {
		name   string
		client *http.Client
		set    func(*http.Request)
		found  string
	}{
		{"user token on the service client", e.app.Service().ServiceClient(),
			func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+aliceTok) }, "Authorization"},
		{"service token on the user client", u.UserClient(),
			func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+svcTok) }, "Authorization"},
		{"API key on the service client", e.app.Service().ServiceClient(),
			func(r *http.Request) { r.Header.Set("X-Api-Key", "enrt_"+strings.Repeat("A", 64)) }, "X-Api-Key"},
		{"non-canonical api-key on the user client", u.UserClient(),
			func(r *http.Request) { r.Header["api-key"] = []string{"enrt_" + strings.Repeat("B", 64)} }, "Api-Key"},
		{"lower-case authorization on the service client", e.app.Service().ServiceClient(),
			func(r *http.Request) { r.Header["authorization"] = []string{"Bearer " + aliceTok} }, "Authorization"},
		{"URL user info on the user client", u.UserClient(),
			func(r *http.Request) { r.URL.User = url.UserPassword("someone", "pw") }, "URL user info"},
		{"a browser's cookie on the service client", e.app.Service().ServiceClient(),
			func(r *http.Request) { r.Header.Set("Cookie", "erpnet_session=abc") }, "Cookie"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before, apiBefore := len(erpnetctl.Of(e.idp).APICalls()), e.idp.Requests("domainapi")
			body := &closeRecorder{Reader: strings.NewReader(`{"Name":"x"}`)}
			r, err := http.NewRequestWithContext(t.Context(), http.MethodPost,
				e.idp.URL()+"/api/domain/odata/Crm_Sales_Customers", body)
			require.NoError(t, err)
			c.set(r)
			resp, err := c.client.Do(r)
			if resp != nil {
				resp.Body.Close()
			}
			require.Error(t, err)
			assert.ErrorIs(t, err, hybrid.ErrIdentityMix)
			var mix *hybrid.IdentityMixError
			require.ErrorAs(t, err, &mix)
			assert.Equal(t, c.found, mix.Found)
			assert.NotContains(t, err.Error(), aliceTok)
			assert.NotContains(t, err.Error(), svcTok)
			assert.True(t, body.closed.Load(), "the refused request's body is closed")
			assert.Len(t, erpnetctl.Of(e.idp).APICalls(), before, "nothing was sent")
			assert.Equal(t, apiBefore, e.idp.Requests("domainapi"), "nothing was sent")
		})
	}

	// Without a preset credential both clients work, each as itself.
	caller, _, err := callAPI(t.Context(), u.UserClient(), e.apiURL())
	require.NoError(t, err)
	assert.Equal(t, "user:alice", caller)
	caller, _, err = callAPI(t.Context(), e.app.Service().ServiceClient(), e.apiURL())
	require.NoError(t, err)
	assert.Equal(t, systemCaller, caller)
}

// TestSignOutLeavesServiceAndOtherUsersAlone: alice signs out (ending her
// ERP.net session); the service token and bob are untouched.
func TestSignOutLeavesServiceAndOtherUsersAlone(t *testing.T) {
	e := newEnv(t, nil)
	alice, bob := e.browser(), e.browser()
	alice.signIn(erpnettest.Demo.Alice)
	bob.signIn(erpnettest.Demo.Bob)
	svcTok := e.serviceToken()
	caller, _, err := callAPI(t.Context(), e.app.Service().ServiceClient(), e.apiURL())
	require.NoError(t, err)
	require.Equal(t, systemCaller, caller)
	require.Equal(t, "user:bob", bob.get(e.srv.URL+"/customers").header.Get("X-Caller"))
	cc, ac, rt := erpnetctl.Of(e.idp).Grants("client_credentials"), erpnetctl.Of(e.idp).Grants("authorization_code"), erpnetctl.Of(e.idp).Grants("refresh_token")

	r := alice.do(http.MethodPost, e.srv.URL+"/signout", nil)
	require.NoError(t, r.err)
	require.Equal(t, http.StatusSeeOther, r.status)
	loc := r.header.Get("Location")
	require.True(t, strings.HasPrefix(loc, e.idp.Authority()+"/connect/endsession?"), loc)
	r = alice.get(loc) // the identity server ends alice's ERP.net session
	require.Equal(t, e.srv.URL+"/bye", strings.SplitN(r.header.Get("Location"), "?", 2)[0])

	// alice is signed out...
	r = alice.get(e.srv.URL + "/me")
	assert.Equal(t, http.StatusFound, r.status)
	assert.True(t, strings.HasPrefix(r.header.Get("Location"), "/signin"), r.header.Get("Location"))
	r = alice.do(http.MethodGet, e.srv.URL+"/customers", http.Header{"Accept": {"application/json"}})
	require.NoError(t, r.err)
	assert.Equal(t, http.StatusUnauthorized, r.status)

	// ...bob is not, and needs no new sign-in...
	r = bob.get(e.srv.URL + "/customers")
	assert.Equal(t, http.StatusOK, r.status)
	assert.Equal(t, "user:bob", r.header.Get("X-Caller"))

	// ...and the service keeps its token: no new client_credentials request.
	assert.Equal(t, svcTok, e.serviceToken())
	caller, status, err := callAPI(t.Context(), e.app.Service().ServiceClient(), e.apiURL())
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, status)
	assert.Equal(t, systemCaller, caller)
	assert.Equal(t, cc, erpnetctl.Of(e.idp).Grants("client_credentials"))
	assert.Equal(t, ac, erpnetctl.Of(e.idp).Grants("authorization_code"))
	assert.Equal(t, rt, erpnetctl.Of(e.idp).Grants("refresh_token"))

	// The Store holds bob's session only.
	n := 0
	for _, s := range e.store.saved() {
		if strings.Contains(s.key, "/session/") {
			if e.store.has(s.key) {
				n++
			}
		}
	}
	assert.Equal(t, 1, n)
}

// TestWithUserAndUser: WithUser handles unauthenticated requests like
// authcode's RequireUser; User works with and without the middleware.
func TestWithUserAndUser(t *testing.T) {
	e := newEnv(t, nil)
	b := e.browser()
	r := b.get(e.srv.URL + "/me")
	assert.Equal(t, http.StatusFound, r.status)
	assert.Equal(t, "/signin?return_to=%2Fme", r.header.Get("Location"))
	r = b.do(http.MethodGet, e.srv.URL+"/customers", http.Header{"Accept": {"application/json"}})
	require.NoError(t, r.err)
	assert.Equal(t, http.StatusUnauthorized, r.status)
	assert.Contains(t, r.body, "login_required")

	_, err := e.app.User(httpRequestFor(b))
	assert.ErrorIs(t, err, authcode.ErrNoSession)

	b.signIn(erpnettest.Demo.Alice)
	u, err := e.app.User(httpRequestFor(b))
	require.NoError(t, err)
	assert.Equal(t, erpnettest.Demo.Alice, u.Session().Subject)
	assert.Equal(t, "alice@example.com", u.Session().Email)
	caller, _, err := callAPI(t.Context(), u.UserClient(), e.apiURL())
	require.NoError(t, err)
	assert.Equal(t, "user:alice", caller)

	_, ok := hybrid.UserFrom(context.Background())
	assert.False(t, ok)
}

// TestUserBehindWithUser: behind WithUser, User returns the UserAPI in
// the context (no second Store round trip).
func TestUserBehindWithUser(t *testing.T) {
	e := newEnv(t, nil)
	b := e.browser()
	r := b.get(e.srv.URL + "/me2")
	assert.Equal(t, http.StatusFound, r.status)
	b.signIn(erpnettest.Demo.Alice)
	ops := e.store.ops.Load()
	r = b.get(e.srv.URL + "/me")
	require.Equal(t, http.StatusOK, r.status, r.body)
	require.Equal(t, "alice", r.body)
	perRequest := e.store.ops.Load() - ops
	ops = e.store.ops.Load()
	r = b.get(e.srv.URL + "/me2")
	require.Equal(t, http.StatusOK, r.status, r.body)
	assert.Equal(t, "alice user:alice", r.body)
	assert.Equal(t, perRequest, e.store.ops.Load()-ops, "User reused WithUser's UserAPI")
}

// TestZeroValues: zero values refuse to send.
func TestZeroValues(t *testing.T) {
	var u hybrid.UserAPI
	var s hybrid.ServiceAPI
	_, _, err := callAPI(t.Context(), u.UserClient(), "http://127.0.0.1:1/")
	assert.ErrorIs(t, err, authcode.ErrNoSession)
	_, _, err = callAPI(t.Context(), s.ServiceClient(), "http://127.0.0.1:1/")
	assert.ErrorIs(t, err, auth.ErrClosed)
	_, err = u.UserTokenSource().Token()
	assert.ErrorIs(t, err, authcode.ErrNoSession)
	_, err = s.ServiceTokenSource().Token()
	assert.ErrorIs(t, err, auth.ErrClosed)
	assert.Nil(t, u.Session())
	assert.Empty(t, s.ClientID())
	assert.Equal(t, "hybrid.UserAPI(not signed in)", u.String())
	assert.Equal(t, "hybrid.ServiceAPI(zero)", s.String())
}

// TestNothingPrintsAToken: UserAPI and ServiceAPI hold secrets only behind
// pointers, so no fmt verb and no slog handler can print a token.
func TestNothingPrintsAToken(t *testing.T) {
	for _, typ := range []reflect.Type{reflect.TypeFor[hybrid.UserAPI](), reflect.TypeFor[hybrid.ServiceAPI]()} {
		for i := range typ.NumField() {
			f := typ.Field(i)
			assert.Contains(t, []reflect.Kind{reflect.Pointer, reflect.Func}, f.Type.Kind(),
				"%s.%s must be a pointer or a func, so that fmt prints an address, not the token", typ, f.Name)
		}
	}

	e := newEnv(t, nil)
	b := e.browser()
	b.signIn(erpnettest.Demo.Alice)
	u, err := e.app.User(httpRequestFor(b))
	require.NoError(t, err)
	userTok, svcTok := b.userToken(), e.serviceToken()
	// Make sure the values have used their tokens, so any cache is filled.
	_, _, err = callAPI(t.Context(), u.UserClient(), e.apiURL())
	require.NoError(t, err)
	s := e.app.Service()
	_, _, err = callAPI(t.Context(), s.ServiceClient(), e.apiURL())
	require.NoError(t, err)

	var out []string
	for _, v := range []any{u, s, &u, &s, []any{u, s}, struct{ U hybrid.UserAPI }{u}} {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x"} {
			out = append(out, fmt.Sprintf(verb, v))
		}
	}
	var logged testutil.SyncBuffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("both", "user", u, "service", s)
	slog.New(slog.NewTextHandler(&logged, nil)).Info("both", "user", u, "service", s)
	out = append(out, logged.String())
	for _, o := range out {
		assert.NotContains(t, o, userTok)
		assert.NotContains(t, o, svcTok)
	}
	assert.Equal(t, "hybrid.UserAPI{user: alice}", u.String())
	assert.Equal(t, "hybrid.UserAPI{user: alice}", fmt.Sprintf("%v", u))
	assert.Equal(t, "hybrid.ServiceAPI{system user of: "+erpnettest.Demo.WebAppID+"}", fmt.Sprint(s))
	assert.Contains(t, logged.String(), `user="hybrid.UserAPI{user: alice}"`)
	assert.Equal(t, erpnettest.Demo.WebAppID, s.ClientID())
}

// TestCloseIsIdempotentAndRefuses: after Close the App refuses new work.
func TestCloseIsIdempotentAndRefuses(t *testing.T) {
	e := newEnv(t, nil)
	b := e.browser()
	b.signIn(erpnettest.Demo.Alice)
	u, err := e.app.User(httpRequestFor(b))
	require.NoError(t, err)
	e.serviceToken() // a cached service token is not used after Close either
	require.NoError(t, e.app.Close())
	_, _, err = callAPI(t.Context(), u.UserClient(), e.apiURL())
	assert.ErrorIs(t, err, auth.ErrClosed)
	require.NoError(t, e.app.Close())
	_, err = e.app.User(httpRequestFor(e.browser()))
	assert.ErrorIs(t, err, auth.ErrClosed)
	err = e.app.RunBackground(t.Context(), "x", func(context.Context, hybrid.ServiceAPI) error { return nil })
	assert.ErrorIs(t, err, auth.ErrClosed)
	_, _, err = callAPI(t.Context(), e.app.Service().ServiceClient(), e.apiURL())
	assert.ErrorIs(t, err, auth.ErrClosed)
}

// TestUserAPIFromAnotherAppIsNotReused: a UserAPI that another App put in
// the context is not handed out by this one.
func TestUserAPIFromAnotherAppIsNotReused(t *testing.T) {
	e := newEnv(t, nil)
	b := e.browser()
	b.signIn(erpnettest.Demo.Alice)
	other, err := hybrid.New(e.cfg)
	require.NoError(t, err)
	defer other.Close()
	var got hybrid.UserAPI
	h := other.WithUser(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, err = e.app.User(r)
	}))
	req := httpRequestFor(b)
	h.ServeHTTP(discardWriter{}, req)
	require.NoError(t, err)
	assert.Equal(t, erpnettest.Demo.Alice, got.Session().Subject)
	fromCtx, _ := hybrid.UserFrom(req.Context())
	assert.Nil(t, fromCtx.Session())
}

type discardWriter struct{}

func (discardWriter) Header() http.Header         { return http.Header{} }
func (discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (discardWriter) WriteHeader(int)             {}
