package instances_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/erpnetgo/auth"
	"github.com/erpnetgo/auth/authcode"
	"github.com/erpnetgo/auth/erpnettest"
	"github.com/erpnetgo/auth/instances"
)

// Three instances, one client_id, three secrets: users sign in at each
// through one callback and one cookie name, and each sees its own
// instance.
func TestSignInAtEachInstanceThroughOneCallback(t *testing.T) {
	ins := []*instance{newInstance(t, "acme"), newInstance(t, "globex"), newInstance(t, "initech")}
	a := newApp(t, instances.Config{})
	ctx := context.Background()
	for _, in := range ins {
		if err := a.reg.Add(ctx, in.URL(), in.secret); err != nil {
			t.Fatal(err)
		}
	}
	users := []string{erpnettest.Demo.Alice, erpnettest.Demo.Bob, erpnettest.Demo.Alice}
	var wg sync.WaitGroup
	browsers := make([]*http.Client, len(ins))
	for i, in := range ins {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := in.SignIn(a.signInURL(in), users[i])
			if err != nil {
				t.Error(err)
				return
			}
			browsers[i] = c
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	appURL, _ := url.Parse(a.ts.URL)
	for i, in := range ins {
		status, iss, sub := a.me(browsers[i])
		if status != http.StatusOK || iss != in.Authority() || sub != users[i] {
			t.Errorf("instance %d: /me = %d %q %q; want 200 %q %q", i, status, iss, sub, in.Authority(), users[i])
		}
		var names []string
		for _, ck := range browsers[i].Jar.Cookies(appURL) {
			names = append(names, ck.Name)
		}
		if !slices.Equal(names, []string{"erpnet_session"}) {
			t.Errorf("instance %d: cookies %v; want the one session cookie erpnet_session", i, names)
		}
		// The user's API calls go to their instance, with their token.
		resp, err := browsers[i].Get(a.url("/customers"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || in.SessionsOpened() != 1 {
			t.Errorf("instance %d: /customers = %s, sessions opened %d; want 200 and 1", i, resp.Status, in.SessionsOpened())
		}
		if got := in.Requests("token"); got != 1 {
			t.Errorf("instance %d: %d token requests; want 1 (the code exchange)", i, got)
		}
		if got := a.wire.secretsSentTo(in); !slices.Equal(got, []string{in.secret}) {
			t.Errorf("instance %d received secrets %d (own: %v); want only its own", i, len(got), slices.Contains(got, in.secret))
		}
	}
}

// A code from B, replayed into an attempt started at A, is refused before
// it reaches any token endpoint: B's iss names another issuer than the
// attempt's instance.
func TestCodeFromAnotherInstanceRefused(t *testing.T) {
	A, B := newInstance(t, "acme"), newInstance(t, "globex")
	a := newApp(t, instances.Config{})
	ctx := context.Background()
	for _, in := range []*instance{A, B} {
		if err := a.reg.Add(ctx, in.URL(), in.secret); err != nil {
			t.Fatal(err)
		}
	}
	fromB := a.authorize(B, erpnettest.Demo.Alice)
	if fromB.Get("iss") != B.Authority() {
		t.Fatalf("B's authorization response iss = %q; want %q", fromB.Get("iss"), B.Authority())
	}
	browserA, authz := a.startSignIn(A)
	stateA := authz.Query().Get("state")
	tokA, tokB := A.Requests("token"), B.Requests("token")
	q := url.Values{"code": {fromB.Get("code")}, "state": {stateA}, "iss": {fromB.Get("iss")}}
	resp := get(t, browserA, a.url("/callback?"+q.Encode()))
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("B's code in A's attempt: %s; want 400", resp.Status)
	}
	if A.Requests("token") != tokA || B.Requests("token") != tokB {
		t.Fatalf("token requests A %d→%d, B %d→%d; want none", tokA, A.Requests("token"), tokB, B.Requests("token"))
	}
	// B's code with A's state but the iss dropped: A's server promised iss.
	browserA, authz = a.startSignIn(A)
	q = url.Values{"code": {fromB.Get("code")}, "state": {authz.Query().Get("state")}}
	if resp := get(t, browserA, a.url("/callback?"+q.Encode())); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("B's code without iss in A's attempt: %s; want 400", resp.Status)
	}
	if A.Requests("token") != tokA || B.Requests("token") != tokB {
		t.Fatal("a token endpoint was called")
	}
	// A state naming A but whose attempt cookie is missing (B's browser).
	browserB, _ := a.startSignIn(B)
	q = url.Values{"code": {fromB.Get("code")}, "state": {stateA}, "iss": {B.Authority()}}
	if resp := get(t, browserB, a.url("/callback?"+q.Encode())); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("A's state in B's browser: %s; want 400", resp.Status)
	}
	// The genuine callback still works in B's own attempt? It was started
	// by authorize's browser, which the test dropped: B's code is unused.
	if A.Requests("token") != tokA || B.Requests("token") != tokB {
		t.Fatal("a token endpoint was called")
	}
}

// Without iss (an ERP.net version that does not send it), a code is only
// ever redeemed at the instance the attempt started at, with that
// instance's secret: B's code in A's attempt goes to A (which refuses it),
// never to B, and no secret goes to another instance.
func TestMixUpWithoutIss(t *testing.T) {
	A := newInstance(t, "acme", erpnettest.Config{OmitIss: true})
	B := newInstance(t, "globex", erpnettest.Config{OmitIss: true})
	a := newApp(t, instances.Config{})
	ctx := context.Background()
	for _, in := range []*instance{A, B} {
		if err := a.reg.Add(ctx, in.URL(), in.secret); err != nil {
			t.Fatal(err)
		}
	}
	fromB := a.authorize(B, erpnettest.Demo.Alice)
	if fromB.Has("iss") {
		t.Fatal("OmitIss: the response carries iss")
	}
	browserA, authz := a.startSignIn(A)
	tokA, tokB := A.Requests("token"), B.Requests("token")
	q := url.Values{"code": {fromB.Get("code")}, "state": {authz.Query().Get("state")}}
	if resp := get(t, browserA, a.url("/callback?"+q.Encode())); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("B's code in A's attempt: %s; want 400", resp.Status)
	}
	if got := A.Requests("token") - tokA; got != 1 {
		t.Fatalf("A's token endpoint got %d requests; want 1 (the attempt's instance refuses the foreign code)", got)
	}
	if B.Requests("token") != tokB {
		t.Fatal("B's token endpoint was called for an attempt started at A")
	}
	// And the mirror image, an attempt a stranger's instance B started,
	// fed A's code: it goes to B only.
	fromA := a.authorize(A, erpnettest.Demo.Bob)
	browserB, authz := a.startSignIn(B)
	tokA, tokB = A.Requests("token"), B.Requests("token")
	q = url.Values{"code": {fromA.Get("code")}, "state": {authz.Query().Get("state")}}
	if resp := get(t, browserB, a.url("/callback?"+q.Encode())); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("A's code in B's attempt: %s; want 400", resp.Status)
	}
	if A.Requests("token") != tokA || B.Requests("token")-tokB != 1 {
		t.Fatalf("token requests A +%d, B +%d; want A +0, B +1", A.Requests("token")-tokA, B.Requests("token")-tokB)
	}
	for _, in := range []*instance{A, B} {
		if got := a.wire.secretsSentTo(in); !slices.Equal(got, []string{in.secret}) {
			t.Errorf("%s received %d secrets; want only its own", in.URL(), len(got))
		}
	}
	// A real sign-in still works at both.
	for _, in := range []*instance{A, B} {
		if st, iss, _ := a.me(a.signIn(in, erpnettest.Demo.Alice)); st != http.StatusOK || iss != in.Authority() {
			t.Errorf("sign-in at %s: /me %d %q", in.URL(), st, iss)
		}
	}
	for _, in := range []*instance{A, B} {
		if strings.Contains(a.logs.String(), in.secret) || strings.Contains(a.logs.String(), fromB.Get("code")) {
			t.Fatal("a secret or code reached the log")
		}
	}
}

// Each instance's service calls use its own secret and open one ERP.net
// session per process; Service hands out the same Source each time.
func TestServicePerInstance(t *testing.T) {
	ins := []*instance{newInstance(t, "acme"), newInstance(t, "globex")}
	a := newApp(t, instances.Config{ServiceScopes: []string{"read"}})
	ctx := context.Background()
	for _, in := range ins {
		if err := a.reg.Add(ctx, in.URL()+"/", in.secret); err != nil { // a trailing slash is the same root
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	for range 8 {
		for _, in := range ins {
			wg.Add(1)
			go func() {
				defer wg.Done()
				src, err := a.reg.Service(ctx, in.URL())
				if err != nil {
					t.Error(err)
					return
				}
				api, err := src.DomainAPI(ctx)
				if err != nil {
					t.Error(err)
					return
				}
				resp, err := src.Client(ctx).Get(api + "Crm_Sales_Customers?$top=1")
				if err != nil {
					t.Error(err)
					return
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					t.Errorf("%s: %s", in.URL(), resp.Status)
				}
			}()
		}
	}
	wg.Wait()
	for _, in := range ins {
		if in.Requests("token") != 1 || in.SessionsOpened() != 1 {
			t.Errorf("%s: %d token requests, %d sessions; want 1 and 1", in.URL(), in.Requests("token"), in.SessionsOpened())
		}
		if got := a.wire.secretsSentTo(in); !slices.Equal(got, []string{in.secret}) {
			t.Errorf("%s received %d secrets; want only its own", in.URL(), len(got))
		}
		s1, _ := a.reg.Service(ctx, in.URL())
		s2, _ := a.reg.Service(ctx, strings.ToUpper(in.URL()[:4])+in.URL()[4:])
		if s1 == nil || s1 != s2 {
			t.Errorf("%s: Service returned different Sources for one instance", in.URL())
		}
	}
}

// An instance added at run time serves the very next request; before, its
// sign-in page says the instance is unknown and nothing is sent to it.
func TestAddAtRunTime(t *testing.T) {
	A, B := newInstance(t, "acme"), newInstance(t, "globex")
	a := newApp(t, instances.Config{})
	ctx := context.Background()
	if err := a.reg.Add(ctx, A.URL(), A.secret); err != nil {
		t.Fatal(err)
	}
	if resp := get(t, browser(t), a.signInURL(B)); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("sign-in at an unknown instance: %s; want 404", resp.Status)
	}
	if _, err := a.reg.Service(ctx, B.URL()); !errors.Is(err, instances.ErrUnknownInstance) {
		t.Fatalf("Service(unknown) = %v; want ErrUnknownInstance", err)
	}
	if n := totalRequests(B); n != 0 {
		t.Fatalf("%d requests reached the unknown instance", n)
	}
	if err := a.reg.Add(ctx, B.URL(), B.secret); err != nil {
		t.Fatal(err)
	}
	if st, iss, _ := a.me(a.signIn(B, erpnettest.Demo.Bob)); st != http.StatusOK || iss != B.Authority() {
		t.Fatalf("after Add: /me %d %q", st, iss)
	}
	src, err := a.reg.Service(ctx, B.URL())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := src.Token(ctx); err != nil {
		t.Fatal(err)
	}
}

// Remove leaves no request to the instance and none of its sessions in the
// Store: browsers are asked to sign in again, Sources and Sessions held
// from before fail with ErrClosed without a request.
func TestRemove(t *testing.T) {
	A, B := newInstance(t, "acme"), newInstance(t, "globex")
	store := newMapStore()
	a := newApp(t, instances.Config{Store: store})
	ctx := context.Background()
	for _, in := range []*instance{A, B} {
		if err := a.reg.Add(ctx, in.URL(), in.secret); err != nil {
			t.Fatal(err)
		}
	}
	alice, bob := a.signIn(A, erpnettest.Demo.Alice), a.signIn(A, erpnettest.Demo.Bob)
	carol := a.signIn(B, erpnettest.Demo.Alice)
	src, err := a.reg.Service(ctx, A.URL())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := src.Token(ctx); err != nil {
		t.Fatal(err)
	}
	// A session held across the removal, as a handler or job would.
	var held *authcode.Session
	{
		req, _ := http.NewRequest(http.MethodGet, a.url("/"), nil)
		for _, ck := range alice.Jar.Cookies(req.URL) {
			req.AddCookie(ck)
		}
		if held, err = a.reg.UserSession(req); err != nil {
			t.Fatal(err)
		}
	}
	if n := store.count("/session/"); n != 3 {
		t.Fatalf("%d sessions in the store; want 3", n)
	}
	if err := a.reg.Remove(ctx, A.URL()); err != nil {
		t.Fatal(err)
	}
	if n := store.count("/session/"); n != 1 {
		t.Fatalf("after Remove: %d sessions in the store; want 1 (B's)", n)
	}
	if n := store.count(url.PathEscape(A.Authority())); n != 0 {
		t.Fatalf("after Remove: %d keys of A in the store; want 0", n)
	}
	before := totalRequests(A)
	for _, c := range []*http.Client{alice, bob} {
		if st, _, _ := a.me(c); st != http.StatusFound {
			t.Errorf("after Remove: /me %d; want 302 to sign in", st)
		}
	}
	if st, _, _ := a.me(carol); st != http.StatusOK {
		t.Errorf("B's user after A's removal: /me %d; want 200", st)
	}
	if _, err := src.Token(ctx); !errors.Is(err, auth.ErrClosed) {
		t.Errorf("held Source after Remove: %v; want ErrClosed", err)
	}
	if _, err := a.reg.UserClient(ctx, held).Get(A.DomainAPI() + "Crm_Sales_Customers"); !errors.Is(err, auth.ErrClosed) {
		t.Errorf("held Session after Remove: %v; want ErrClosed", err)
	}
	if _, err := a.reg.Service(ctx, A.URL()); !errors.Is(err, instances.ErrUnknownInstance) {
		t.Errorf("Service after Remove: %v; want ErrUnknownInstance", err)
	}
	if resp := get(t, browser(t), a.signInURL(A)); resp.StatusCode != http.StatusNotFound {
		t.Errorf("sign-in after Remove: %s; want 404", resp.Status)
	}
	if after := totalRequests(A); after != before {
		t.Fatalf("%d requests reached the removed instance", after-before)
	}
	// Added again: a new installation, none of the old sessions.
	if err := a.reg.Add(ctx, A.URL(), A.secret); err != nil {
		t.Fatal(err)
	}
	if st, _, _ := a.me(alice); st != http.StatusFound {
		t.Errorf("old session after re-adding: /me %d; want 302", st)
	}
	if st, _, _ := a.me(a.signIn(A, erpnettest.Demo.Bob)); st != http.StatusOK {
		t.Errorf("new sign-in after re-adding: /me %d", st)
	}
}

// With the default in-memory store, Remove drops the instance's sessions
// too: a re-added instance knows none of them.
func TestRemoveMemoryStore(t *testing.T) {
	A := newInstance(t, "acme")
	a := newApp(t, instances.Config{})
	ctx := context.Background()
	if err := a.reg.Add(ctx, A.URL(), A.secret); err != nil {
		t.Fatal(err)
	}
	alice := a.signIn(A, erpnettest.Demo.Alice)
	if err := a.reg.Add(ctx, A.URL(), A.secret+"-new"); err != nil { // a new secret keeps the sessions
		t.Fatal(err)
	}
	if st, _, _ := a.me(alice); st != http.StatusOK {
		t.Fatalf("after a new secret: /me %d; want 200", st)
	}
	if err := a.reg.Remove(ctx, A.URL()); err != nil {
		t.Fatal(err)
	}
	if err := a.reg.Add(ctx, A.URL(), A.secret); err != nil {
		t.Fatal(err)
	}
	if st, _, _ := a.me(alice); st != http.StatusFound {
		t.Fatalf("after Remove and Add: /me %d; want 302", st)
	}
}

// Replicas sharing Secrets and Store: an instance added on one is served
// by the other; one removed on one stops being served by the other within
// a minute (of the registry's clock), without a request to it after.
func TestReplicas(t *testing.T) {
	A := newInstance(t, "acme")
	store, secrets, clock := newMapStore(), new(mapSecrets), newClock()
	cfg := instances.Config{Store: store, Secrets: secrets, Now: clock.Now}
	r1, r2 := newApp(t, cfg), newApp(t, cfg)
	ctx := context.Background()
	if err := r1.reg.Add(ctx, A.URL(), A.secret); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(secrets.dump(), A.secret) {
		t.Fatal("the secret is stored in clear")
	}
	// Signed in through replica 1, served by replica 2 (same cookie).
	alice := r1.signIn(A, erpnettest.Demo.Alice)
	u1, _ := url.Parse(r1.ts.URL)
	u2, _ := url.Parse(r2.ts.URL)
	alice.Jar.SetCookies(u2, alice.Jar.Cookies(u1))
	if st, iss, _ := r2.me(alice); st != http.StatusOK || iss != A.Authority() {
		t.Fatalf("replica 2: /me %d %q", st, iss)
	}
	if err := r1.reg.Remove(ctx, A.URL()); err != nil {
		t.Fatal(err)
	}
	clock.Advance(61 * time.Second)
	before := totalRequests(A)
	if st, _, _ := r2.me(alice); st != http.StatusFound {
		t.Fatalf("replica 2 a minute after Remove: /me %d; want 302", st)
	}
	if _, err := r2.reg.Service(ctx, A.URL()); !errors.Is(err, instances.ErrUnknownInstance) {
		t.Fatalf("replica 2 Service after Remove: %v", err)
	}
	if n := totalRequests(A) - before; n != 0 {
		t.Fatalf("%d requests reached the removed instance", n)
	}
	if n := store.count("/session/"); n != 0 {
		t.Fatalf("%d sessions left in the store", n)
	}
}

// When Resolve names the instance a request is for, RequireUser lets only
// users signed in there through.
func TestRequireUserResolve(t *testing.T) {
	A, B := newInstance(t, "acme"), newInstance(t, "globex")
	a := newApp(t, instances.Config{Resolve: func(r *http.Request) (string, error) {
		if v := r.URL.Query().Get("instance"); v != "" {
			return v, nil
		}
		return "", errors.New("no instance named")
	}})
	ctx := context.Background()
	for _, in := range []*instance{A, B} {
		if err := a.reg.Add(ctx, in.URL(), in.secret); err != nil {
			t.Fatal(err)
		}
	}
	alice := a.signIn(A, erpnettest.Demo.Alice)
	noFollow := *alice
	noFollow.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	for inst, want := range map[string]int{"": 200, A.URL(): 200, B.URL(): 302, "https://unknown.example.com": 302} {
		u := a.url("/me")
		if inst != "" {
			u += "?instance=" + url.QueryEscape(inst)
		}
		resp, err := noFollow.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("/me for %q: %s; want %d", inst, resp.Status, want)
		}
	}
	// API callers get 401 JSON rather than a redirect.
	req, _ := http.NewRequest(http.MethodGet, a.url("/me"), nil)
	req.Header.Set("Accept", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("no session, API caller: %s; want 401", resp.Status)
	}
}

// A browser signed in at A that signs in at B replaces its A session,
// which is then signed out at A (the refresh token revoked).
func TestSignInElsewhereEndsPreviousSession(t *testing.T) {
	A, B := newInstance(t, "acme"), newInstance(t, "globex")
	signedOut := make(chan struct{}, 1)
	a := newApp(t, instances.Config{Hooks: &auth.Hooks{Event: func(_ context.Context, e auth.Event) {
		if e.Name == "signout.completed" {
			signedOut <- struct{}{}
		}
	}}})
	ctx := context.Background()
	for _, in := range []*instance{A, B} {
		if err := a.reg.Add(ctx, in.URL(), in.secret); err != nil {
			t.Fatal(err)
		}
	}
	alice := a.signIn(A, erpnettest.Demo.Alice)
	// The same browser signs in at B.
	b := browser(t)
	u, _ := url.Parse(a.ts.URL)
	b.Jar.SetCookies(u, alice.Jar.Cookies(u))
	q := a.authorizeIn(b, B, erpnettest.Demo.Bob)
	if resp := get(t, b, a.url("/callback?"+q.Encode())); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("callback at B: %s", resp.Status)
	}
	if st, iss, _ := a.me(b); st != http.StatusOK || iss != B.Authority() {
		t.Fatalf("after signing in at B: /me %d %q", st, iss)
	}
	select {
	case <-signedOut:
	case <-time.After(30 * time.Second):
		t.Fatal("the replaced session was not signed out")
	}
	if got := A.Requests("revocation"); got != 1 {
		t.Fatalf("A's revocation endpoint got %d requests; want 1 (the replaced session signed out)", got)
	}
}

// Signing out ends the session at the instance the user signed in at.
func TestSignOut(t *testing.T) {
	A, B := newInstance(t, "acme"), newInstance(t, "globex")
	a := newApp(t, instances.Config{PostLogoutRedirectURL: "http://127.0.0.1/"})
	ctx := context.Background()
	for _, in := range []*instance{A, B} {
		if err := a.reg.Add(ctx, in.URL(), in.secret); err != nil {
			t.Fatal(err)
		}
	}
	c := a.signIn(B, erpnettest.Demo.Alice)
	noFollow := *c
	noFollow.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := noFollow.Post(a.url("/signout"), "application/x-www-form-urlencoded", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), B.Authority()+"/connect/endsession") {
		t.Fatalf("sign-out: %s to %q; want 303 to B's end-session endpoint", resp.Status, resp.Header.Get("Location"))
	}
	if B.Requests("revocation") != 1 || A.Requests("revocation") != 0 {
		t.Fatalf("revocations A %d B %d; want 0 and 1", A.Requests("revocation"), B.Requests("revocation"))
	}
	if st, _, _ := a.me(c); st != http.StatusFound {
		t.Fatalf("after sign-out: /me %d; want 302", st)
	}
	// Without a session: straight to the post-logout page.
	resp, err = noFollow.Post(a.url("/signout"), "application/x-www-form-urlencoded", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "http://127.0.0.1/" {
		t.Fatalf("sign-out without a session: %s to %q", resp.Status, resp.Header.Get("Location"))
	}
}

// Callbacks that name no instance served here get authcode's page for a
// stale sign-in link; a signed-in browser just goes on.
func TestCallbackWithoutInstance(t *testing.T) {
	A := newInstance(t, "acme")
	a := newApp(t, instances.Config{})
	if err := a.reg.Add(context.Background(), A.URL(), A.secret); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"", "?code=x", "?code=x&state=ABC", "?code=x&state=ABC.aHR0cHM6Ly9ldmlsLmV4YW1wbGUuY29t", "?code=x&state=ABC.!!"} {
		resp := get(t, browser(t), a.url("/callback"+q))
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("callback%s: %s; want 400", q, resp.Status)
		}
	}
	c := a.signIn(A, erpnettest.Demo.Alice)
	noFollow := *c
	noFollow.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := noFollow.Get(a.url("/callback?code=x&state=ABC"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Errorf("stale callback, signed in: %s; want 303", resp.Status)
	}
}

// Bad configurations are refused at New, naming the field.
func TestNewRefuses(t *testing.T) {
	for _, tc := range []struct {
		cfg   instances.Config
		field string
	}{
		{instances.Config{}, "ClientID"},
		{instances.Config{ClientID: clientID, RedirectURL: "http://app.example.com/callback"}, "RedirectURL"},
		{instances.Config{ClientID: clientID, MarketplaceURL: "http://marketplace.example.com"}, "MarketplaceURL"},
		{instances.Config{ClientID: clientID, Secrets: new(mapSecrets)}, "Keys"},
		{instances.Config{ClientID: clientID, Keys: [][]byte{[]byte("short")}}, "Keys[0]"},
		{instances.Config{ClientID: clientID, ServiceScopes: []string{"read update"}}, "ServiceScopes[0]"},
	} {
		_, err := instances.New(tc.cfg)
		var ce *auth.ConfigError
		if !errors.As(err, &ce) || ce.Field != tc.field {
			t.Errorf("New(%+v) = %v; want a ConfigError for %s", tc.field, err, tc.field)
		}
	}
	reg, err := instances.New(instances.Config{ClientID: clientID, Keys: [][]byte{make([]byte, 32)}})
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	ctx := context.Background()
	for _, root := range []string{"", "demo.my.erp.net", "http://demo.my.erp.net", "https://demo.my.erp.net?x=1", "https://u:p@demo.my.erp.net", "https://" + strings.Repeat("a", 300) + ".com"} {
		var ce *auth.ConfigError
		if err := reg.Add(ctx, root, "s"); !errors.As(err, &ce) {
			t.Errorf("Add(%q) = %v; want a ConfigError", root, err)
		}
	}
	if err := reg.Add(ctx, "https://demo.my.erp.net", "secret\n"); err == nil || strings.Contains(err.Error(), "secret\n") {
		t.Errorf("Add with a newline in the secret = %v", err)
	}
}

// Using the Registry after Close: ErrClosed.
func TestClosed(t *testing.T) {
	reg, err := instances.New(instances.Config{ClientID: clientID, Keys: [][]byte{make([]byte, 32)}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := reg.Add(ctx, "https://demo.my.erp.net", "s"); err != nil {
		t.Fatal(err)
	}
	src, err := reg.Service(ctx, "https://demo.my.erp.net")
	if err != nil {
		t.Fatal(err)
	}
	reg.Close()
	if _, err := src.Token(ctx); !errors.Is(err, auth.ErrClosed) {
		t.Fatalf("Source after Close: %v", err)
	}
	if _, err := reg.Service(ctx, "https://demo.my.erp.net"); !errors.Is(err, auth.ErrClosed) {
		t.Fatalf("Service after Close: %v", err)
	}
	if err := reg.Close(); err != nil {
		t.Fatal(err)
	}
}

// Idle instances cost nothing: adding many starts no goroutine and sends
// no request; a service token is refreshed only around its use, never in
// the background of an instance nobody asks.
func TestIdleInstancesCostNothing(t *testing.T) {
	A := newInstance(t, "acme")
	clock := newClock()
	var sent atomic.Int64
	a := newApp(t, instances.Config{Now: clock.Now, HTTPClient: &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		sent.Add(1)
		return http.DefaultTransport.RoundTrip(r)
	})}})
	ctx := context.Background()
	before := runtime.NumGoroutine()
	for i := range 50 {
		if err := a.reg.Add(ctx, fmt.Sprintf("https://customer%d.example.com", i), "s"); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.reg.Add(ctx, A.URL(), A.secret); err != nil {
		t.Fatal(err)
	}
	if n := sent.Load(); n != 0 {
		t.Fatalf("adding instances sent %d requests", n)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Fatalf("adding 51 instances started %d goroutines", n-before)
	}
	src, err := a.reg.Service(ctx, A.URL())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := src.Token(ctx); err != nil {
		t.Fatal(err)
	}
	// The token's refresh window opens with nobody asking: nothing happens.
	clock.Advance(58 * time.Minute)
	A.Advance(58 * time.Minute)
	if _, err := a.reg.Service(ctx, A.URL()); err != nil { // reads the record again: no request to A
		t.Fatal(err)
	}
	if n := A.Requests("token"); n != 1 {
		t.Fatalf("%d token requests while idle; want 1", n)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
