// Package flight is the SDK's one single-flight: one call at a time runs
// for many waiters. The call runs in its owner's lifetime (Close ends it),
// never in a caller's context, so a caller that stops waiting never ends
// it for the others. The token cache and the JWKS key set use it.
package flight

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/erpnetgo/auth"
	"github.com/erpnetgo/auth/internal/lifetime"
)

// Call is one call in flight, or done.
type Call[T any] struct {
	done chan struct{}
	val  T
	err  error
}

// Done returns a finished call with val and err.
func Done[T any](val T, err error) *Call[T] {
	return &Call[T]{done: closed, val: val, err: err}
}

var closed = func() chan struct{} { ch := make(chan struct{}); close(ch); return ch }()

// Wait waits for the call's result or for ctx, whichever comes first.
func (c *Call[T]) Wait(ctx context.Context) (T, error) {
	select {
	case <-c.done:
		return c.val, c.err
	case <-ctx.Done():
		var zero T
		return zero, ctx.Err()
	}
}

// Group holds the call in flight, if any. Its owner starts calls holding
// its own mutex (mu, given to Start), so that what decides whether to start
// one and what the call's result changes happen under the same lock.
type Group[T any] struct {
	cur atomic.Pointer[Call[T]]
}

// Current returns the call in flight, or nil. Without mu held it is a
// glimpse (a call may start or end right after).
func (g *Group[T]) Current() *Call[T] { return g.cur.Load() }

// Start runs fn in a goroutine of life as the call in flight and returns
// it; with a call in flight already it returns that one. Called with mu
// held. When fn returns, apply (if not nil) is called with mu held and may
// change the result; then the call ends. Once life is closed Start returns
// a call done with auth.ErrClosed.
func (g *Group[T]) Start(mu *sync.Mutex, life *lifetime.Group, fn func(context.Context) (T, error), apply func(T, error) (T, error)) *Call[T] {
	if c := g.cur.Load(); c != nil {
		return c
	}
	c := &Call[T]{done: make(chan struct{})}
	g.cur.Store(c)
	ok := life.Go(func() {
		val, err := fn(life.Context())
		mu.Lock()
		if apply != nil {
			val, err = apply(val, err)
		}
		c.val, c.err = val, err
		g.cur.Store(nil)
		mu.Unlock()
		close(c.done)
	})
	if !ok {
		g.cur.Store(nil)
		var zero T
		return Done(zero, auth.ErrClosed)
	}
	return c
}
