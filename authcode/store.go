package authcode

import (
	"context"
	"errors"
	"sync"
	"time"
)

// ErrSessionNotFound is returned by a Store for a key it does not hold (never
// saved, deleted, or expired).
var ErrSessionNotFound = errors.New("authcode: session not found")

// Store keeps users' sessions. Values are opaque to the store: the Client
// serialises a session (its tokens included) to bytes, and the store keeps
// those bytes under key until ttl passes. Keys are namespaced by the Client
// with the issuer, client_id and session id, so one store may serve several
// apps and instances.
//
// Implementations must be safe for concurrent use. A Save or Delete that
// fails must return an error: the Client then keeps the previous session and
// reports the failure instead of silently signing the user out.
type Store interface {
	// Load returns the value saved under key, or ErrSessionNotFound.
	Load(ctx context.Context, key string) ([]byte, error)
	// Save stores value under key, replacing any previous value, for ttl.
	Save(ctx context.Context, key string, value []byte, ttl time.Duration) error
	// Delete removes key; deleting a missing key is not an error.
	Delete(ctx context.Context, key string) error
}

// RefreshLocker is implemented by stores shared between processes (see
// authcode/redisstore). Before redeeming a refresh token the Client takes
// the session's refresh lock, reloads the session, and redeems the refresh
// token only if no other process has already done so; so with one-time
// refresh tokens, replicas never redeem the same token twice.
type RefreshLocker interface {
	// LockRefresh blocks until it holds key's refresh lock or ctx ends. The
	// lock expires by itself if its holder dies. unlock releases it only if
	// it is still held by this caller.
	LockRefresh(ctx context.Context, key string) (unlock func(), err error)
}

// AddStore is implemented by stores that can save a key only if it is
// absent, atomically (Redis SET NX). The Client uses it to make each
// sign-in state usable once even when a replayed callback reaches two
// replicas at the same moment; with a plain Store it falls back to a Load
// followed by a Save.
type AddStore interface {
	// Add saves value under key for ttl if key is absent and reports
	// whether it did.
	Add(ctx context.Context, key string, value []byte, ttl time.Duration) (bool, error)
}

// memoryStore is the default Store: sessions live in this process's
// memory and are lost when it exits. It is also a RefreshLocker for the
// processes's own goroutines, so a sign-out waits for a refresh in flight.
type memoryStore struct {
	mu sync.Mutex
	m  map[string]memItem
	locks
	now func() time.Time
}

type memItem struct {
	v   []byte
	exp time.Time
}

func newMemoryStore(now func() time.Time) *memoryStore {
	if now == nil {
		now = time.Now
	}
	return &memoryStore{m: map[string]memItem{}, now: now}
}

func (s *memoryStore) Load(ctx context.Context, key string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	it, ok := s.m[key]
	if !ok {
		return nil, ErrSessionNotFound
	}
	if !it.exp.IsZero() && !s.now().Before(it.exp) {
		delete(s.m, key)
		return nil, ErrSessionNotFound
	}
	return it.v, nil
}

func (s *memoryStore) Save(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	it := memItem{v: append([]byte(nil), value...)}
	if ttl > 0 {
		it.exp = s.now().Add(ttl)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[key] = it
	s.sweep()
	return nil
}

// sweep drops a few expired items so an idle map does not grow forever.
// Called with mu held.
func (s *memoryStore) sweep() {
	now, n := s.now(), 0
	for k, it := range s.m {
		if n++; n > 16 {
			return
		}
		if !it.exp.IsZero() && !now.Before(it.exp) {
			delete(s.m, k)
		}
	}
}

func (s *memoryStore) Add(ctx context.Context, key string, value []byte, ttl time.Duration) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if it, ok := s.m[key]; ok && (it.exp.IsZero() || s.now().Before(it.exp)) {
		return false, nil
	}
	it := memItem{v: append([]byte(nil), value...)}
	if ttl > 0 {
		it.exp = s.now().Add(ttl)
	}
	s.m[key] = it
	return true, nil
}

func (s *memoryStore) Delete(ctx context.Context, key string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, key)
	return nil
}

// locks is an in-process RefreshLocker: one context-aware lock per key,
// dropped when nobody holds or waits for it.
type locks struct {
	mu sync.Mutex
	m  map[string]*keyLock
}

type keyLock struct {
	ch chan struct{}
	n  int // holders and waiters
}

// LockRefresh implements RefreshLocker within this process.
func (l *locks) LockRefresh(ctx context.Context, key string) (func(), error) {
	l.mu.Lock()
	if l.m == nil {
		l.m = map[string]*keyLock{}
	}
	k := l.m[key]
	if k == nil {
		k = &keyLock{ch: make(chan struct{}, 1)}
		l.m[key] = k
	}
	k.n++
	l.mu.Unlock()
	release := func() {
		l.mu.Lock()
		if k.n--; k.n == 0 {
			delete(l.m, key)
		}
		l.mu.Unlock()
	}
	select {
	case k.ch <- struct{}{}:
	case <-ctx.Done():
		release()
		return nil, ctx.Err()
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			<-k.ch
			release()
		})
	}, nil
}
