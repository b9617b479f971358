package authcode

import (
	"context"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/erpnetgo/auth/internal/erpnetctl"
)

// A session loaded again without a change is not decoded again (the same
// record comes back); a version saved by another process replaces it at
// the next load, and its token is the one handed out. Both store paths:
// the memory store (records kept decoded) and any other Store (bytes
// compared with those the live copy was decoded from).
func TestUserSessionDecodesOnlyNewVersions(t *testing.T) {
	for _, tc := range []struct {
		name  string
		store func(*mapStore) Store
	}{
		{"memory", nil},
		{"other", func(m *mapStore) Store { return &flakyStore{mapStore: m} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var opts []envOption
			if tc.store != nil {
				opts = append(opts, withStore(tc.store))
			}
			e := newEnv(t, opts...)
			b := e.browser()
			e.mustSignIn(b, "")
			s1 := e.session(b)
			s2 := e.session(b)
			require.Same(t, s1.sn.Rec, s2.sn.Rec, "an unchanged session was decoded again")
			require.Equal(t, tc.store == nil, e.c.sessions.MemoryKeys() != nil, "the Store in use")

			// Another process refreshes the session.
			next := *e.record(s2)
			next.Ver++
			next.AccessToken = "rotated-elsewhere"
			next.Expiry = e.clk.Now().Add(time.Hour)
			raw, err := next.Encode()
			require.NoError(t, err)
			require.NoError(t, e.store.Save(context.Background(), s2.sn.Key, raw, time.Hour))

			s3 := e.session(b)
			require.NotSame(t, s2.sn.Rec, s3.sn.Rec)
			assert.Equal(t, next.Ver, s3.sn.Rec.Ver)
			tok, err := e.c.TokenSource(context.Background(), s3).Token()
			require.NoError(t, err)
			assert.Equal(t, "rotated-elsewhere", tok.AccessToken)
			assert.Same(t, s3.sn.Rec, e.session(b).sn.Rec)
			assert.Zero(t, erpnetctl.Of(e.idp).Grants("refresh_token"))
		})
	}
}

// A held session is handed out without a look-up in the memory store only
// while the store still holds the entry it was loaded from: a deletion, a
// new version saved, or the entry's expiry is seen by the very next
// request.
func TestUserSessionFastPathFollowsTheStore(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	b := e.browser()
	e.mustSignIn(b, "")
	s := e.session(b)
	held := e.session(b)
	require.Same(t, s.sn, held.sn, "a held session is handed out from its snapshot")
	require.NotSame(t, s, held, "each request gets its own Session")
	held.Name = "changed by a caller"
	assert.NotEqual(t, held.Name, e.session(b).Name, "a caller's change leaks into other requests")

	// Saved anew with a longer life (what a refresh does): the new entry.
	raw, err := e.record(s).Encode()
	require.NoError(t, err)
	require.NoError(t, e.store.Save(ctx, s.sn.Key, raw, time.Hour))
	again := e.session(b)
	require.NotSame(t, s.sn.Rec, again.sn.Rec, "a replaced entry was not seen")
	e.session(b)

	// Expired: the held copy is not handed out.
	e.advance(time.Hour + time.Second)
	_, err = e.sessionErr(b)
	require.ErrorIs(t, err, ErrNoSession)

	// Deleted behind the Client's back.
	e.mustSignIn(b, "")
	s = e.session(b)
	e.session(b)
	require.NoError(t, e.store.Delete(ctx, s.sn.Key))
	_, err = e.sessionErr(b)
	require.ErrorIs(t, err, ErrNoSession)
}

// cookieValue finds the same cookie as http.Request.Cookie.
func TestCookieValue(t *testing.T) {
	for _, lines := range [][]string{
		{"a=1; sid=abc; b=2"},
		{"sid=abc"},
		{`sid="abc"`},
		{"x=1", "sid=second-line"},
		{"sid=; sid=abc"},
		{"sid=a b; sid=ok"},
		{`sid=a\b; sid=ok2`},
		{"sidx=1; xsid=2"},
		{"  sid = abc ;"},
		{"sid=abc=def"},
		{""},
		{";;; sid=v;;"},
		{"SID=upper; sid=lower"},
	} {
		h := http.Header{"Cookie": lines}
		r := &http.Request{Header: h}
		want, err := r.Cookie("sid")
		got, ok := cookieValue(h, "sid")
		if err != nil {
			assert.False(t, ok && got != "", "%q: got %q, net/http finds none", lines, got)
			continue
		}
		require.True(t, ok, "%q", lines)
		assert.Equal(t, want.Value, got, "%q", lines)
	}
}

// UserSession and UserClient, once the session is held, allocate little:
// no decode, no new transport.
func TestUserSessionAllocations(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	e.mustSignIn(b, "")
	req, err := http.NewRequest(http.MethodGet, e.app.URL+"/", nil)
	require.NoError(t, err)
	s := e.session(b)
	for _, ck := range b.jar.Cookies(req.URL) {
		req.AddCookie(ck)
	}
	allocs := testing.AllocsPerRun(100, func() {
		s, err := e.c.UserSession(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = e.c.UserClient(context.Background(), s)
		if _, err := e.c.TokenSource(context.Background(), s).Token(); err != nil {
			t.Fatal(err)
		}
	})
	// The Session (its scopes inline), the http.Client and the
	// TokenSource: the cookie is opened in a pooled buffer.
	assert.LessOrEqual(t, allocs, 3.0)
	assert.Equal(t, "alice", s.Subject)
}

type countingRT struct {
	n    atomic.Int32
	base http.RoundTripper
}

func (c *countingRT) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return c.base.RoundTrip(r)
}

type rtFunc func(*http.Request) (*http.Response, error)

func (f rtFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// UserClient reuses the session's transport, built on Config.Transport, yet
// a base transport given through the context (oauth2.HTTPClient) still
// wins, and a Config.Transport of an uncomparable type is fine.
func TestUserClientTransportReuse(t *testing.T) {
	api := newAPIStub(t)
	var viaConfig atomic.Int32
	e := newEnv(t, withClient(func(c *Config) {
		c.DomainAPI = api.srv.URL + "/"
		c.Transport = rtFunc(func(r *http.Request) (*http.Response, error) {
			viaConfig.Add(1)
			return http.DefaultTransport.RoundTrip(r)
		})
	}))
	b := e.browser()
	e.mustSignIn(b, "")
	s := e.session(b)
	get := func(hc *http.Client) {
		t.Helper()
		resp, err := hc.Get(api.srv.URL)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
	}
	c1, c2 := e.c.UserClient(context.Background(), s), e.c.UserClient(context.Background(), s)
	assert.Same(t, c1.Transport, c2.Transport)
	assert.NotSame(t, c1, c2, "callers may change their client")
	get(c1)
	get(c2)
	assert.EqualValues(t, 2, viaConfig.Load())

	ctxRT := &countingRT{base: http.DefaultTransport}
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, &http.Client{Transport: ctxRT})
	c3 := e.c.UserClient(ctx, s)
	assert.NotSame(t, c1.Transport, c3.Transport)
	get(c3)
	assert.EqualValues(t, 1, ctxRT.n.Load())
	assert.EqualValues(t, 2, viaConfig.Load())
	auths, _ := api.calls()
	require.Len(t, auths, 3)
	for _, a := range auths {
		assert.True(t, strings.HasPrefix(a, "Bearer "), "request without the user's token")
	}
	http.DefaultTransport.(*http.Transport).CloseIdleConnections()
}
