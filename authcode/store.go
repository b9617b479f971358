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

// MemoryStore is the default Store: sessions live in this process's memory
// and are lost when it exits. Use a shared store (authcode/redisstore) when
// several replicas serve the same users.
type MemoryStore struct {
	mu sync.Mutex
	m  map[string]memItem
	// Now is the clock used for expiry; nil means time.Now.
	Now func() time.Time
}

type memItem struct {
	v   []byte
	exp time.Time
}

// NewMemoryStore returns an empty MemoryStore.
func NewMemoryStore() *MemoryStore { return &MemoryStore{m: map[string]memItem{}} }

func (s *MemoryStore) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// Load implements Store.
func (s *MemoryStore) Load(ctx context.Context, key string) ([]byte, error) {
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

// Save implements Store. A ttl of zero or less keeps the value until Delete.
func (s *MemoryStore) Save(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	it := memItem{v: append([]byte(nil), value...)}
	if ttl > 0 {
		it.exp = s.now().Add(ttl)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[string]memItem{}
	}
	s.m[key] = it
	s.sweep()
	return nil
}

// sweep drops a few expired items so an idle map does not grow forever.
// Called with mu held.
func (s *MemoryStore) sweep() {
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

// Add implements AddStore.
func (s *MemoryStore) Add(ctx context.Context, key string, value []byte, ttl time.Duration) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if it, ok := s.m[key]; ok && (it.exp.IsZero() || s.now().Before(it.exp)) {
		return false, nil
	}
	if s.m == nil {
		s.m = map[string]memItem{}
	}
	it := memItem{v: append([]byte(nil), value...)}
	if ttl > 0 {
		it.exp = s.now().Add(ttl)
	}
	s.m[key] = it
	return true, nil
}

// Delete implements Store.
func (s *MemoryStore) Delete(ctx context.Context, key string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, key)
	return nil
}

// Len reports how many sessions are held (expired ones included until swept).
func (s *MemoryStore) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.m)
}
