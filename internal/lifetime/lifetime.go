// Package lifetime is the lifetime of a client (a clientcreds Source, an
// authcode Client): a context that ends at Close, and the goroutines Close
// waits for. Every request and goroutine a client starts hangs off its
// Group, so that Close ends them all.
package lifetime

import (
	"context"
	"sync"

	"github.com/erpnetgo/auth"
)

// Group is a client's lifetime. Create it with New.
type Group struct {
	ctx    context.Context
	cancel context.CancelCauseFunc
	mu     sync.Mutex // guards closed against wg.Add
	closed bool
	wg     sync.WaitGroup
}

// New returns an open Group.
func New() *Group {
	g := &Group{}
	g.ctx, g.cancel = context.WithCancelCause(context.Background())
	return g
}

// Context ends when the Group is closed, with cause auth.ErrClosed.
func (g *Group) Context() context.Context { return g.ctx }

// Closed reports whether Close was called.
func (g *Group) Closed() bool { return g.ctx.Err() != nil }

// Go runs f in a goroutine that Close waits for, and reports true; once
// the Group is closed it runs nothing and reports false. f must return
// soon after Context ends.
func (g *Group) Go(f func()) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return false
	}
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		f()
	}()
	return true
}

// Close ends Context and waits for the goroutines of Go. It reports
// whether this call closed the Group (false: it was closed already).
func (g *Group) Close() bool {
	g.mu.Lock()
	first := !g.closed
	g.closed = true
	g.mu.Unlock()
	g.cancel(auth.ErrClosed)
	g.wg.Wait()
	return first
}

// Bind returns a context that ends with ctx or when the Group is closed,
// whichever comes first: requests made on a caller's behalf use one, so
// that Close ends them too. Call stop when done.
func (g *Group) Bind(ctx context.Context) (bound context.Context, stop func()) {
	ctx, cancel := context.WithCancelCause(ctx)
	unhook := context.AfterFunc(g.ctx, func() { cancel(auth.ErrClosed) })
	return ctx, func() {
		unhook()
		cancel(context.Canceled)
	}
}
