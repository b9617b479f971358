package authcode

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"golang.org/x/oauth2"

	"github.com/erpnetgo/auth"

	"github.com/erpnetgo/auth/internal/erpnetctl"
)

func domainAPI(e *env) string { return e.idp.URL() + "/api/domain/odata/Crm_Sales_Customers?$top=1" }

func TestConcurrentRequestsAtExpiryRefreshOnce(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	e.mustSignIn(b, "")
	s := e.session(b)
	old := e.record(s)
	e.advance(time.Hour + time.Minute) // the access token has expired

	hc := e.c.UserClient(context.Background(), s)
	var wg sync.WaitGroup
	var failures atomic.Int32
	start := make(chan struct{})
	for range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			resp, err := hc.Get(domainAPI(e))
			if err != nil {
				failures.Add(1)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Erpnet-Caller") != "user:alice" {
				failures.Add(1)
			}
		}()
	}
	close(start)
	wg.Wait()
	assert.Zero(t, failures.Load())
	assert.Equal(t, 1, erpnetctl.Of(e.idp).Grants("refresh_token"), "exactly one refresh")
	now := e.record(s)
	assert.Equal(t, old.Ver+1, now.Ver)
	assert.NotEqual(t, old.RefreshToken, now.RefreshToken, "rotated refresh token saved")
	assert.NotEqual(t, old.AccessToken, now.AccessToken)
	assert.NotEqual(t, old.IDToken, now.IDToken, "the latest ID token is kept")
}

func TestBackgroundRefreshInWindow(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	e.mustSignIn(b, "")
	s := e.session(b)
	ts := e.c.TokenSource(context.Background(), s)
	first, err := ts.Token()
	require.NoError(t, err)
	e.advance(57 * time.Minute) // within the 5-minute window, still valid
	for range 50 {
		tok, err := ts.Token()
		require.NoError(t, err)
		_ = tok
	}
	require.Eventually(t, func() bool {
		tok, err := ts.Token()
		return err == nil && tok.AccessToken != first.AccessToken
	}, time.Minute, 10*time.Millisecond) // a guard: ends as soon as the refresh is adopted
	assert.Equal(t, 1, erpnetctl.Of(e.idp).Grants("refresh_token"))
}

func TestTokenSourceHandsOutNoRefreshToken(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	e.mustSignIn(b, "")
	tok, err := e.c.TokenSource(context.Background(), e.session(b)).Token()
	require.NoError(t, err)
	assert.NotEmpty(t, tok.AccessToken)
	assert.Empty(t, tok.RefreshToken)
	assert.Equal(t, "Bearer", tok.Type())
	assert.Nil(t, tok.Extra("id_token"))
}

func TestRotatedTokensSavedBeforeUse(t *testing.T) {
	var release chan struct{}
	var saving chan struct{}
	e, fs, _, s := signedInOnFlakyStore(t)
	e.advance(time.Hour + time.Minute)
	release, saving = make(chan struct{}), make(chan struct{}, 1)
	fs.onSave = func(key string) {
		if strings.Contains(key, "/session/") {
			saving <- struct{}{}
			<-release
		}
	}
	got := make(chan *oauth2.Token, 1)
	go func() {
		tok, err := e.c.TokenSource(context.Background(), s).Token()
		assert.NoError(t, err)
		got <- tok
	}()
	<-saving
	// The Store is saving the rotated tokens: nothing has been handed out,
	// and the session's token cache still holds the old access token (the
	// new one reaches the cache, and so callers, only when the refresh
	// returns, after the save).
	select {
	case <-got:
		t.Fatal("the new access token was handed out before the Store saved it")
	default:
	}
	u := e.c.sessions.Held(s.ID)
	require.NotNil(t, u)
	assert.Equal(t, s.sn.Rec.AccessToken, u.Cached().AccessToken)
	require.Equal(t, 1, erpnetctl.Of(e.idp).Grants("refresh_token"))
	close(release)
	tok := <-got
	assert.Equal(t, e.record(s).AccessToken, tok.AccessToken)
	fs.onSave = nil
}

func TestRefreshStoreFailureKeepsOldSession(t *testing.T) {
	e, fs, _, s := signedInOnFlakyStore(t)
	old := e.record(s)
	e.advance(time.Hour + time.Minute)

	fs.failSave.Store(true)
	ts := e.c.TokenSource(context.Background(), s)
	_, err := ts.Token()
	require.Error(t, err)
	assert.ErrorIs(t, err, auth.ErrTemporary)
	assert.ErrorIs(t, err, errStoreDown)
	assert.Contains(t, err.Error(), "session store save")
	after := e.record(s)
	assert.Equal(t, old.Ver, after.Ver, "the previous session stays intact")
	assert.Equal(t, old.RefreshToken, after.RefreshToken)
	assert.Equal(t, 1, erpnetctl.Of(e.idp).Grants("refresh_token"))

	// Still failing: no second redemption of anything.
	_, err = ts.Token()
	require.Error(t, err)
	assert.Equal(t, 1, erpnetctl.Of(e.idp).Grants("refresh_token"))

	// The store recovers: the rotated tokens are saved and used, without
	// redeeming the (now dead) old refresh token.
	fs.failSave.Store(false)
	tok, err := ts.Token()
	require.NoError(t, err)
	assert.Equal(t, 1, erpnetctl.Of(e.idp).Grants("refresh_token"))
	now := e.record(s)
	assert.Equal(t, old.Ver+1, now.Ver)
	assert.Equal(t, now.AccessToken, tok.AccessToken)
	assert.NotEqual(t, old.RefreshToken, now.RefreshToken)
	// And the session keeps refreshing normally.
	e.advance(time.Hour + time.Minute)
	_, err = ts.Token()
	require.NoError(t, err)
	assert.Equal(t, 2, erpnetctl.Of(e.idp).Grants("refresh_token"))
}

func TestRefreshTokenReuseIsReauth(t *testing.T) {
	// Replica B holds a stale copy of the session (its own store, no lock),
	// so it redeems a refresh token replica A has already rotated.
	e := newEnv(t)
	b := e.browser()
	e.mustSignIn(b, "")
	s := e.session(b)
	copyStore := newMapStore(time.Now)
	v, err := e.store.Load(context.Background(), s.sn.Key)
	require.NoError(t, err)
	require.NoError(t, copyStore.Save(context.Background(), s.sn.Key, v, time.Hour))
	cfgB := e.cfg
	cfgB.Store = copyStore
	cB, err := New(cfgB)
	require.NoError(t, err)
	defer cB.Close()
	sB, err := e.sessionWith(cB, b)
	require.NoError(t, err)

	e.advance(time.Hour + time.Minute)
	_, err = e.c.TokenSource(context.Background(), s).Token()
	require.NoError(t, err)
	_, err = cB.TokenSource(context.Background(), sB).Token()
	require.Error(t, err)
	assert.ErrorIs(t, err, auth.ErrReauthRequired)
	var oe *auth.Error
	require.ErrorAs(t, err, &oe)
	assert.Equal(t, "invalid_grant", oe.Code)
	// Fails fast afterwards, and B's copy of the session is gone.
	_, err = cB.TokenSource(context.Background(), sB).Token()
	assert.ErrorIs(t, err, auth.ErrReauthRequired)
	_, err = e.sessionWith(cB, b)
	assert.ErrorIs(t, err, ErrNoSession)
	assert.Equal(t, 2, erpnetctl.Of(e.idp).Grants("refresh_token"))

	// The server revoked the whole family: A must sign in again too.
	e.advance(time.Hour + time.Minute)
	_, err = e.c.TokenSource(context.Background(), s).Token()
	assert.ErrorIs(t, err, auth.ErrReauthRequired)
	r := b.get(e.app.URL + "/me")
	assert.Equal(t, http.StatusFound, r.StatusCode)
}

func TestReplicasShareRefreshThroughLocker(t *testing.T) {
	var ls *lockingStore
	e := newEnv(t, withStore(func(m *mapStore) Store {
		ls = &lockingStore{mapStore: m}
		return ls
	}))
	b := e.browser()
	e.mustSignIn(b, "")
	cfgB := e.cfg
	cB, err := New(cfgB)
	require.NoError(t, err)
	defer cB.Close()
	sA := e.session(b)
	sB, err := e.sessionWith(cB, b)
	require.NoError(t, err)
	// Both replicas have the session in memory.
	_, err = e.c.TokenSource(context.Background(), sA).Token()
	require.NoError(t, err)
	_, err = cB.TokenSource(context.Background(), sB).Token()
	require.NoError(t, err)

	e.advance(time.Hour + time.Minute)
	var wg sync.WaitGroup
	toks := make([]*oauth2.Token, 2)
	for i, c := range []*Client{e.c, cB} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := sA
			if i == 1 {
				s = sB
			}
			tok, err := c.TokenSource(context.Background(), s).Token()
			assert.NoError(t, err)
			toks[i] = tok
		}()
	}
	wg.Wait()
	assert.Equal(t, 1, erpnetctl.Of(e.idp).Grants("refresh_token"), "only one replica redeems the refresh token")
	assert.Equal(t, toks[0].AccessToken, toks[1].AccessToken, "the other one uses the saved result")
	assert.EqualValues(t, 2, ls.taken.Load())
}

func TestRevokedUserMustSignInAgain(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	e.mustSignIn(b, "")
	s := e.session(b)
	e.idp.RevokeUser(testUser)
	e.advance(time.Hour + time.Minute)
	_, err := e.c.TokenSource(context.Background(), s).Token()
	assert.ErrorIs(t, err, auth.ErrReauthRequired)
	r := b.get(e.app.URL + "/me")
	require.Equal(t, http.StatusFound, r.StatusCode)
	assert.Equal(t, "/signin?return_to=%2Fme", r.Header.Get("Location"))
}

func TestNoOfflineAccessMeansReauthAtExpiry(t *testing.T) {
	e := newEnv(t, withClient(func(c *Config) { c.Scopes = []string{"openid", "profile", "read"} }))
	b := e.browser()
	e.mustSignIn(b, "")
	s := e.session(b)
	_, err := e.c.TokenSource(context.Background(), s).Token()
	require.NoError(t, err)
	e.advance(time.Hour + time.Minute)
	_, err = e.c.TokenSource(context.Background(), s).Token()
	assert.ErrorIs(t, err, auth.ErrReauthRequired)
	assert.Zero(t, erpnetctl.Of(e.idp).Grants("refresh_token"))
}

// apiStub is an API that answers with the queued statuses, then 200.
func TestStoreOutage(t *testing.T) {
	e, fs, b, s := signedInOnFlakyStore(t)
	_, err := e.c.TokenSource(context.Background(), s).Token()
	require.NoError(t, err)

	fs.failLoad.Store(true)
	// This process holds the session with a valid token: users keep working.
	s2, err := e.sessionErr(b)
	require.NoError(t, err)
	assert.Equal(t, "alice", s2.Subject)
	r := b.get(e.app.URL + "/api")
	assert.Equal(t, http.StatusOK, r.StatusCode, r.body)

	// Another replica without the session in memory reports the outage; it
	// does not sign the user out.
	cB, err := New(e.cfg)
	require.NoError(t, err)
	defer cB.Close()
	_, err = e.sessionWith(cB, b)
	require.Error(t, err)
	assert.ErrorIs(t, err, auth.ErrTemporary)
	assert.NotErrorIs(t, err, ErrNoSession)
	w := newRecorder()
	req := newRequest(http.MethodGet, e.app.URL+"/me", nil)
	for _, ck := range b.jar.Cookies(req.URL) {
		req.AddCookie(ck)
	}
	cB.RequireUser(http.NotFoundHandler()).ServeHTTP(w, req)
	assert.Equal(t, http.StatusServiceUnavailable, w.Code)
}

func TestRequireUser(t *testing.T) {
	e := newEnv(t, withSharedStore())
	b := e.browser()
	t.Run("browser is redirected to sign in and back", func(t *testing.T) {
		r := b.get(e.app.URL + "/me?x=1&y=2")
		require.Equal(t, http.StatusFound, r.StatusCode)
		loc := r.Header.Get("Location")
		assert.Equal(t, "/signin?return_to=%2Fme%3Fx%3D1%26y%3D2", loc)
		r = b.get(e.app.URL + loc)
		require.Equal(t, http.StatusFound, r.StatusCode)
		r = b.get(e.authorize(b, r.Header.Get("Location")))
		require.Equal(t, http.StatusSeeOther, r.StatusCode)
		assert.Equal(t, "/me?x=1&y=2", r.Header.Get("Location"))
		r = b.get(e.app.URL + "/me?x=1&y=2")
		assert.Equal(t, http.StatusOK, r.StatusCode)
	})
	anon := e.browser()
	for name, hdr := range map[string]http.Header{
		"Accept JSON":      {"Accept": {"application/json"}},
		"XMLHttpRequest":   {"Accept": {"text/html"}, "X-Requested-With": {"XMLHttpRequest"}},
		"fetch (cors)":     {"Accept": {"text/html"}, "Sec-Fetch-Mode": {"cors"}},
		"no Accept at all": {"Accept": {"*/*"}},
	} {
		t.Run(name, func(t *testing.T) {
			r := anon.do(http.MethodGet, e.app.URL+"/me", hdr)
			require.Equal(t, http.StatusUnauthorized, r.StatusCode)
			assert.Contains(t, r.Header.Get("Content-Type"), "application/json")
			assert.JSONEq(t, `{"error":"login_required","error_description":"sign-in required"}`, r.body)
		})
	}
	t.Run("POST", func(t *testing.T) {
		r := anon.do(http.MethodPost, e.app.URL+"/me", http.Header{"Accept": {"text/html"}})
		assert.Equal(t, http.StatusUnauthorized, r.StatusCode)
	})
	t.Run("tampered session cookie", func(t *testing.T) {
		ck := b.cookie(e.app.URL+"/", defaultCookieName)
		require.NotNil(t, ck)
		bad := e.browser()
		val := []byte(ck.Value)
		val[10] = 'A'
		if ck.Value[10] == 'A' {
			val[10] = 'B'
		}
		bad.jar.SetCookies(mustURL(e.app.URL+"/"), []*http.Cookie{{Name: defaultCookieName, Value: string(val), Path: "/"}})
		r := bad.get(e.app.URL + "/me")
		assert.Equal(t, http.StatusFound, r.StatusCode)
		_, err := e.sessionErr(bad)
		assert.ErrorIs(t, err, ErrNoSession)
	})
	t.Run("cookie sealed with a retired key", func(t *testing.T) {
		cfg := e.cfg
		cfg.Keys = [][]byte{bytes.Repeat([]byte{9}, 32)}
		c2, err := New(cfg)
		require.NoError(t, err)
		defer c2.Close()
		_, err = e.sessionWith(c2, b)
		assert.ErrorIs(t, err, ErrNoSession)
		// Rotation: a new first key, the old one kept for opening.
		cfg.Keys = [][]byte{bytes.Repeat([]byte{9}, 32), bytes.Repeat([]byte{7}, 32)}
		c3, err := New(cfg)
		require.NoError(t, err)
		defer c3.Close()
		s, err := e.sessionWith(c3, b)
		require.NoError(t, err)
		assert.Equal(t, "alice", s.Subject)
	})
}

func TestLiveSessionEviction(t *testing.T) {
	e := newEnv(t, withClient(func(c *Config) { c.MaxLiveSessions = 2 }))
	var sessions []*Session
	for range 4 {
		b := e.browser()
		e.mustSignIn(b, "")
		sessions = append(sessions, e.session(b))
	}
	n := e.c.sessions.Len()
	assert.LessOrEqual(t, n, 2)
	// An evicted session is simply picked up again.
	for _, s := range sessions {
		tok, err := e.c.TokenSource(context.Background(), s).Token()
		require.NoError(t, err)
		assert.NotEmpty(t, tok.AccessToken)
	}
	assert.Zero(t, erpnetctl.Of(e.idp).Grants("refresh_token"))
}

func TestClose(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	e.mustSignIn(b, "")
	s := e.session(b)
	require.NoError(t, e.c.Close())
	require.NoError(t, e.c.Close())
	_, err := e.sessionErr(b)
	assert.ErrorIs(t, err, auth.ErrClosed)
	_, err = e.c.TokenSource(context.Background(), s).Token()
	assert.ErrorIs(t, err, auth.ErrClosed)
}

func TestNoSecretsInOutput(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	cb := e.authorize(b, e.startSignIn(b, ""))
	code := mustQuery(t, cb).Get("code")
	require.Equal(t, http.StatusSeeOther, b.get(cb).StatusCode)
	s := e.session(b)
	e.advance(time.Hour + time.Minute)
	_, err := e.c.TokenSource(context.Background(), s).Token()
	require.NoError(t, err)
	s = e.session(b)
	rec := e.record(s)
	secrets := map[string]string{"access token": rec.AccessToken, "refresh token": rec.RefreshToken,
		"ID token": rec.IDToken, "code": code, "client secret": webSecret}
	for _, r := range e.rec.requests() {
		if v := r.Form.Get("code_verifier"); v != "" {
			secrets["verifier"] = v
		}
	}
	for _, ck := range b.jar.Cookies(mustURL(e.app.URL + "/")) {
		secrets["cookie "+ck.Name] = ck.Value
	}
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("session", "s", s)
	outputs := map[string]string{
		"%v": fmt.Sprintf("%v", s), "%+v": fmt.Sprintf("%+v", s), "%#v": fmt.Sprintf("%#v", s),
		"%s": fmt.Sprint(s), "%q": fmt.Sprintf("%q", s), "deref %+v": fmt.Sprintf("%+v", *s),
		"slog": logged.String(), "client logs": e.logs.String(),
	}
	for oname, out := range outputs {
		for sname, sec := range secrets {
			assert.NotContains(t, out, sec, "%s leaks the %s", oname, sname)
		}
	}
	assert.Contains(t, outputs["%v"], "alice")
	assert.Contains(t, e.logs.String(), "signed in")
}

func TestUserClientUsesContextHTTPClient(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	e.mustSignIn(b, "")
	var used atomic.Bool
	base := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		used.Store(true)
		return e.tr.RoundTrip(r)
	})
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, &http.Client{Transport: base})
	resp, err := e.c.UserClient(ctx, e.session(b)).Get(domainAPI(e))
	require.NoError(t, err)
	resp.Body.Close()
	assert.True(t, used.Load())
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestNilSession(t *testing.T) {
	e := newEnv(t)
	_, err := e.c.TokenSource(context.Background(), nil).Token()
	assert.ErrorIs(t, err, ErrNoSession)
	// An allowed origin (another one is refused before the session is looked at).
	_, err = e.c.UserClient(context.Background(), nil).Get(domainAPI(e))
	assert.True(t, errors.Is(err, ErrNoSession))
}
