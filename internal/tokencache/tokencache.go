// Package tokencache is the SDK's one token cache. It holds one access token
// and hands it out with an atomic load: no lock, no allocation and no clock
// read while the token is fresh (a timer marks the end of that period). In the token's last part of life exactly one background
// refresh runs while callers keep the still-valid token; when the cache is
// cold or the token has expired, exactly one fetch runs however many
// goroutines ask, and each caller may give up through its own context
// without cancelling the shared fetch.
//
// Ages are measured on the monotonic clock, like Go's timers: a change of
// the wall clock does not make a token look fresher or older than it is.
// While a machine is suspended the monotonic clock stops, so just after a
// resume a token may look younger than it is; the transport (internal/transport)
// answer the API's 401 by invalidating it, fetching a new one and retrying.
package tokencache

import (
	"context"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/oauth2"

	"github.com/erpnetgo/auth"
	"github.com/erpnetgo/auth/internal/hook"
)

// Defaults for Options.
const (
	// DefaultWindow is how long before expiry a background refresh starts
	// for tokens that live 25 minutes or more; shorter-lived tokens refresh
	// in their last 20%.
	DefaultWindow = 5 * time.Minute
	// maxSkew is the most a token's expiry is brought forward so that it is
	// never sent in its last seconds; short-lived tokens use a tenth of
	// their life.
	maxSkew = 10 * time.Second
	// DefaultFetchTimeout bounds one fetch, retries included.
	DefaultFetchTimeout = 2 * time.Minute
)

// Entry is one cached token and what is derived from it once. Entries are
// immutable apart from their freshness flag; never modify one or its Token.
type Entry struct {
	// fresh is true until the refresh window opens. With the real clock a
	// timer clears it, so the hot path reads one atomic flag and no clock.
	fresh atomic.Bool
	// Token is a copy of the token the fetch returned, held in the entry
	// itself (tok) so that a cache hit touches one object.
	Token *oauth2.Token
	tok   oauth2.Token
	// Header is the Authorization header value ("Bearer <token>"), built
	// once per token so requests do not rebuild it.
	Header []string

	timer *time.Timer
	// born is when the entry was made (with a monotonic reading under the
	// real clock); refreshAfter and staleAfter are measured from it.
	born                     time.Time
	refreshAfter, staleAfter time.Duration
	used                     *atomic.Bool // this entry's, or the cache's with OneSession
}

// Static returns an entry that is not in any cache, for a credential that
// never changes (a reference token): header is the credential header's
// value.
func Static(header string) *Entry {
	return &Entry{Header: []string{header}, used: new(atomic.Bool), refreshAfter: math.MaxInt64, staleAfter: math.MaxInt64}
}

// FirstUse reports true once: the first time it is called for the entry,
// or with Options.OneSession for any entry of its cache (the transport
// calls it when the API first accepts a token, which on ERP.net opens a
// session).
func (e *Entry) FirstUse() bool { return !e.used.Load() && e.used.CompareAndSwap(false, true) }

// Touch reads e's first bytes, so that a Get soon after finds them in the
// processor's cache: a caller with other memory to wait for starts this
// load early, and the two loads overlap.
func (e *Entry) Touch() { e.fresh.Load() }

// Fresh reports whether the entry is before its refresh window at now.
func (e *Entry) Fresh(now time.Time) bool { return now.Sub(e.born) < e.refreshAfter }

// Usable reports whether the entry may still be handed out at now.
func (e *Entry) Usable(now time.Time) bool { return now.Sub(e.born) < e.staleAfter }

func (e *Entry) stop() {
	if e != nil && e.timer != nil {
		e.timer.Stop()
	}
}

// Options tune a Cache. The zero value is the documented default.
type Options struct {
	// Window is how long before expiry the background refresh starts.
	// Zero means DefaultWindow, or 20% of the lifetime for short tokens.
	Window time.Duration
	// FetchTimeout bounds one fetch; zero means DefaultFetchTimeout.
	FetchTimeout time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logger receives a warning when a background refresh fails.
	Logger *slog.Logger
	// Report receives token.cache_hit, token.wait and token.refresh_ahead.
	Report *hook.Reporter
	// OneSession says every token of the cache belongs to one ERP.net
	// session (a user's sign-in: a refresh keeps the session), so only the
	// first use of the first token opens one.
	OneSession bool
}

// Fetch obtains a new token. ctx belongs to the cache, not to any caller: it
// ends when the cache is closed or the fetch times out.
type Fetch func(ctx context.Context) (*oauth2.Token, error)

type call struct {
	done chan struct{}
	e    *Entry
	err  error
}

// Cache caches one token. Create it with New and Close it when done.
//
// A Cache may also be embedded in a larger struct (so that a cache hit
// touches one object less) and set up there with Init.
type Cache struct {
	// Read by every Get: kept together at the start.
	cur    atomic.Pointer[Entry]
	report *hook.Reporter // nil unless events are wanted
	clock  bool           // Options.Now is set: the fast path is off

	fetch  Fetch
	opts   Options
	used   atomic.Bool // with OneSession: the session was opened
	now    func() time.Time
	flight atomic.Pointer[call]
	// retryAt (unix nanoseconds) holds back background refreshes after one
	// failed.
	retryAt atomic.Int64

	mu     sync.Mutex // guards closed, ctx, cancel and wg.Add
	closed bool
	ctx    context.Context // made by the first fetch: a cache that never fetches costs none
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New returns a cache that calls fetch when it needs a token. It does no I/O.
func New(fetch Fetch, opts Options) *Cache {
	c := new(Cache)
	c.Init(fetch, opts)
	return c
}

// Init sets up a zero Cache (one embedded in another struct) as New does.
// It must be called once, before any other method.
func (c *Cache) Init(fetch Fetch, opts Options) {
	c.fetch, c.opts, c.now, c.clock = fetch, opts, opts.Now, opts.Now != nil
	if opts.Report.Enabled() {
		c.report = opts.Report
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.opts.FetchTimeout <= 0 {
		c.opts.FetchTimeout = DefaultFetchTimeout
	}
}

// Get returns a usable token. A fresh cached token is returned at once; one
// in its refresh window is returned at once and a background refresh is
// started if none is running; otherwise Get waits for the single shared
// fetch or for ctx, whichever ends first.
func (c *Cache) Get(ctx context.Context) (*Entry, error) {
	if e := c.cur.Load(); e != nil && e.fresh.Load() && !c.clock {
		if c.report != nil {
			c.report.Emit(ctx, auth.Event{Name: "token.cache_hit"})
		}
		return e, nil
	}
	return c.get(ctx)
}

// get is Get past the fast path.
func (c *Cache) get(ctx context.Context) (*Entry, error) {
	if e := c.cur.Load(); e != nil {
		if e.fresh.Load() {
			// A test clock drives the flag: it is cleared when that clock
			// passes the refresh point (the real clock's timer does it).
			if c.age(e) < e.refreshAfter {
				c.hit(ctx)
				return e, nil
			}
			e.fresh.Store(false)
		}
		age := c.age(e)
		if age < e.refreshAfter {
			c.hit(ctx)
			return e, nil
		}
		if age < e.staleAfter {
			if c.flight.Load() == nil && c.now().UnixNano() >= c.retryAt.Load() {
				c.start()
				if c.report != nil {
					c.report.Emit(ctx, auth.Event{Name: "token.refresh_ahead", Lead: e.Token.Expiry.Sub(c.now())})
				}
			}
			c.hit(ctx)
			return e, nil
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	start := time.Now()
	cl := c.start()
	var e *Entry
	var err error
	select {
	case <-cl.done:
		e, err = cl.e, cl.err
	case <-ctx.Done():
		err = ctx.Err()
	}
	if c.report != nil {
		c.report.Emit(ctx, auth.Event{Name: "token.wait", Duration: time.Since(start), Err: err})
	}
	return e, err
}

func (c *Cache) hit(ctx context.Context) {
	if c.report != nil {
		c.report.Emit(ctx, auth.Event{Name: "token.cache_hit"})
	}
}

// age is how long ago e was made: on the monotonic clock unless a test
// clock is set.
func (c *Cache) age(e *Entry) time.Duration {
	if c.opts.Now == nil {
		return time.Since(e.born)
	}
	return c.now().Sub(e.born)
}

// Peek returns the cached entry, usable or not, or nil. It never fetches.
func (c *Cache) Peek() *Entry { return c.cur.Load() }

// Set puts tok in the cache (for example one obtained by a code exchange)
// and returns its entry.
func (c *Cache) Set(tok *oauth2.Token) *Entry {
	e := c.entry(tok)
	c.cur.Swap(e).stop()
	c.retryAt.Store(0)
	return e
}

// Invalidate drops the cached token so the next Get fetches.
func (c *Cache) Invalidate() { c.cur.Swap(nil).stop() }

// InvalidateIf drops the cached token only if it is still e (so a 401 on an
// old token does not discard a new one another goroutine just fetched).
func (c *Cache) InvalidateIf(e *Entry) bool {
	if c.cur.CompareAndSwap(e, nil) {
		e.stop()
		return true
	}
	return false
}

// Close stops any running fetch and waits for it. Get after Close returns a
// still-usable cached token, or auth.ErrClosed.
func (c *Cache) Close() {
	c.mu.Lock()
	c.closed = true
	cancel := c.cancel
	c.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	c.wg.Wait()
	c.cur.Load().stop()
}

var closedDone = func() chan struct{} { ch := make(chan struct{}); close(ch); return ch }()

// start joins the running fetch or starts one.
func (c *Cache) start() *call {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cl := c.flight.Load(); cl != nil {
		return cl
	}
	if e := c.cur.Load(); e != nil && c.age(e) < e.refreshAfter {
		// Another fetch completed between the caller's check and now.
		return &call{done: closedDone, e: e}
	}
	if c.closed {
		return &call{done: closedDone, err: auth.ErrClosed}
	}
	if c.ctx == nil {
		c.ctx, c.cancel = context.WithCancel(context.Background())
	}
	cl := &call{done: make(chan struct{})}
	c.flight.Store(cl)
	c.wg.Add(1)
	go c.run(cl)
	return cl
}

func (c *Cache) run(cl *call) {
	defer c.wg.Done()
	ctx, cancel := context.WithTimeout(c.ctx, c.opts.FetchTimeout)
	tok, err := c.fetch(ctx)
	cancel()
	if err == nil && (tok == nil || tok.AccessToken == "") {
		err = &auth.Error{Op: "token fetch", Kind: auth.ErrTemporary, Err: errEmpty}
	}
	if err == nil {
		cl.e = c.Set(tok)
	} else {
		cl.err = err
		now := c.now()
		backoff := 10 * time.Second
		if e := c.cur.Load(); e != nil {
			// Try again within the token's remaining life, not after it.
			left := e.staleAfter - c.age(e)
			backoff = min(backoff, max(100*time.Millisecond, left/4))
			if c.opts.Logger != nil && left > 0 {
				c.opts.Logger.Warn("background token refresh failed; still using the current token",
					"error", err.Error(), "retry_in", backoff)
			}
		}
		c.retryAt.Store(now.Add(backoff).UnixNano())
	}
	c.mu.Lock()
	c.flight.Store(nil)
	c.mu.Unlock()
	close(cl.done)
}

type emptyErr struct{}

func (emptyErr) Error() string { return "fetch returned no access token" }

var errEmpty error = emptyErr{}

// entry computes the refresh and stale points of tok and, under the real
// clock, arms the timer that ends its fresh period.
func (c *Cache) entry(tok *oauth2.Token) *Entry {
	e := &Entry{tok: *tok, Header: []string{tok.Type() + " " + tok.AccessToken},
		born: c.now(), refreshAfter: math.MaxInt64, staleAfter: math.MaxInt64, used: &c.used}
	e.Token = &e.tok
	if !c.opts.OneSession {
		e.used = new(atomic.Bool)
	}
	if !tok.Expiry.IsZero() {
		life := tok.Expiry.Sub(e.born)
		skew := min(maxSkew, life/10)
		window := c.opts.Window
		if window <= 0 {
			window = min(DefaultWindow, life/5)
		}
		e.staleAfter = life - max(skew, 0)
		e.refreshAfter = min(life-window, e.staleAfter)
	}
	if e.refreshAfter > 0 {
		e.fresh.Store(true)
		if c.opts.Now == nil && e.refreshAfter != math.MaxInt64 {
			e.timer = time.AfterFunc(e.refreshAfter, func() { e.fresh.Store(false) })
		}
	}
	return e
}
