package authcode

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/erpnetgo/auth/internal/tokencache"
)

func liveEntry(id string) *userTokens {
	u := &userTokens{id: id}
	u.cache.Init(nil, tokencache.Options{})
	return u
}

// The live set never holds more than its limit, and its CLOCK gives a
// second chance: an entry used since the hand last passed survives the
// next eviction, one not used goes first.
func TestLiveSetClock(t *testing.T) {
	const limit = 8 // one shard
	ls := newLiveSet(limit)
	require.Len(t, ls.shards, 1)
	var evictedIDs []string
	insert := func(id string, now int64) {
		u, out := ls.getOrInsert(liveEntry(id), now, 0, func() bool { return false })
		require.Equal(t, id, u.id)
		for _, v := range out {
			if v != nil {
				evictedIDs = append(evictedIDs, v.id)
				v.cache.Close()
			}
		}
	}
	for i := range limit {
		insert(fmt.Sprint(i), 1)
	}
	assert.Equal(t, limit, ls.len())
	assert.Empty(t, evictedIDs)
	// A full pass of the hand clears every mark: the first insert over the
	// limit evicts one of the eight, the one at the hand.
	insert("first", 2)
	require.Len(t, evictedIDs, 1)
	first := evictedIDs[0]
	evictedIDs = nil
	// Using every survivor but one leaves that one as the victim.
	var spare string
	for i := range limit {
		if id := fmt.Sprint(i); id != first {
			if spare == "" {
				spare = id
				continue
			}
			require.NotNil(t, ls.get(id, 2))
		}
	}
	require.NotNil(t, ls.get("first", 2))
	insert("new", 3)
	assert.Equal(t, []string{spare}, evictedIDs)
	assert.Equal(t, limit, ls.len())
	assert.Nil(t, ls.get(spare, 4))
	// The hand cleared the others' marks on its way: the next insert evicts
	// the oldest of them, not the one just inserted.
	insert("newer", 5)
	assert.Len(t, evictedIDs, 2)
	assert.NotContains(t, evictedIDs, "new")
	// remove frees a slot: the next insert evicts nothing.
	require.NotNil(t, ls.remove("newer"))
	n := len(evictedIDs)
	insert("again", 6)
	assert.Len(t, evictedIDs, n)
	assert.LessOrEqual(t, ls.len(), limit)
	for _, u := range ls.drain() {
		u.cache.Close()
	}
	assert.Zero(t, ls.len())
}

// Inserts drop entries idle since before the cutoff as the hand passes.
func TestLiveSetIdle(t *testing.T) {
	ls := newLiveSet(10_000)
	require.Greater(t, len(ls.shards), 1)
	var closed int
	for i := range 200 {
		_, out := ls.getOrInsert(liveEntry(fmt.Sprint("old", i)), 1, 0, func() bool { return false })
		for _, v := range out {
			if v != nil {
				v.cache.Close()
				closed++
			}
		}
	}
	require.Zero(t, closed)
	// Now everything inserted at time 1 is idle (cutoff 100); keep inserting
	// until the hands have passed every entry.
	for i := range 4000 {
		_, out := ls.getOrInsert(liveEntry(fmt.Sprint("new", i)), 200, 100, func() bool { return false })
		for _, v := range out {
			if v != nil {
				require.True(t, strings.HasPrefix(v.id, "old"), "evicted a fresh entry %s", v.id)
				v.cache.Close()
				closed++
			}
		}
	}
	assert.Equal(t, 200, closed, "every idle entry is dropped")
	assert.Equal(t, 4000, ls.len())
	for _, u := range ls.drain() {
		u.cache.Close()
	}
}

// The limit is the set's, whatever the shards: a full set holds exactly
// its limit (shards fill unevenly, so a per-shard limit would evict
// early), and deleting from it goes on working after many evictions (the
// tables shift entries back instead of leaving tombstones).
func TestLiveSetLimitIsGlobal(t *testing.T) {
	for _, limit := range []int{1, 2, 31, 32, 100, 10_000} {
		ls := newLiveSet(limit)
		evictions := 0
		for i := range 3 * limit {
			u, out := ls.getOrInsert(liveEntry(fmt.Sprint("s", i)), 1, 0, func() bool { return false })
			require.NotNil(t, u)
			for _, v := range out {
				if v != nil {
					evictions++
					v.cache.Close()
					require.Nil(t, ls.get(v.id, 1), "evicted %s still found", v.id)
				}
			}
			if i < limit {
				require.Zero(t, evictions, "limit %d: evicted with %d held", limit, i)
			}
			require.LessOrEqual(t, ls.len(), limit+len(ls.shards)-1, "limit %d", limit)
		}
		assert.Equal(t, 3*limit-ls.len(), evictions, "limit %d", limit)
		// Every session held is found, and removing each leaves the rest
		// findable.
		held := ls.drain()
		ls = newLiveSet(limit)
		for _, u := range held {
			ls.getOrInsert(u, 1, 0, func() bool { return false })
		}
		for i, u := range held {
			require.Same(t, u, ls.remove(u.id), "limit %d", limit)
			for _, v := range held[i+1 : min(len(held), i+20)] {
				require.Same(t, v, ls.get(v.id, 1), "limit %d", limit)
			}
			u.cache.Close()
		}
		assert.Zero(t, ls.len())
	}
}

// A session loaded again without a change is not decoded again (the same
// record comes back); a version saved by another process replaces it at
// the next load, and its token is the one handed out. Both store paths:
// the memory store (records kept decoded) and any other Store (bytes
// compared with those the live copy was decoded from).
func TestUserSessionDecodesOnlyNewVersions(t *testing.T) {
	for _, tc := range []struct {
		name  string
		store func(*memoryStore) Store
	}{
		{"memory", nil},
		{"other", func(m *memoryStore) Store { return &flakyStore{memoryStore: m} }},
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
			require.Same(t, s1.rec, s2.rec, "an unchanged session was decoded again")
			if tc.store == nil {
				_, isMem := e.c.store.(*memoryStore)
				require.True(t, isMem)
			} else {
				_, isMem := e.c.store.(*memoryStore)
				require.False(t, isMem)
			}

			// Another process refreshes the session.
			next := *e.record(s2)
			next.Ver++
			next.AccessToken = "rotated-elsewhere"
			next.Expiry = e.clk.Now().Add(time.Hour)
			raw, err := next.encode()
			require.NoError(t, err)
			require.NoError(t, e.store.Save(context.Background(), s2.key, raw, time.Hour))

			s3 := e.session(b)
			require.NotSame(t, s2.rec, s3.rec)
			assert.Equal(t, next.Ver, s3.rec.Ver)
			tok, err := e.c.TokenSource(context.Background(), s3).Token()
			require.NoError(t, err)
			assert.Equal(t, "rotated-elsewhere", tok.AccessToken)
			assert.Same(t, s3.rec, e.session(b).rec)
			assert.Zero(t, e.idp.GrantCount("refresh_token"))
		})
	}
}

// A held session is handed out without a look-up in the memory store only
// while the store still holds the entry it was loaded from: a deletion, a
// new version saved, or the entry's expiry is seen by the very next
// request.
func TestUserSessionFastPathFollowsTheStore(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, withStoreOnClientClock())
	b := e.browser()
	e.mustSignIn(b, "")
	s := e.session(b)
	held := e.session(b)
	require.Same(t, s.rec, held.rec)
	require.NotSame(t, s, held, "each request gets its own Session")
	held.Name = "changed by a caller"
	assert.NotEqual(t, held.Name, e.session(b).Name, "a caller's change leaks into other requests")

	// Saved anew with a longer life (what a refresh does): the new entry.
	raw, err := e.record(s).encode()
	require.NoError(t, err)
	require.NoError(t, e.mem.Save(ctx, s.key, raw, time.Hour))
	again := e.session(b)
	require.NotSame(t, s.rec, again.rec, "a replaced entry was not seen")
	e.session(b)

	// Expired: the held copy is not handed out.
	e.advance(time.Hour + time.Second)
	_, err = e.sessionErr(b)
	require.ErrorIs(t, err, ErrNoSession)

	// Deleted behind the Client's back.
	e.mustSignIn(b, "")
	s = e.session(b)
	e.session(b)
	require.NoError(t, e.mem.Delete(ctx, s.key))
	_, err = e.sessionErr(b)
	require.ErrorIs(t, err, ErrNoSession)
}

// What a request of a held session reads sits on as few cache lines as
// possible: a view's first line holds its store entry and id; a state's
// first line its Client, use marks and token cache's hot fields; and both
// sizes are multiples of 64 that are also allocation size classes, so
// every object starts on a cache line. A field added to either struct
// must keep this (adjust the padding).
func TestHotLayout(t *testing.T) {
	if unsafe.Sizeof(uintptr(0)) != 8 {
		t.Skip("the layout is tuned for 64-bit platforms")
	}
	var u userTokens
	var v sessionView
	for _, size := range []uintptr{unsafe.Sizeof(u), unsafe.Sizeof(v)} {
		assert.Zero(t, size%64, "size %d", size)
		assert.LessOrEqual(t, size, uintptr(768), "size %d", size) // size classes up to 768 include every multiple of 64
	}
	assert.LessOrEqual(t, unsafe.Offsetof(u.cache)+24, uintptr(64), "the token cache's hot fields leave the first line")
	assert.Equal(t, uintptr(64), unsafe.Offsetof(v.sess), "a view's entry and id leave the first line")
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
	// The Session, the http.Client and the TokenSource: the cookie is
	// opened in a pooled buffer.
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

// Requests read the live set without a lock while other goroutines
// insert, evict, remove and replace views: a reader may miss a session
// (it then takes the locked path) but never gets another session's view.
func TestLiveSetLockFreeReadersNeverSeeAnotherSession(t *testing.T) {
	const sessions, limit = 200, 64
	ls := newLiveSet(limit)
	ids := make([]string, sessions)
	for i := range ids {
		ids[i] = fmt.Sprintf("%052d", i)
	}
	newView := func(u *userTokens) *sessionView {
		v := &sessionView{mem: &memEntry{}}
		v.sess.ID = u.id
		v.idn = uint8(copy(v.idb[:], u.id))
		return v
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var found, missed atomic.Int64
	for r := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := r; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				id := ids[i%sessions]
				if v := ls.peek([]byte(id), 1); v != nil {
					if v.sess.ID != id {
						t.Errorf("peek(%s) returned the view of %s", id, v.sess.ID)
						return
					}
					found.Add(1)
				} else {
					missed.Add(1)
				}
			}
		}()
	}
	for i := range 20_000 {
		id := ids[(i*7)%sessions]
		u, out := ls.getOrInsert(liveEntry(id), int64(i), 0, func() bool { return false })
		out.closeAll()
		ls.setView(u, newView(u))
		if i%5 == 0 {
			if v := ls.remove(ids[(i*13)%sessions]); v != nil {
				v.cache.Close()
			}
		}
	}
	close(stop)
	wg.Wait()
	for _, u := range ls.drain() {
		u.cache.Close()
	}
	assert.Positive(t, found.Load(), "readers never found a session")
	t.Logf("found %d, missed %d", found.Load(), missed.Load())

	// A reader that reads a slot half rewritten (the hash of one session,
	// the view of another) does not hand that view out.
	ls = newLiveSet(limit)
	x, _ := ls.getOrInsert(liveEntry(ids[0]), 1, 0, func() bool { return false })
	y := liveEntry(ids[1])
	ls.setView(x, newView(x))
	require.NotNil(t, ls.peek([]byte(ids[0]), 1))
	tab := ls.shard(x.h).tab.Load()
	for i := range tab.slots {
		if tab.slots[i].u.Load() == x {
			torn := newView(y)
			torn.mem = tab.slots[i].mem.Load() // the same store entry: only the id differs
			tab.slots[i].v.Store(torn)
		}
	}
	assert.Nil(t, ls.peek([]byte(ids[0]), 1), "a view of another session was handed out")
	x.cache.Close()
	y.cache.Close()
}
