// Package keylock is the SDK's one per-key lock: a mutex per string key
// whose Lock honours a context, made on first use and dropped when nobody
// holds or waits for it. The memory store's refresh locks and redisstore's
// in-process gates are both built on it.
package keylock

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// Map holds one lock per key. The zero Map is ready to use; it must not be
// copied after first use.
type Map struct {
	mu sync.Mutex
	m  map[string]*entry
}

type entry struct {
	ch chan struct{} // holds a token while the lock is held
	n  int           // holders and waiters (under Map.mu)
	// since is when the current holder took the lock (unix ns); 0: free,
	// or changing hands. Cleared under Map.mu.
	since atomic.Int64
	// retired closes when a waiter of LockOrRetire gives up on the holder
	// (made by the first such waiter, under Map.mu); gone is then set.
	retired chan struct{}
	gone    bool // under Map.mu
}

// Lock blocks until the caller holds key's lock or ctx ends (then it
// returns ctx's error and holds nothing). unlock releases the lock; calling
// it more than once is harmless.
func (l *Map) Lock(ctx context.Context, key string) (unlock func(), err error) {
	return l.lock(ctx, key, 0, nil)
}

// LockOrRetire is Lock for holders that may vanish without unlocking (an
// unlock func dropped by mistake): once the current holder has held key's
// lock for maxHold, a waiter retires that lock instead of waiting on. The
// key then gets a fresh lock, which this waiter and every other waiter of
// the retired one contend for; the late holder's unlock, if it ever comes,
// releases nothing of its successors'. onRetire (if not nil) is called
// once per retired lock, by the waiter that retired it. maxHold <= 0
// retires nothing. Use either LockOrRetire or Lock and TryLock for a given
// key, not both.
func (l *Map) LockOrRetire(ctx context.Context, key string, maxHold time.Duration, onRetire func()) (unlock func(), err error) {
	return l.lock(ctx, key, maxHold, onRetire)
}

// TryLock takes key's lock if nobody holds it and reports whether it did.
func (l *Map) TryLock(key string) (unlock func(), ok bool) {
	e := l.enter(key, false)
	select {
	case e.ch <- struct{}{}:
	default:
		l.leave(key, e)
		return nil, false
	}
	return l.held(key, e), true
}

// Len is the number of keys with a holder or a waiter.
func (l *Map) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.m)
}

func (l *Map) lock(ctx context.Context, key string, maxHold time.Duration, onRetire func()) (func(), error) {
	for {
		e := l.enter(key, maxHold > 0)
		if maxHold <= 0 {
			select {
			case e.ch <- struct{}{}:
				return l.held(key, e), nil
			case <-ctx.Done():
				l.leave(key, e)
				return nil, ctx.Err()
			}
		}
		select { // free: no timer needed
		case e.ch <- struct{}{}:
			if l.retiredHeld(key, e) {
				continue
			}
			return l.held(key, e), nil
		default:
		}
		got, err := l.waitOrRetire(ctx, key, e, maxHold, onRetire)
		if got || err != nil {
			if err != nil {
				return nil, err
			}
			return l.held(key, e), nil
		}
		// e was retired: contend for key's fresh lock.
	}
}

// waitOrRetire waits for e, retiring it once its holder has held it for
// maxHold. It reports whether the caller now holds e; false with a nil
// error means e was retired (and the caller counted out of it).
func (l *Map) waitOrRetire(ctx context.Context, key string, e *entry, maxHold time.Duration, onRetire func()) (bool, error) {
	t := time.NewTimer(maxHold)
	defer t.Stop()
	for {
		select {
		case e.ch <- struct{}{}:
			return !l.retiredHeld(key, e), nil
		case <-ctx.Done():
			l.leave(key, e)
			return false, ctx.Err()
		case <-e.retired:
			l.leave(key, e)
			return false, nil
		case <-t.C:
		}
		since := e.since.Load()
		if since == 0 { // free or changing hands right now: look again later
			t.Reset(maxHold)
			continue
		}
		if left := maxHold - time.Since(time.Unix(0, since)); left > 0 {
			t.Reset(left)
			continue
		}
		l.mu.Lock()
		retire := !e.gone && e.since.Load() == since
		if retire {
			e.gone = true
			close(e.retired)
			if l.m[key] == e {
				delete(l.m, key)
			}
		}
		l.mu.Unlock()
		if !retire {
			t.Reset(0)
			continue
		}
		if onRetire != nil {
			onRetire()
		}
		l.leave(key, e)
		return false, nil
	}
}

// retiredHeld reports whether e, which the caller just took, was retired;
// if so it lets go of e. A lock retired while its holder was just letting
// go may still be free to take: never hold a retired lock.
func (l *Map) retiredHeld(key string, e *entry) bool {
	l.mu.Lock()
	gone := e.gone
	l.mu.Unlock()
	if gone {
		<-e.ch
		l.leave(key, e)
	}
	return gone
}

// held marks the caller as e's holder and returns its unlock func.
func (l *Map) held(key string, e *entry) func() {
	e.since.Store(time.Now().UnixNano())
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock() // ordered with a retirement (waitOrRetire)
			e.since.Store(0)
			l.mu.Unlock()
			<-e.ch
			l.leave(key, e)
		})
	}
}

// enter counts the caller in on key's entry, making it if needed; watch
// makes the entry's retired channel.
func (l *Map) enter(key string, watch bool) *entry {
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
	if watch && e.retired == nil {
		e.retired = make(chan struct{})
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
