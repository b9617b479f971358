package flight

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/erpnetgo/auth"
	"github.com/erpnetgo/auth/internal/lifetime"
)

func TestOneCallManyWaiters(t *testing.T) {
	life := lifetime.New()
	defer life.Close()
	var g Group[int]
	var mu sync.Mutex
	var runs atomic.Int32
	gate := make(chan struct{})
	start := func() *Call[int] {
		mu.Lock()
		defer mu.Unlock()
		return g.Start(&mu, life, func(context.Context) (int, error) {
			runs.Add(1)
			<-gate
			return 7, nil
		}, func(v int, err error) (int, error) { return v + 1, err })
	}
	first := start()
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := start().Wait(cancelled); !errors.Is(err, context.Canceled) {
		t.Fatalf("a waiter's own context: %v", err)
	}
	var wg sync.WaitGroup
	for range 50 {
		c := start()
		if c != first {
			t.Fatal("a second call started while one was in flight")
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if v, err := c.Wait(context.Background()); v != 8 || err != nil {
				t.Errorf("got %d, %v", v, err)
			}
		}()
	}
	close(gate)
	wg.Wait()
	if v, _ := first.Wait(context.Background()); v != 8 || runs.Load() != 1 || (g.Current() != nil) {
		t.Fatalf("v=%d runs=%d running=%v", v, runs.Load(), (g.Current() != nil))
	}
}

func TestCloseEndsTheCall(t *testing.T) {
	life := lifetime.New()
	var g Group[int]
	var mu sync.Mutex
	mu.Lock()
	c := g.Start(&mu, life, func(ctx context.Context) (int, error) { <-ctx.Done(); return 0, ctx.Err() }, nil)
	mu.Unlock()
	life.Close()
	if _, err := c.Wait(context.Background()); !errors.Is(err, context.Canceled) {
		t.Fatalf("after Close: %v", err)
	}
	mu.Lock()
	c = g.Start(&mu, life, func(context.Context) (int, error) { return 1, nil }, nil)
	mu.Unlock()
	if _, err := c.Wait(context.Background()); !errors.Is(err, auth.ErrClosed) {
		t.Fatalf("Start after Close: %v", err)
	}
}
