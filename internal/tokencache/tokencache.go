// Package tokencache is the SDK's one token cache. It holds one access token
// and hands it out with an atomic load: no lock, no allocation and no clock
// read while the token is fresh (a timer of the cache's clock marks the end
// of that period; a test clock drives the same timer). In the token's last
// part of life exactly one background refresh runs while callers keep the
// still-valid token; when the cache is cold or the token has expired,
// exactly one fetch runs however many goroutines ask, and each caller may
// give up through its own context without cancelling the shared fetch.
//
// A fetch belongs to the cache's owner, not to any caller: it runs in the
// owner's lifetime.Group and ends only when the owner closes. Detaching a
// cache (a session dropped from memory) stops its timer and refuses new
// fetches, but never ends a fetch in flight.
//
// Ages are measured on the monotonic clock under the real clock, like Go's
// timers: a change of the wall clock does not make a token look fresher or
// older than it is. While a machine is suspended the monotonic clock stops,
// so just after a resume a token may look younger than it is; the
// transport (internal/transport) answers the API's 401 by invalidating it,
// fetching a new one and retrying.
package tokencache

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/oauth2"

	"github.com/erpnetgo/auth"
	"github.com/erpnetgo/auth/internal/clock"
	"github.com/erpnetgo/auth/internal/credential"
	"github.com/erpnetgo/auth/internal/flight"
	"github.com/erpnetgo/auth/internal/hook"
	"github.com/erpnetgo/auth/internal/lifetime"
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

// ErrDetached is returned by Get of a detached cache when it has no fresh
// token to hand out: the owner looks up the cache that replaced it.
var ErrDetached = errors.New("tokencache: detached")

// detachedCall is the finished call every fetch of a detached cache gets.
var detachedCall = flight.Done[*Entry](nil, ErrDetached)

// Entry is one cached token and what is derived from it once. Entries are
// immutable apart from their freshness flag and API-session mark; never
// modify one or its Token.
type Entry struct {
	// fresh is true until the refresh window opens; the clock's timer
	// clears it, so the hot path reads one atomic flag and no clock.
	fresh atomic.Bool
	// Token is a copy of the token the fetch returned, held in the entry
	// itself (tok) so that a cache hit touches one object.
	Token *oauth2.Token
	tok   oauth2.Token
	// Credential is what the transport sends: the Authorization header
	// value ("Bearer <token>"), built once per token.
	credential.Credential

	timer clock.Timer
	// born is when the entry was made (with a monotonic reading under the
	// real clock); refreshAfter and staleAfter are measured from it.
	born                     time.Time
	refreshAfter, staleAfter time.Duration
}

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

// Options tune a Cache. Life is required; the rest has useful zero values.
type Options struct {
	// Life is the owner's lifetime: fetches run in its goroutines and end
	// when it closes; once it is closed the cache fetches nothing.
	Life *lifetime.Group
	// Window is how long before expiry the background refresh starts.
	// Zero means DefaultWindow, or 20% of the lifetime for short tokens.
	Window time.Duration
	// FetchTimeout bounds one fetch; zero means DefaultFetchTimeout.
	FetchTimeout time.Duration
	// Clock tells the time and runs the timer that ends a token's fresh
	// period; nil means the real clock.
	Clock clock.Clock
	// Logger receives a warning when a background refresh fails.
	Logger *slog.Logger
	// Report receives token.cache_hit, token.wait and token.refresh_ahead.
	Report *hook.Reporter
	// OneSession says every token of the cache belongs to one ERP.net API
	// session (a user's sign-in: a refresh keeps the session), so only the
	// first accepted use of the first token opens one.
	OneSession bool
}

// Fetch obtains a new token. ctx belongs to the cache's owner, not to any
// caller: it ends when the owner closes or the fetch times out.
type Fetch func(ctx context.Context) (*oauth2.Token, error)

// Cache caches one token. Create it with New, or embed it in a larger
// struct (so that a cache hit touches one object less) and set it up there
// with Init.
type Cache struct {
	// Read by every Get: kept together at the start.
	cur    atomic.Pointer[Entry]
	report *hook.Reporter // nil unless events are wanted

	fetch   Fetch
	opts    Options
	session atomic.Bool // with OneSession: the API session was opened
	flight  flight.Group[*Entry]
	// retryAt (unix nanoseconds) holds back background refreshes after one
	// failed.
	retryAt atomic.Int64

	mu       sync.Mutex  // guards writing detached and the start of a fetch
	detached atomic.Bool // written under mu, read without it
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
	c.fetch, c.opts = fetch, opts
	if opts.Report.Enabled() {
		c.report = opts.Report
	}
	if c.opts.Clock == nil {
		c.opts.Clock = clock.Real
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
	if e := c.cur.Load(); e != nil && e.fresh.Load() {
		if c.report != nil {
			c.report.Emit(ctx, auth.Event{Name: "token.cache_hit"})
		}
		return e, nil
	}
	return c.get(ctx)
}

// Credential is Get for the credential transport: the entry's credential.
func (c *Cache) Credential(ctx context.Context) (*credential.Credential, error) {
	e, err := c.Get(ctx)
	if err != nil {
		return nil, err
	}
	return &e.Credential, nil
}

// get is Get past the fresh flag: the timer has fired (or, with a test
// clock, its time has come but nothing has read the clock yet), the cache
// is cold, or it was detached.
func (c *Cache) get(ctx context.Context) (*Entry, error) {
	if e := c.cur.Load(); e != nil {
		age := c.age(e)
		if age < e.refreshAfter && !c.Detached() {
			c.hit(ctx)
			return e, nil
		}
		if age < e.staleAfter && !c.Detached() {
			if c.flight.Current() == nil && c.opts.Clock.Now().UnixNano() >= c.retryAt.Load() {
				c.startAhead()
			}
			c.hit(ctx)
			return e, nil
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	start := time.Now()
	e, err := c.start(c.run).Wait(ctx)
	if c.report != nil && !errors.Is(err, ErrDetached) {
		c.report.Emit(ctx, auth.Event{Name: "token.wait", Duration: time.Since(start), Err: err})
	}
	return e, err
}

func (c *Cache) hit(ctx context.Context) {
	if c.report != nil {
		c.report.Emit(ctx, auth.Event{Name: "token.cache_hit"})
	}
}

// Detached reports whether Detach was called: the cache fetches no more.
func (c *Cache) Detached() bool { return c.detached.Load() }

// age is how long ago e was made, by the cache's clock.
func (c *Cache) age(e *Entry) time.Duration { return c.opts.Clock.Now().Sub(e.born) }

// Peek returns the cached entry, usable or not, or nil. It never fetches
// and reports nothing.
func (c *Cache) Peek() *Entry { return c.cur.Load() }

// Set puts tok in the cache (for example one obtained by a code exchange)
// and returns its entry.
func (c *Cache) Set(tok *oauth2.Token) *Entry {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.entry(tok, !c.detached.Load())
	c.cur.Swap(e).stop()
	c.retryAt.Store(0)
	return e
}

// Invalidate drops the cached token so the next Get fetches.
func (c *Cache) Invalidate() { c.cur.Swap(nil).stop() }

// InvalidateIf drops the cached token only if its credential is still cr
// (so a 401 on an old token does not discard a new one another goroutine
// just fetched).
func (c *Cache) InvalidateIf(cr *credential.Credential) bool {
	e := c.cur.Load()
	if e != nil && &e.Credential == cr && c.cur.CompareAndSwap(e, nil) {
		e.stop()
		return true
	}
	return false
}

// Detach stops the cache's timer and makes every later Get that finds no
// token in its fresh period fail with ErrDetached instead of fetching. It
// refuses (false) while a fetch is in flight: a cache is detached only
// when nothing of it is under way, so a fetch is never abandoned.
func (c *Cache) Detach() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.flight.Current() != nil {
		return false
	}
	c.detached.Store(true)
	if e := c.cur.Load(); e != nil {
		e.stop()
		e.fresh.Store(false)
	}
	return true
}

// start joins the running fetch or starts one.
func (c *Cache) start(run func(context.Context) (*Entry, error)) *flight.Call[*Entry] {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cl := c.flight.Current(); cl != nil {
		return cl
	}
	if c.detached.Load() {
		return detachedCall
	}
	if e := c.cur.Load(); e != nil && c.age(e) < e.refreshAfter {
		// Another fetch completed between the caller's check and now.
		return flight.Done(e, nil)
	}
	return c.flight.Start(&c.mu, c.opts.Life, run, c.land)
}

// startAhead starts a background refresh in the refresh window. Its
// token.refresh_ahead event is reported by the refresh itself, before it
// fetches: once per refresh started (not per caller that saw the window),
// and always before the token.issued or token.failed that ends it.
func (c *Cache) startAhead() {
	if c.report == nil {
		c.start(c.run)
		return
	}
	c.start(func(ctx context.Context) (*Entry, error) {
		if e := c.cur.Load(); e != nil {
			c.report.Emit(ctx, auth.Event{Name: "token.refresh_ahead", Lead: e.Token.Expiry.Sub(c.opts.Clock.Now())})
		}
		return c.run(ctx)
	})
}

// run is one fetch, bounded by FetchTimeout and by the owner's lifetime.
func (c *Cache) run(ctx context.Context) (*Entry, error) {
	ctx, cancel := context.WithTimeout(ctx, c.opts.FetchTimeout)
	defer cancel()
	tok, err := c.fetch(ctx)
	if err == nil && (tok == nil || tok.AccessToken == "") {
		err = &auth.Error{Op: "token fetch", Kind: auth.ErrTemporary, Err: errEmpty}
	}
	if err != nil {
		return nil, err
	}
	return c.entry(tok, true), nil
}

// land puts what a fetch returned in the cache, with c.mu held: a new
// entry, or after a failure the time before which no background refresh
// starts again.
func (c *Cache) land(e *Entry, err error) (*Entry, error) {
	if err == nil {
		if c.detached.Load() { // detached meanwhile: no timer
			e.stop()
			e.fresh.Store(false)
		}
		c.cur.Swap(e).stop()
		c.retryAt.Store(0)
		return e, nil
	}
	if c.opts.Life.Closed() {
		err = auth.ErrClosed
	}
	backoff := 10 * time.Second
	if cur := c.cur.Load(); cur != nil {
		// Try again within the token's remaining life, not after it.
		left := cur.staleAfter - c.age(cur)
		backoff = min(backoff, max(100*time.Millisecond, left/4))
		if c.opts.Logger != nil && left > 0 && !errors.Is(err, auth.ErrClosed) {
			c.opts.Logger.Warn("background token refresh failed; still using the current token",
				"error", err.Error(), "retry_in", backoff)
		}
	}
	c.retryAt.Store(c.opts.Clock.Now().Add(backoff).UnixNano())
	return nil, err
}

type emptyErr struct{}

func (emptyErr) Error() string { return "fetch returned no access token" }

var errEmpty error = emptyErr{}

// entry computes the refresh and stale points of tok and, when arm is set,
// starts the timer that ends its fresh period.
func (c *Cache) entry(tok *oauth2.Token, arm bool) *Entry {
	e := &Entry{tok: *tok, born: c.opts.Clock.Now(), refreshAfter: math.MaxInt64, staleAfter: math.MaxInt64}
	e.Token = &e.tok
	var session *atomic.Bool
	if c.opts.OneSession {
		session = &c.session
	}
	e.Credential.Init(tok.Type()+" "+tok.AccessToken, session)
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
	if e.refreshAfter > 0 && arm {
		e.fresh.Store(true)
		if e.refreshAfter != math.MaxInt64 {
			e.timer = c.opts.Clock.AfterFunc(e.refreshAfter, func() { e.fresh.Store(false) })
		}
	}
	return e
}
