package keylock

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestLockExcludesAndDropsUnusedKeys(t *testing.T) {
	var l Map
	var held, max int
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			unlock, err := l.Lock(context.Background(), "k")
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			held++
			if held > max {
				max = held
			}
			mu.Unlock()
			mu.Lock()
			held--
			mu.Unlock()
			unlock()
			unlock() // harmless
		}()
	}
	wg.Wait()
	if max != 1 {
		t.Fatalf("holders at once = %d, want 1", max)
	}
	if n := l.Len(); n != 0 {
		t.Fatalf("keys left = %d, want 0", n)
	}
}

func TestLockHonoursContext(t *testing.T) {
	var l Map
	unlock, err := l.Lock(context.Background(), "k")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := l.Lock(ctx, "k"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Lock on a held key with a cancelled context: %v", err)
	}
	if _, ok := l.TryLock("k"); ok {
		t.Fatal("TryLock took a held lock")
	}
	unlock()
	u2, ok := l.TryLock("k")
	if !ok {
		t.Fatal("TryLock did not take a free lock")
	}
	u2()
	if n := l.Len(); n != 0 {
		t.Fatalf("keys left = %d, want 0", n)
	}
}

// A holder that never unlocks is retired once it has held the lock for
// maxHold: the waiters move on to a fresh lock (one at a time), onRetire is
// called once, and the late holder's unlock releases nothing of theirs.
func TestLockOrRetireRetiresADroppedHolder(t *testing.T) {
	var l Map
	const maxHold = 500 * time.Millisecond // successors hold for far less
	var retired atomic.Int32
	onRetire := func() { retired.Add(1) }
	ctx := context.Background()
	dropped, err := l.LockOrRetire(ctx, "k", maxHold, onRetire)
	if err != nil {
		t.Fatal(err)
	}
	var inside, most, done atomic.Int32
	var wg sync.WaitGroup
	for range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			unlock, err := l.LockOrRetire(ctx, "k", maxHold, onRetire)
			if err != nil {
				t.Error(err)
				return
			}
			n := inside.Add(1)
			for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
			}
			time.Sleep(time.Millisecond)
			inside.Add(-1)
			done.Add(1)
			unlock()
		}()
	}
	wg.Wait()
	if done.Load() != 5 || most.Load() != 1 {
		t.Fatalf("%d waiters got the lock, at most %d at once; want 5, 1", done.Load(), most.Load())
	}
	if n := retired.Load(); n != 1 {
		t.Fatalf("onRetire called %d times, want 1", n)
	}
	// A successor holds the key's lock; the dropped holder's late unlock
	// must not release it.
	successor, err := l.LockOrRetire(ctx, "k", maxHold, onRetire)
	if err != nil {
		t.Fatal(err)
	}
	dropped()
	dropped()
	if _, ok := l.TryLock("k"); ok {
		t.Fatal("the late unlock released the successor's lock")
	}
	successor()
	if n := l.Len(); n != 0 {
		t.Fatalf("keys left = %d, want 0", n)
	}
}

// A holder that unlocks within maxHold is never retired, and a waiter
// whose context ends gives up.
func TestLockOrRetireKeepsALiveHolder(t *testing.T) {
	var l Map
	ctx := context.Background()
	retire := func() { t.Error("a live holder was retired") }
	unlock, err := l.LockOrRetire(ctx, "k", time.Hour, retire)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan func(), 1)
	go func() {
		u, err := l.LockOrRetire(ctx, "k", time.Hour, retire)
		if err != nil {
			t.Error(err)
		}
		got <- u
	}()
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := l.LockOrRetire(cctx, "k", time.Hour, retire); !errors.Is(err, context.Canceled) {
		t.Fatalf("waiter with a cancelled context: %v", err)
	}
	select {
	case <-got:
		t.Fatal("a waiter got a held lock")
	case <-time.After(20 * time.Millisecond):
	}
	unlock()
	(<-got)()
	if n := l.Len(); n != 0 {
		t.Fatalf("keys left = %d, want 0", n)
	}
}
