package authcode

import (
	"context"
	"errors"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"

	"github.com/erpnetgo/auth/internal/keylock"
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
// Implementations must be safe for concurrent use. A Save, Add or Delete
// that fails must return an error: the Client then keeps the previous
// session and reports the failure instead of silently signing the user out.
type Store interface {
	// Load returns the value saved under key, or ErrSessionNotFound.
	Load(ctx context.Context, key string) ([]byte, error)
	// Save stores value under key, replacing any previous value, for ttl.
	Save(ctx context.Context, key string, value []byte, ttl time.Duration) error
	// Add saves value under key for ttl only if key is absent, atomically
	// (Redis SET NX), and reports whether it did. The Client uses it to
	// make each sign-in state usable once, even when a replayed callback
	// reaches two replicas at the same moment.
	Add(ctx context.Context, key string, value []byte, ttl time.Duration) (bool, error)
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

// memoryStore is the default Store: sessions live in this process's
// memory and are lost when it exits. It is also a RefreshLocker for the
// processes's own goroutines, so a sign-out waits for a refresh in flight.
//
// Keys are spread over shards, each with its own lock, so that requests of
// different users do not contend. A session is kept decoded once the
// Client has loaded it (loadRecord): later loads return the same immutable
// record without decoding, and the encoded bytes are dropped (Load
// encodes again, for the rare caller that wants bytes).
type memoryStore struct {
	seed   maphash.Seed
	shards [memShards]memShard
	locks  keylock.Map
	now    func() time.Time
}

const memShards = 64

type memShard struct {
	mu sync.Mutex
	m  map[string]*memEntry
	_  [64]byte // keep shards on their own cache lines
}

// memEntry is one saved value. Entries are replaced, never changed (but
// for decoding, under the shard lock): gone is set when the entry is
// replaced, deleted or found expired, so that a Client holding the entry of
// a session it loaded can tell, with one atomic load and no map lookup,
// that the entry is still the stored one.
type memEntry struct {
	gone atomic.Bool
	exp  int64   // unix nanoseconds; 0: never expires
	v    []byte  // the saved value, until decoded
	rec  *record // the decoded value (v is then nil)
}

// live reports whether e is still the stored value at now (unix
// nanoseconds).
func (e *memEntry) live(now int64) bool {
	return !e.gone.Load() && (e.exp == 0 || now < e.exp)
}

func newMemoryStore(now func() time.Time) *memoryStore {
	if now == nil {
		now = time.Now
	}
	s := &memoryStore{seed: maphash.MakeSeed(), now: now}
	for i := range s.shards {
		s.shards[i].m = map[string]*memEntry{}
	}
	return s
}

func (s *memoryStore) shard(key string) *memShard {
	return &s.shards[maphash.String(s.seed, key)%memShards]
}

// put replaces key's entry with e. Called with sh.mu held.
func (sh *memShard) put(key string, e *memEntry) {
	if old := sh.m[key]; old != nil {
		old.gone.Store(true)
	}
	sh.m[key] = e
}

// drop deletes key's entry. Called with sh.mu held.
func (sh *memShard) drop(key string) {
	if old := sh.m[key]; old != nil {
		old.gone.Store(true)
		delete(sh.m, key)
	}
}

// entry returns key's unexpired entry.
func (s *memoryStore) entry(ctx context.Context, key string) (*memEntry, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	sh := s.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	e := sh.m[key]
	if e == nil {
		return nil, ErrSessionNotFound
	}
	if !e.live(s.now().UnixNano()) {
		sh.drop(key)
		return nil, ErrSessionNotFound
	}
	return e, nil
}

func (s *memoryStore) Load(ctx context.Context, key string) ([]byte, error) {
	e, err := s.entry(ctx, key)
	if err != nil {
		return nil, err
	}
	sh := s.shard(key)
	sh.mu.Lock()
	v, rec := e.v, e.rec
	sh.mu.Unlock()
	if rec != nil {
		return rec.encode()
	}
	return v, nil
}

// loadRecord returns key's session and the entry it is held in, decoding
// it only on the first load of each saved version. A value that does not
// decode gives a *decodeError.
func (s *memoryStore) loadRecord(ctx context.Context, key string) (*record, *memEntry, error) {
	e, err := s.entry(ctx, key)
	if err != nil {
		return nil, nil, err
	}
	sh := s.shard(key)
	sh.mu.Lock()
	v, rec := e.v, e.rec
	sh.mu.Unlock()
	if rec != nil {
		return rec, e, nil
	}
	rec, err = decodeRecord(v)
	if err != nil {
		return nil, nil, &decodeError{err}
	}
	sh.mu.Lock()
	if e.rec == nil {
		e.rec, e.v = rec, nil
	} else {
		rec = e.rec // decoded meanwhile by another caller
	}
	sh.mu.Unlock()
	return rec, e, nil
}

func (s *memoryStore) newEntry(value []byte, ttl time.Duration) *memEntry {
	e := &memEntry{v: append([]byte{}, value...)} // never nil: an entry holds v or rec
	if ttl > 0 {
		e.exp = s.now().Add(ttl).UnixNano()
	}
	return e
}

func (s *memoryStore) Save(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	e := s.newEntry(value, ttl)
	sh := s.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sh.put(key, e)
	s.sweep(sh)
	return nil
}

// sweep drops a few expired entries of sh so an idle map does not grow
// forever. Called with sh.mu held.
func (s *memoryStore) sweep(sh *memShard) {
	now, n := s.now().UnixNano(), 0
	for k, e := range sh.m {
		if n++; n > 16 {
			return
		}
		if !e.live(now) {
			sh.drop(k)
		}
	}
}

func (s *memoryStore) Add(ctx context.Context, key string, value []byte, ttl time.Duration) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	sh := s.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if e := sh.m[key]; e != nil && e.live(s.now().UnixNano()) {
		return false, nil
	}
	sh.put(key, s.newEntry(value, ttl))
	return true, nil
}

func (s *memoryStore) Delete(ctx context.Context, key string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	sh := s.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sh.drop(key)
	return nil
}

// keys returns the keys held (tests).
func (s *memoryStore) keys() []string {
	var out []string
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		for k := range sh.m {
			out = append(out, k)
		}
		sh.mu.Unlock()
	}
	return out
}

// clear drops everything (tests).
func (s *memoryStore) clear() {
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		for k := range sh.m {
			sh.drop(k)
		}
		sh.mu.Unlock()
	}
}

// LockRefresh implements RefreshLocker within this process.
func (s *memoryStore) LockRefresh(ctx context.Context, key string) (func(), error) {
	return s.locks.Lock(ctx, key)
}
