package keylock

import (
	"context"
	"errors"
	"sync"
	"testing"
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
