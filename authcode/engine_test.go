package authcode

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/erpnetgo/auth"
	"github.com/erpnetgo/auth/internal/erpnetctl"
)

// Tests of what the session engine promises a caller, one per class of
// fault outside runs found.

// Every Session a caller gets is its own: changing one (its Scopes
// included, in place or by appending) changes no other request's Session
// and nothing the Store holds, with the memory store and with any other.
func TestEverySessionIsTheCallersOwn(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []envOption
	}{
		{"memory", nil},
		{"other store", []envOption{withSharedStore()}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, tc.opts...)
			b := e.browser()
			e.mustSignIn(b, "")
			want := append([]string(nil), e.session(b).Scopes...)
			require.NotEmpty(t, want)

			// A handler changes its request's Session.
			mine := e.session(b)
			mine.Scopes[0] = "changed-in-place"
			_ = append(mine.Scopes[:1], "appended")
			mine.Subject = "someone else"
			other := e.session(b)
			assert.Equal(t, want, other.Scopes, "a caller's change reached another request")
			assert.Equal(t, "alice", other.Subject)

			// Through RequireUser too: the next request is unaffected.
			h := e.c.RequireUser(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				s := SessionFromContext(r.Context())
				s.Scopes[len(s.Scopes)-1] = "changed-by-handler"
			}))
			for range 2 {
				req, _ := http.NewRequest(http.MethodGet, e.app.URL+"/x", nil)
				for _, ck := range b.jar.Cookies(req.URL) {
					req.AddCookie(ck)
				}
				h.ServeHTTP(discard{}, req)
			}
			assert.Equal(t, want, e.session(b).Scopes)

			// A refresh saves the record, not what a caller changed.
			e.c.Invalidate(other)
			_, err := e.c.TokenSource(context.Background(), other).Token()
			require.NoError(t, err)
			require.Equal(t, 1, erpnetctl.Of(e.idp).Grants("refresh_token"))
			assert.Equal(t, want, e.record(other).Scopes, "a caller's change was saved")
			assert.Equal(t, want, e.session(b).Scopes)
		})
	}
}

type discard struct{ h http.Header }

func (d discard) Header() http.Header {
	if d.h == nil {
		return http.Header{}
	}
	return d.h
}
func (discard) Write(b []byte) (int, error) { return len(b), nil }
func (discard) WriteHeader(int)             {}

// A refresh in flight is never abandoned when other users push its
// session out of memory: it completes, its rotated token is saved, the
// caller waiting for it gets the new token, and the user stays signed in,
// with exactly one refresh_token grant.
func TestRefreshInFlightSurvivesEviction(t *testing.T) {
	e := newEnv(t, withClient(func(c *Config) { c.MaxLiveSessions = 1 }))
	alice := e.browser()
	e.mustSignIn(alice, "")
	s := e.session(alice)
	old := e.record(s)

	// Hold alice's refresh at the identity server.
	entered, release := make(chan struct{}), make(chan struct{})
	e.rec.onToken(func(ctx context.Context, form url.Values, sent bool) {
		if form.Get("grant_type") == "refresh_token" && !sent {
			close(entered)
			select {
			case <-release:
			case <-ctx.Done():
			}
		}
	})
	e.advance(time.Hour + time.Minute)
	got := make(chan error, 1)
	var tok atomic.Value
	go func() {
		t, err := e.c.TokenSource(context.Background(), s).Token()
		if err == nil {
			tok.Store(t.AccessToken)
		}
		got <- err
	}()
	<-entered
	// Other users sign in and use their sessions while alice's refresh
	// waits: with room for one live session, each pushes the others out.
	e.rec.onToken(nil)
	for range 3 {
		b := e.browser()
		e.mustSignIn(b, "")
		_, err := e.c.TokenSource(context.Background(), e.session(b)).Token()
		require.NoError(t, err)
	}
	close(release)
	require.NoError(t, <-got, "the waiting caller lost the refresh")
	now := e.record(s)
	assert.Equal(t, old.Ver+1, now.Ver, "the rotated token was not saved")
	assert.Equal(t, now.AccessToken, tok.Load())
	assert.Equal(t, 1, erpnetctl.Of(e.idp).Grants("refresh_token"))

	// Alice is still signed in, on the saved tokens, with no new grant.
	r := alice.get(e.app.URL + "/api")
	assert.Equal(t, http.StatusOK, r.StatusCode, r.body)
	tok2, err := e.c.TokenSource(context.Background(), e.session(alice)).Token()
	require.NoError(t, err)
	assert.Equal(t, now.AccessToken, tok2.AccessToken)
	assert.Equal(t, 1, erpnetctl.Of(e.idp).Grants("refresh_token"))
}

// A session dropped from memory while a caller still holds it (a job's
// TokenSource) goes on working: the caller is sent to the state that
// replaced it, made from the Store, and never revives a session signed
// out meanwhile.
func TestHeldSessionOutlivesEviction(t *testing.T) {
	e := newEnv(t, withClient(func(c *Config) { c.MaxLiveSessions = 1 }))
	alice := e.browser()
	e.mustSignIn(alice, "")
	ts := e.c.TokenSource(context.Background(), e.session(alice))
	_, err := ts.Token()
	require.NoError(t, err)
	bob := e.browser()
	e.mustSignIn(bob, "")
	require.Equal(t, 1, e.c.sessions.Len())

	e.advance(time.Hour + time.Minute) // alice's token expired while she was out of memory
	tok, err := ts.Token()
	require.NoError(t, err)
	assert.Equal(t, e.record(e.session(alice)).AccessToken, tok.AccessToken)
	assert.Equal(t, 1, erpnetctl.Of(e.idp).Grants("refresh_token"))

	// Signed out elsewhere while out of memory: the held copy is dead too.
	ts = e.c.TokenSource(context.Background(), e.session(alice))
	e.session(bob) // pushes alice out again
	require.NoError(t, e.c.SignOutSession(context.Background(), e.session(alice)))
	_, err = ts.Token()
	assert.ErrorIs(t, err, auth.ErrReauthRequired)
}

// Invalidate with a Session obtained before its state was evicted (and
// the session then loaded again by another request) drops the token of
// the live state, not of the dead one: the next Token is a fresh one.
func TestInvalidateReachesTheLiveState(t *testing.T) {
	e := newEnv(t, withClient(func(c *Config) { c.MaxLiveSessions = 1 }))
	alice, bob := e.browser(), e.browser()
	e.mustSignIn(alice, "")
	old := e.session(alice) // its snapshot's state is evicted next
	_, err := e.c.TokenSource(context.Background(), old).Token()
	require.NoError(t, err)
	e.mustSignIn(bob, "")
	now := e.session(alice) // evicts bob, loads alice into a new state
	first, err := e.c.TokenSource(context.Background(), now).Token()
	require.NoError(t, err)

	e.c.Invalidate(old)
	tok, err := e.c.TokenSource(context.Background(), now).Token()
	require.NoError(t, err)
	assert.NotEqual(t, first.AccessToken, tok.AccessToken, "Invalidate dropped the token of an evicted state only")
	assert.Equal(t, 1, erpnetctl.Of(e.idp).Grants("refresh_token"))
}

// When the identity server has revoked a user's sign-in (a password
// change), the next API call through UserClient fails with an error
// matching auth.ErrReauthRequired, not with the API's bare 401, and the
// browser's next page asks for a new sign-in.
func TestRevokedUserCallFailsWithReauth(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	e.mustSignIn(b, "")
	s := e.session(b)
	hc := e.c.UserClient(context.Background(), s)
	resp, err := hc.Get(domainAPI(e))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)

	e.idp.RevokeUser(testUser)
	resp, err = hc.Get(domainAPI(e))
	if err == nil {
		resp.Body.Close()
		t.Fatalf("revoked user's call: %s and no error", resp.Status)
	}
	var ue *url.Error
	assert.True(t, errors.As(err, &ue), "want a *url.Error, got %T", err)
	assert.ErrorIs(t, err, auth.ErrReauthRequired)
	assert.Equal(t, 1, erpnetctl.Of(e.idp).Grants("refresh_token"), "one refresh told the SDK")

	// The next calls fail at once, and the browser is sent to sign in.
	_, err = hc.Get(domainAPI(e))
	assert.ErrorIs(t, err, auth.ErrReauthRequired)
	r := b.get(e.app.URL + "/me")
	assert.Equal(t, http.StatusFound, r.StatusCode)
	assert.Contains(t, r.Header.Get("Location"), "/signin")
	assert.Equal(t, 1, erpnetctl.Of(e.idp).Grants("refresh_token"))
}

// On a Store without a refresh lock shared by replicas, a sign-out on one
// wins over a refresh in flight on the other: the session the refresh
// saves afterwards is deleted again, the refreshing caller is told to sign
// in again, and the (stolen) cookie works on neither replica.
func TestSignOutWinsWithoutRefreshLock(t *testing.T) {
	e := newEnv(t, withSharedStore())
	replica2, err := New(e.cfg)
	require.NoError(t, err)
	defer replica2.Close()
	b := e.browser()
	e.mustSignIn(b, "")
	s2, err := e.sessionWith(replica2, b)
	require.NoError(t, err)

	// Replica 2's refresh: the identity server has answered, the save is
	// still to come.
	answered, release := make(chan struct{}), make(chan struct{})
	e.rec.onToken(func(ctx context.Context, form url.Values, sent bool) {
		if form.Get("grant_type") == "refresh_token" && sent {
			close(answered)
			select {
			case <-release:
			case <-ctx.Done():
			}
		}
	})
	e.advance(time.Hour + time.Minute)
	got := make(chan error, 1)
	go func() {
		_, err := replica2.TokenSource(context.Background(), s2).Token()
		got <- err
	}()
	<-answered
	e.rec.onToken(nil)
	// Replica 1 signs the user out meanwhile.
	require.NoError(t, e.c.SignOutSession(context.Background(), e.session(b)))
	close(release)
	assert.ErrorIs(t, <-got, auth.ErrReauthRequired)

	_, err = e.sessionErr(b)
	assert.ErrorIs(t, err, ErrNoSession, "replica 1 brought the session back")
	_, err = e.sessionWith(replica2, b)
	assert.ErrorIs(t, err, ErrNoSession, "replica 2 brought the session back")
	assert.Equal(t, 0, e.sessionsInStore())
}

// An injected clock (Config.Now) drives the same path production runs: a
// held session's fresh token is handed out without reading the clock, and
// the clock's moving past the refresh point (the test server's Advance)
// ends the fresh period, so the next Token starts one background refresh
// while the caller keeps the valid token.
func TestInjectedClockRunsTheProductionPath(t *testing.T) {
	var reads atomic.Int64
	var aheads atomic.Int32
	e := newEnv(t, withClient(func(c *Config) {
		now := c.Now
		c.Now = func() time.Time { reads.Add(1); return now() }
		c.Hooks = &auth.Hooks{Event: func(_ context.Context, ev auth.Event) {
			if ev.Name == "token.refresh_ahead" {
				aheads.Add(1)
			}
		}}
	}))
	b := e.browser()
	e.mustSignIn(b, "")
	ts := e.c.TokenSource(context.Background(), e.session(b))
	first, err := ts.Token()
	require.NoError(t, err)
	before := reads.Load()
	for range 100 {
		tok, err := ts.Token()
		require.NoError(t, err)
		require.Equal(t, first.AccessToken, tok.AccessToken)
	}
	assert.Equal(t, before, reads.Load(), "a fresh token's Token read the clock: not the production path")

	e.advance(56 * time.Minute) // into the 5-minute refresh window
	tok, err := ts.Token()
	require.NoError(t, err)
	assert.Equal(t, first.AccessToken, tok.AccessToken, "the caller waited for the refresh")
	require.Eventually(t, func() bool { return erpnetctl.Of(e.idp).Grants("refresh_token") == 1 }, 10*time.Second, time.Millisecond)
	assert.EqualValues(t, 1, aheads.Load()) // reported by the refresh, before its request
	require.Eventually(t, func() bool {
		tok, err := ts.Token()
		return err == nil && tok.AccessToken != first.AccessToken
	}, 10*time.Second, time.Millisecond)
	assert.Equal(t, 1, erpnetctl.Of(e.idp).Grants("refresh_token"))
}
