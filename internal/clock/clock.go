// Package clock is the SDK's one notion of time: Now, and AfterFunc for
// the timers that end a cached token's fresh period. Production uses the
// real clock. A test clock given as a plain function (Config.Now) drives
// the same timers: a timer is due when that function says its time has
// come, and due timers fire whenever the SDK reads the clock, or when
// Poke is called (the test server's Advance calls it), so tests run the
// code production runs.
package clock

import (
	"container/heap"
	"sync"
	"time"
	"weak"
)

// Clock tells the time and runs functions after a while.
type Clock interface {
	Now() time.Time
	// AfterFunc calls f, in a goroutine of its own or in a caller of Now,
	// once d has passed. f must not block.
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is a pending AfterFunc.
type Timer interface {
	// Stop prevents the call if it has not happened yet and reports
	// whether it did so.
	Stop() bool
}

// Real is the system clock.
var Real Clock = real{}

type real struct{}

func (real) Now() time.Time { return time.Now() }

func (real) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }

// From returns Real for a nil now, and otherwise a Clock whose time is
// now's and whose timers fire when now reaches them.
func From(now func() time.Time) Clock {
	if now == nil {
		return Real
	}
	c := &funcClock{now: now}
	registry.add(c)
	return c
}

// funcClock is a Clock over a function that may jump (a test clock).
type funcClock struct {
	now func() time.Time
	mu  sync.Mutex
	due timers
}

// Now returns the function's time and fires the timers it has reached.
func (c *funcClock) Now() time.Time {
	t := c.now()
	c.fire(t)
	return t
}

func (c *funcClock) AfterFunc(d time.Duration, f func()) Timer {
	t := &funcTimer{c: c, at: c.now().Add(d), f: f, i: -1}
	c.mu.Lock()
	heap.Push(&c.due, t)
	c.mu.Unlock()
	if d <= 0 {
		c.fire(c.now())
	}
	return t
}

// fire calls every timer due at t, outside the lock.
func (c *funcClock) fire(t time.Time) {
	c.mu.Lock()
	if len(c.due) == 0 || c.due[0].at.After(t) {
		c.mu.Unlock()
		return
	}
	var run []func()
	for len(c.due) > 0 && !c.due[0].at.After(t) {
		ft := heap.Pop(&c.due).(*funcTimer)
		run = append(run, ft.f)
	}
	c.mu.Unlock()
	for _, f := range run {
		f()
	}
}

type funcTimer struct {
	c  *funcClock
	at time.Time
	f  func()
	i  int // index in the heap; -1 when not in it
}

func (t *funcTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	if t.i < 0 {
		return false
	}
	heap.Remove(&t.c.due, t.i)
	return true
}

// timers is a min-heap by due time.
type timers []*funcTimer

func (h timers) Len() int           { return len(h) }
func (h timers) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h timers) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].i, h[j].i = i, j
}
func (h *timers) Push(x any) {
	t := x.(*funcTimer)
	t.i = len(*h)
	*h = append(*h, t)
}
func (h *timers) Pop() any {
	old := *h
	t := old[len(old)-1]
	old[len(old)-1] = nil
	t.i = -1
	*h = old[:len(old)-1]
	return t
}

// Poke fires the due timers of every test clock in the process: a test
// server that moves its clock (and the apps' clocks with it) calls it, so
// that what the move made due happens at once.
func Poke() { registry.poke() }

// registry holds the test clocks, weakly: a clock nobody uses any more is
// collected and dropped from it.
var registry clocks

type clocks struct {
	mu sync.Mutex
	cs []weak.Pointer[funcClock]
}

func (r *clocks) add(c *funcClock) {
	r.mu.Lock()
	defer r.mu.Unlock()
	live := r.cs[:0]
	for _, w := range r.cs {
		if w.Value() != nil {
			live = append(live, w)
		}
	}
	r.cs = append(live, weak.Make(c))
}

func (r *clocks) poke() {
	r.mu.Lock()
	cs := make([]*funcClock, 0, len(r.cs))
	for _, w := range r.cs {
		if c := w.Value(); c != nil {
			cs = append(cs, c)
		}
	}
	r.mu.Unlock()
	for _, c := range cs {
		c.Now()
	}
}
