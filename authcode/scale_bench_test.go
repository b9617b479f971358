package authcode

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/erpnetgo/auth/authcode/internal/sessions"
	"github.com/erpnetgo/auth/clientcreds"
)

// The scale benchmarks measure the README's request pattern of a web
// backend: UserSession(r) then a token (TokenSource(ctx, s).Token) or a
// request (UserClient), with the session of each request chosen at random
// among many. Sessions are created directly in the memory store (as the
// record a sign-in saves, already loaded once) with a sealed cookie each,
// rather than through the sign-in flow, so a million can be set up in
// seconds. Run:
//
//	go test -run '^$' -bench 'Scale|HeldToken|AuthorizedGET|SessionMemory' -benchmem ./authcode/

const scaleClientID = "com.example/bench"

// benchRecord is a session record of realistic size (about 1.7 KB of
// JSON): a JWT access token, a refresh token, an ID token and its claims,
// each string its own allocation.
func benchRecord(i int, now time.Time) *sessions.Record {
	n := strconv.Itoa(i)
	fill := func(prefix string, size int) string {
		var b strings.Builder
		b.Grow(size)
		b.WriteString(prefix)
		b.WriteString(n)
		for b.Len() < size {
			b.WriteString("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")
		}
		return b.String()[:size]
	}
	claims := fmt.Sprintf(`{"iss":%q,"sub":"user%s","aud":%q,"name":"User %s","email":"user%s@example.com","preferred_username":"user%s","iat":%d,"exp":%d}`,
		benchIssuer, n, scaleClientID, n, n, n, now.Unix(), now.Add(time.Hour).Unix())
	return sessions.NewRecord(sessions.Record{Issuer: benchIssuer, ClientID: scaleClientID,
		Subject: "user" + n, Name: "User " + n, Username: "user" + n, Email: "user" + n + "@example.com",
		Claims: []byte(claims), Scopes: []string{"openid", "profile", "offline_access", "read", "update"},
		SignedInAt: now, AccessToken: fill("eyJhbGciOiJSUzI1NiJ9.", 600), TokenType: "Bearer",
		Expiry: now.Add(24 * time.Hour), RefreshToken: fill("rt", 64), IDToken: fill("eyJhbGciOiJSUzI1NiIsImtpZCI6ImJlbmNoIn0.", 620)})
}

// scaleWorld is n sessions, with their cookies; each Client it makes holds
// them all in its memory store.
type scaleWorld struct {
	recs    []*sessions.Record
	ids     []string
	cookies []string // "name=value" for the Cookie header
	keys    [][]byte
}

func newScaleWorld(b testing.TB, n int) *scaleWorld {
	b.Helper()
	w := &scaleWorld{keys: [][]byte{bytes.Repeat([]byte{1}, 32)},
		ids: make([]string, n), cookies: make([]string, n), recs: make([]*sessions.Record, n)}
	c := w.newClient(b, 1) // for the cookie sealer
	now := time.Now()
	var all strings.Builder
	ends := make([]int, n)
	for i := range n {
		id := fmt.Sprintf("%052d", i)
		w.recs[i] = benchRecord(i, now)
		w.ids[i] = id
		all.WriteString(c.cookie + "=" + base64.RawURLEncoding.EncodeToString(c.sealer.Seal([]byte(id), c.cookieAAD)))
		ends[i] = all.Len()
	}
	// The Cookie headers are substrings of one string: a server parses
	// each request's header into fresh memory, not into one heap object
	// per user kept among the sessions since the user signed in.
	cookies, start := all.String(), 0
	for i, end := range ends {
		w.cookies[i], start = cookies[start:end], end
	}
	return w
}

// newClient returns a Client with discovery done, holding at most maxLive
// sessions in memory, and none of w's sessions yet.
func (w *scaleWorld) newClient(b testing.TB, maxLive int) *Client {
	b.Helper()
	stub := newStubIDP(b, scaleClientID)
	c, err := New(Config{Authority: benchIssuer, ClientID: scaleClientID, ClientSecret: "bench-secret",
		RedirectURL: "https://app.bench.example/callback", Keys: w.keys,
		HTTPClient: &http.Client{Transport: stub}, Logger: slog.New(slog.DiscardHandler),
		MaxLiveSessions: maxLive})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	if _, err := c.keyPrefix(context.Background()); err != nil {
		b.Fatal(err)
	}
	return c
}

// client returns a Client whose memory store holds every session of w (as
// the record a sign-in saves), none of them live yet.
func (w *scaleWorld) client(b testing.TB, maxLive int) *Client {
	b.Helper()
	c := w.newClient(b, maxLive)
	for i, id := range w.ids {
		if _, err := c.sessions.Put(context.Background(), id, w.recs[i]); err != nil {
			b.Fatal(err)
		}
	}
	return c
}

// BenchmarkScaleUserSessionToken is UserSession(r) + TokenSource.Token()
// per request, each request the session of a user chosen at random among
// sessions=N. live=all holds every session's token cache in memory
// (MaxLiveSessions >= N, warmed up); live=10000 is the default
// MaxLiveSessions, so with more sessions most requests rebuild a token cache
// and evict one.
//
// floor, in the same run and on the same sessions, is the least any
// server-side session design pays per request on this machine: the same
// cookie, opened with the same sealer, then one look-up of the session id
// in a Go map to the session's token, and nothing else (no store, no
// expiry, no refresh). Its growth with N is what the memory system charges
// for state chosen at random among many.
func BenchmarkScaleUserSessionToken(b *testing.B) {
	type cfg struct {
		n, live int
		floor   bool
	}
	var cases []cfg
	sizes := []int{1, 1_000, 50_000, 100_000, 1_000_000}
	if testing.Short() {
		sizes = []int{1, 1_000, 50_000} // CI's one pass: every case, not every size
	}
	for _, n := range sizes {
		cases = append(cases, cfg{n: n}, cfg{n: n, floor: true})
		if n > 10_000 {
			cases = append(cases, cfg{n: n, live: 10_000})
		}
	}
	var w *scaleWorld
	for _, tc := range cases {
		name := "live=all"
		switch {
		case tc.floor:
			name = "floor"
		case tc.live != 0:
			name = "live=" + strconv.Itoa(tc.live)
		}
		b.Run(fmt.Sprintf("sessions=%d/%s", tc.n, name), func(b *testing.B) {
			if w == nil || len(w.ids) != tc.n {
				w = nil
				runtime.GC()
				w = newScaleWorld(b, tc.n)
			}
			if tc.floor {
				benchFloor(b, w)
				return
			}
			maxLive := tc.live
			if maxLive == 0 {
				maxLive = tc.n
			}
			c := w.client(b, maxLive)
			ctx := context.Background()
			r, _ := http.NewRequest(http.MethodGet, "https://app.bench.example/orders", nil)
			r.Header["Cookie"] = []string{""}
			get := func(i int) {
				r.Header["Cookie"][0] = w.cookies[i]
				s, err := c.UserSession(r)
				if err != nil {
					b.Fatal(err)
				}
				if tok, err := c.TokenSource(ctx, s).Token(); err != nil || tok.AccessToken == "" {
					b.Fatal(err)
				}
			}
			if tc.live == 0 {
				for i := range tc.n { // warm up: this process holds every session
					get(i)
				}
			}
			rng := rand.New(rand.NewPCG(1, 2))
			runtime.GC() // the set-up's garbage is not the requests' cost
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				get(rng.IntN(tc.n))
			}
		})
	}
}

// benchFloor is the floor case of BenchmarkScaleUserSessionToken.
func benchFloor(b *testing.B, w *scaleWorld) {
	c := w.newClient(b, 1)
	m := make(map[string]*oauth2.Token, len(w.ids))
	for i, id := range w.ids {
		m[id] = w.recs[i].Token()
	}
	r, _ := http.NewRequest(http.MethodGet, "https://app.bench.example/orders", nil)
	r.Header["Cookie"] = []string{""}
	rng := rand.New(rand.NewPCG(1, 2))
	runtime.GC()
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		r.Header["Cookie"][0] = w.cookies[rng.IntN(len(w.ids))]
		buf := cookieBufs.Get().(*[512]byte)
		id, ok := c.openSessionCookie(r, buf)
		if !ok {
			b.Fatal("cookie does not open")
		}
		tok := m[string(id)]
		cookieBufs.Put(buf)
		if tok == nil || tok.AccessToken == "" {
			b.Fatal("no token")
		}
	}
}

// BenchmarkHeldToken is Token() on a TokenSource of a session the request
// already holds, next to clientcreds' cached Token() and x/oauth2's
// ReuseTokenSource over a static token, serial and on all cores.
func BenchmarkHeldToken(b *testing.B) {
	w := newScaleWorld(b, 1)
	c := w.client(b, 1)
	ctx := context.Background()
	r, _ := http.NewRequest(http.MethodGet, "https://app.bench.example/orders", nil)
	r.Header.Set("Cookie", w.cookies[0])
	s, err := c.UserSession(r)
	if err != nil {
		b.Fatal(err)
	}
	held := c.TokenSource(ctx, s)
	cc, err := clientcreds.New(clientcreds.Config{Authority: benchIssuer, ClientID: scaleClientID,
		ClientSecret: "bench-secret", HTTPClient: &http.Client{Transport: newStubIDP(b, scaleClientID)},
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cc.Close() })
	ccSrc := cc.TokenSource(ctx)
	xo := oauth2.ReuseTokenSource(nil, oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "x",
		TokenType: "Bearer", Expiry: time.Now().Add(24 * time.Hour)}))
	for _, src := range []struct {
		name string
		ts   oauth2.TokenSource
	}{{"impl=authcode-session", held}, {"impl=clientcreds", ccSrc}, {"impl=x-oauth2-reuse", xo}} {
		if _, err := src.ts.Token(); err != nil {
			b.Fatal(err)
		}
		b.Run(src.name+"/serial", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := src.ts.Token(); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(src.name+"/parallel", func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := src.ts.Token(); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}

// BenchmarkScaleUserSessionParallel is UserSession + Token() on all cores,
// each goroutine choosing sessions at random among 1,000 (compare its
// ns/op with the serial sessions=1000/live=all case).
func BenchmarkScaleUserSessionParallel(b *testing.B) {
	const n = 1000
	w := newScaleWorld(b, n)
	c := w.client(b, n)
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		r, _ := http.NewRequest(http.MethodGet, "https://app.bench.example/orders", nil)
		r.Header["Cookie"] = []string{""}
		rng := rand.New(rand.NewPCG(rand.Uint64(), 2))
		for pb.Next() {
			r.Header["Cookie"][0] = w.cookies[rng.IntN(n)]
			s, err := c.UserSession(r)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := c.TokenSource(ctx, s).Token(); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkAuthorizedGET is one request of a web backend calling an API as
// its user: UserSession(r), UserClient(ctx, s), one GET; next to the same
// GET with a static Authorization header through a plain http.Client
// (impl=plain) and through x/oauth2's Transport over a static token. The
// SDK's own allocations are those of impl=authcode minus impl=plain.
func BenchmarkAuthorizedGET(b *testing.B) {
	srv := apiServer(b)
	tr := &http.Transport{MaxIdleConnsPerHost: 4}
	defer tr.CloseIdleConnections()
	w := newScaleWorld(b, 1)
	stub := newStubIDP(b, scaleClientID)
	c, err := New(Config{Authority: benchIssuer, ClientID: scaleClientID, ClientSecret: "bench-secret",
		RedirectURL: "https://app.bench.example/callback", Keys: w.keys,
		HTTPClient: &http.Client{Transport: stub}, Transport: tr, Logger: slog.New(slog.DiscardHandler),
		DomainAPI: srv.URL + "/api/domain/odata/"})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	if _, err := c.DomainAPI(context.Background()); err != nil {
		b.Fatal(err)
	}
	if _, err := c.keyPrefix(context.Background()); err != nil {
		b.Fatal(err)
	}
	if _, err := c.sessions.Put(context.Background(), w.ids[0], w.recs[0]); err != nil {
		b.Fatal(err)
	}
	target := srv.URL + "/api/domain/odata/Crm_Sales_Customers?$top=10"
	in, _ := http.NewRequest(http.MethodGet, "https://app.bench.example/orders", nil)
	in.Header.Set("Cookie", w.cookies[0])
	tok := "Bearer " + benchRecord(0, time.Now()).AccessToken
	plain := &http.Client{Transport: tr}
	xo := &http.Client{Transport: &oauth2.Transport{Base: tr, Source: oauth2.StaticTokenSource(
		&oauth2.Token{AccessToken: tok[len("Bearer "):], TokenType: "Bearer", Expiry: time.Now().Add(24 * time.Hour)})}}
	get := func(b *testing.B, hc *http.Client, static bool) {
		req, _ := http.NewRequestWithContext(in.Context(), http.MethodGet, target, nil)
		req.Header.Set("Accept", "application/json")
		if static {
			req.Header.Set("Authorization", tok)
		}
		resp, err := hc.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("status %d", resp.StatusCode)
		}
	}
	b.Run("impl=plain", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			get(b, plain, true)
		}
	})
	b.Run("impl=x-oauth2", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			get(b, xo, false)
		}
	})
	b.Run("impl=authcode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			s, err := c.UserSession(in)
			if err != nil {
				b.Fatal(err)
			}
			get(b, c.UserClient(in.Context(), s), false)
		}
	})
}

// BenchmarkSessionMemory reports the heap each session takes in the
// memory store (its decoded record and key) and, once held, in this
// process (what its first request, UserSession + Token, leaves behind: the
// live state, token cache and snapshot, the key and id), for sessions of
// realistic size.
func BenchmarkSessionMemory(b *testing.B) {
	const n = 20_000
	for range b.N {
		heap := func() uint64 {
			runtime.GC()
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			return ms.HeapAlloc
		}
		w := newScaleWorld(b, n) // the ids and cookies
		w.recs = nil
		c := w.newClient(b, n)
		now := time.Now()
		ctx := context.Background()
		r, _ := http.NewRequest(http.MethodGet, "https://app.bench.example/orders", nil)
		r.Header["Cookie"] = []string{""}
		h0 := heap()
		for i, id := range w.ids {
			if _, err := c.sessions.Put(ctx, id, benchRecord(i, now)); err != nil {
				b.Fatal(err)
			}
		}
		h1 := heap()
		for i := range w.ids {
			r.Header["Cookie"][0] = w.cookies[i]
			s, err := c.UserSession(r)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := c.TokenSource(ctx, s).Token(); err != nil {
				b.Fatal(err)
			}
		}
		h2 := heap()
		b.ReportMetric(float64(h1-h0)/n, "store-B/session")
		b.ReportMetric(float64(h2-h1)/n, "live-B/session")
		runtime.KeepAlive(w)
		c.Close()
	}
}
