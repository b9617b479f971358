// Package keylock is the SDK's one per-key lock: a mutex per string key
// whose Lock honours a context, made on first use and dropped when nobody
// holds or waits for it. The memory store's refresh locks and redisstore's
// in-process gates are both built on it.
package keylock

import (
	"context"
	"sync"
)

// Map holds one lock per key. The zero Map is ready to use; it must not be
// copied after first use.
type Map struct {
	mu sync.Mutex
	m  map[string]*entry
}

type entry struct {
	ch chan struct{} // holds a token while the lock is held
	n  int           // holders and waiters
}

// Lock blocks until the caller holds key's lock or ctx ends (then it
// returns ctx's error and holds nothing). unlock releases the lock; calling
// it more than once is harmless.
func (l *Map) Lock(ctx context.Context, key string) (unlock func(), err error) {
	e := l.enter(key)
	select {
	case e.ch <- struct{}{}:
	case <-ctx.Done():
		l.leave(key, e)
		return nil, ctx.Err()
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			<-e.ch
			l.leave(key, e)
		})
	}, nil
}

// TryLock takes key's lock if nobody holds it and reports whether it did.
func (l *Map) TryLock(key string) (unlock func(), ok bool) {
	e := l.enter(key)
	select {
	case e.ch <- struct{}{}:
	default:
		l.leave(key, e)
		return nil, false
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			<-e.ch
			l.leave(key, e)
		})
	}, true
}

// Len is the number of keys with a holder or a waiter.
func (l *Map) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.m)
}

// enter counts the caller in on key's entry, making it if needed.
func (l *Map) enter(key string) *entry {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.m == nil {
		l.m = map[string]*entry{}
	}
	e := l.m[key]
	if e == nil {
		e = &entry{ch: make(chan struct{}, 1)}
		l.m[key] = e
	}
	e.n++
	return e
}

// leave counts the caller out, dropping the entry when unused.
func (l *Map) leave(key string, e *entry) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if e.n--; e.n == 0 && l.m[key] == e {
		delete(l.m, key)
	}
}
