package tokencache

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/erpnetgo/auth"
	"github.com/erpnetgo/auth/internal/clock"
	"github.com/erpnetgo/auth/internal/lifetime"
	"github.com/erpnetgo/auth/internal/testutil"
)

func TestMain(m *testing.M) { testutil.VerifyNoLeaks(m) }

// clock is a settable test clock.
type testClock struct{ t atomic.Int64 }

func newClock() *testClock {
	c := &testClock{}
	c.t.Store(time.Unix(1_700_000_000, 0).UnixNano())
	return c
}
func (c *testClock) Now() time.Time { return time.Unix(0, c.t.Load()) }
func (c *testClock) Advance(d time.Duration) {
	c.t.Add(int64(d))
	clock.Poke() // as the test server's Advance does
}

// newCache returns a cache on clk (nil: the real clock) whose owner closes
// when the test ends.
func newCache(t *testing.T, f Fetch, clk *testClock, opts Options) (*Cache, *lifetime.Group) {
	life := lifetime.New()
	t.Cleanup(func() { life.Close() })
	opts.Life = life
	if clk != nil {
		opts.Clock = clock.From(clk.Now)
	}
	return New(f, opts), life
}

type fetcher struct {
	clk   *testClock
	calls atomic.Int32
	life  time.Duration
	gate  chan struct{} // when non-nil, each fetch waits for a value
	fail  atomic.Bool
}

func (f *fetcher) fetch(ctx context.Context) (*oauth2.Token, error) {
	n := f.calls.Add(1)
	if f.gate != nil {
		select {
		case <-f.gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if f.fail.Load() {
		return nil, &auth.Error{Op: "test", Kind: auth.ErrTemporary}
	}
	return &oauth2.Token{AccessToken: fmt.Sprintf("tok-%d", n), Expiry: f.clk.Now().Add(f.life)}, nil
}

func TestColdCacheOneFetchForManyCallers(t *testing.T) {
	clk := newClock()
	f := &fetcher{clk: clk, life: time.Hour, gate: make(chan struct{})}
	c, _ := newCache(t, f.fetch, clk, Options{})
	var wg sync.WaitGroup
	errs := make(chan error, 1000)
	for i := 0; i < 1000; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e, err := c.Get(context.Background())
			if err == nil && e.Token.AccessToken != "tok-1" {
				err = fmt.Errorf("got %s", e.Token.AccessToken)
			}
			if err != nil {
				errs <- err
			}
		}()
	}
	time.Sleep(50 * time.Millisecond) // let the goroutines pile up on the fetch
	close(f.gate)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n := f.calls.Load(); n != 1 {
		t.Fatalf("fetches = %d, want 1", n)
	}
}

func TestRefreshWindowServesOldTokenAndRefreshesOnce(t *testing.T) {
	clk := newClock()
	f := &fetcher{clk: clk, life: time.Hour}
	c, _ := newCache(t, f.fetch, clk, Options{})
	if _, err := c.Get(context.Background()); err != nil {
		t.Fatal(err)
	}
	f.gate = make(chan struct{})  // hold the background refresh
	clk.Advance(56 * time.Minute) // inside the default 5-minute window
	var wg sync.WaitGroup
	for i := 0; i < 1000; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e, err := c.Get(context.Background())
			if err != nil || e.Token.AccessToken != "tok-1" {
				t.Errorf("caller waited or got a new token: %v %v", e, err)
			}
		}()
	}
	wg.Wait() // all returned while the refresh is still held: nobody waited
	if n := f.calls.Load(); n != 2 {
		t.Fatalf("fetches = %d, want 2 (initial + one background)", n)
	}
	close(f.gate)
	deadline := time.Now().Add(5 * time.Second)
	for c.Peek().Token.AccessToken != "tok-2" {
		if time.Now().After(deadline) {
			t.Fatal("background refresh never landed")
		}
		time.Sleep(time.Millisecond)
	}
	if n := f.calls.Load(); n != 2 {
		t.Fatalf("fetches = %d, want 2", n)
	}
}

func TestWindowForShortLifetimeIsTwentyPercent(t *testing.T) {
	clk := newClock()
	f := &fetcher{clk: clk, life: 10 * time.Minute}
	c, _ := newCache(t, f.fetch, clk, Options{})
	e, _ := c.Get(context.Background())
	if !e.Fresh(clk.Now().Add(7*time.Minute + 59*time.Second)) {
		t.Fatal("not fresh before the last 20%")
	}
	if e.Fresh(clk.Now().Add(8 * time.Minute)) {
		t.Fatal("still fresh in the last 20%")
	}
	if !e.Usable(clk.Now().Add(9*time.Minute+49*time.Second)) || e.Usable(clk.Now().Add(9*time.Minute+51*time.Second)) {
		t.Fatal("stale point is not expiry minus 10s")
	}
}

func TestCallerContextDoesNotCancelSharedFetch(t *testing.T) {
	clk := newClock()
	f := &fetcher{clk: clk, life: time.Hour, gate: make(chan struct{})}
	c, _ := newCache(t, f.fetch, clk, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	gotErr := make(chan error, 1)
	go func() { _, err := c.Get(ctx); gotErr <- err }()
	other := make(chan *Entry, 1)
	go func() { e, _ := c.Get(context.Background()); other <- e }()
	time.Sleep(20 * time.Millisecond)
	cancel()
	select {
	case err := <-gotErr:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("cancelled caller did not return promptly")
	}
	close(f.gate)
	if e := <-other; e == nil || e.Token.AccessToken != "tok-1" {
		t.Fatal("the other caller lost the shared fetch")
	}
	if _, err := (func() (*Entry, error) { ctx, c2 := context.WithCancel(context.Background()); c2(); return c.Get(ctx) })(); err != nil {
		t.Fatalf("fresh token must be served even to a cancelled context: %v", err)
	}
}

func TestFailedBackgroundRefreshKeepsTokenAndBacksOff(t *testing.T) {
	clk := newClock()
	f := &fetcher{clk: clk, life: time.Hour}
	c, _ := newCache(t, f.fetch, clk, Options{})
	c.Get(context.Background())
	f.fail.Store(true)
	clk.Advance(56 * time.Minute)
	e, err := c.Get(context.Background())
	if err != nil || e.Token.AccessToken != "tok-1" {
		t.Fatalf("%v %v", e, err)
	}
	waitIdle(t, c)
	for i := 0; i < 100; i++ {
		c.Get(context.Background())
	}
	if n := f.calls.Load(); n != 2 {
		t.Fatalf("fetches = %d: a failed refresh must back off", n)
	}
	clk.Advance(11 * time.Second)
	f.fail.Store(false)
	c.Get(context.Background())
	waitIdle(t, c)
	if got := c.Peek().Token.AccessToken; got != "tok-3" {
		t.Fatalf("after backoff got %s", got)
	}
}

func TestExpiredFailureReturnsErrorThenRecovers(t *testing.T) {
	clk := newClock()
	f := &fetcher{clk: clk, life: time.Minute}
	c, _ := newCache(t, f.fetch, clk, Options{})
	c.Get(context.Background())
	clk.Advance(2 * time.Minute)
	f.fail.Store(true)
	if _, err := c.Get(context.Background()); !errors.Is(err, auth.ErrTemporary) {
		t.Fatalf("err = %v", err)
	}
	f.fail.Store(false)
	if e, err := c.Get(context.Background()); err != nil || e.Token.AccessToken != "tok-3" {
		t.Fatalf("%v %v", e, err)
	}
}

func TestInvalidateIf(t *testing.T) {
	clk := newClock()
	f := &fetcher{clk: clk, life: time.Hour}
	c, _ := newCache(t, f.fetch, clk, Options{})
	e1, _ := c.Get(context.Background())
	c.Invalidate()
	e2, _ := c.Get(context.Background())
	if e1 == e2 || e2.Token.AccessToken != "tok-2" {
		t.Fatal("Invalidate did not force a fetch")
	}
	if c.InvalidateIf(&e1.Credential) {
		t.Fatal("stale entry invalidated the new one")
	}
	if !c.InvalidateIf(&e2.Credential) || c.Peek() != nil {
		t.Fatal("InvalidateIf on the current entry failed")
	}
}

func TestCloseStopsFetchAndRefusesNew(t *testing.T) {
	clk := newClock()
	f := &fetcher{clk: clk, life: time.Hour, gate: make(chan struct{})}
	c, life := newCache(t, f.fetch, clk, Options{})
	res := make(chan error, 1)
	go func() { _, err := c.Get(context.Background()); res <- err }()
	time.Sleep(10 * time.Millisecond)
	life.Close() // must cancel the held fetch and wait for it
	if err := <-res; !errors.Is(err, auth.ErrClosed) {
		t.Fatalf("err = %v", err)
	}
	if _, err := c.Get(context.Background()); !errors.Is(err, auth.ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
}

func TestCachedGetAllocatesNothing(t *testing.T) {
	f := &fetcher{clk: newClock(), life: time.Hour}
	c, _ := newCache(t, f.fetch, nil, Options{})
	f.clk = &testClock{}
	f.clk.t.Store(time.Now().UnixNano())
	c.Get(context.Background())
	ctx := context.Background()
	if a := testing.AllocsPerRun(1000, func() { c.Get(ctx) }); a != 0 {
		t.Fatalf("allocs per cached Get = %v", a)
	}
}

func waitIdle(t *testing.T, c *Cache) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for c.flight.Current() != nil {
		if time.Now().After(deadline) {
			t.Fatal("fetch did not finish")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestRealClockTimerEndsFreshPeriod(t *testing.T) {
	var calls atomic.Int32
	c, _ := newCache(t, func(context.Context) (*oauth2.Token, error) {
		n := calls.Add(1)
		return &oauth2.Token{AccessToken: fmt.Sprint("t", n), Expiry: time.Now().Add(time.Second)}, nil
	}, nil, Options{})
	e, err := c.Get(context.Background())
	if err != nil || !e.fresh.Load() {
		t.Fatalf("new entry not fresh: %v", err)
	}
	// Window is 20% of 1 s: the timer clears the flag after about 800 ms.
	deadline := time.Now().Add(5 * time.Second)
	for e.fresh.Load() {
		if time.Now().After(deadline) {
			t.Fatal("timer never ended the fresh period")
		}
		time.Sleep(10 * time.Millisecond)
	}
	c.Get(context.Background()) // in the window: starts one background refresh
	waitIdle(t, c)
	if got := c.Peek().Token.AccessToken; got != "t2" || calls.Load() != 2 {
		t.Fatalf("got %s after %d fetches", got, calls.Load())
	}
}

// A test clock drives the same timer as the real one: the fresh flag ends
// when the clock passes the refresh point, and the hot path (the flag) is
// the only path.
func TestTestClockDrivesTheFreshTimer(t *testing.T) {
	clk := newClock()
	f := &fetcher{clk: clk, life: time.Hour}
	c, _ := newCache(t, f.fetch, clk, Options{})
	e, err := c.Get(context.Background())
	if err != nil || !e.fresh.Load() {
		t.Fatalf("new entry not fresh: %v", err)
	}
	clk.Advance(54 * time.Minute)
	if !e.fresh.Load() {
		t.Fatal("fresh period ended before the refresh window")
	}
	clk.Advance(2 * time.Minute)
	if e.fresh.Load() {
		t.Fatal("the test clock's move did not end the fresh period")
	}
	c.Get(context.Background())
	waitIdle(t, c)
	if got := c.Peek().Token.AccessToken; got != "tok-2" {
		t.Fatalf("after the window opened: %s", got)
	}
}

// Detaching never abandons a fetch: it is refused while one is in flight,
// and the fetch completes for its waiters. A detached cache hands out its
// token no more and fetches nothing.
func TestDetachWaitsForNoFetchAndRefusesNew(t *testing.T) {
	clk := newClock()
	f := &fetcher{clk: clk, life: time.Hour, gate: make(chan struct{})}
	c, _ := newCache(t, f.fetch, clk, Options{})
	res := make(chan *Entry, 1)
	go func() { e, _ := c.Get(context.Background()); res <- e }()
	for !(c.flight.Current() != nil) {
		time.Sleep(time.Millisecond)
	}
	if c.Detach() {
		t.Fatal("detached with a fetch in flight")
	}
	close(f.gate)
	if e := <-res; e == nil || e.Token.AccessToken != "tok-1" {
		t.Fatal("the waiter lost its fetch")
	}
	waitIdle(t, c)
	e := c.Peek()
	if !c.Detach() {
		t.Fatal("Detach refused with nothing in flight")
	}
	if e.fresh.Load() || e.timer.Stop() {
		t.Fatal("a detached cache's entry is still fresh or its timer still pending")
	}
	if _, err := c.Get(context.Background()); !errors.Is(err, ErrDetached) {
		t.Fatalf("Get of a detached cache: %v", err)
	}
	if n := f.calls.Load(); n != 1 {
		t.Fatalf("fetches = %d, want 1", n)
	}
}
