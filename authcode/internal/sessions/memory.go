package sessions

import (
	"context"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"

	"github.com/erpnetgo/auth/internal/clock"
	"github.com/erpnetgo/auth/internal/keylock"
)

// memStore is the default Store: records live in this process's memory
// and are lost when it exits. The engine saves records into it decoded
// (Store's byte methods encode and decode for other callers), and it is a
// Locker for this process's goroutines.
//
// Keys are spread over shards, each with its own lock, so that requests of
// different users do not contend. Entries are replaced, never changed: an
// entry is marked gone when it is replaced, deleted or found expired, so a
// snapshot made from an entry can tell, with one atomic load and no look-up,
// that it is still the stored version.
type memStore struct {
	seed   maphash.Seed
	shards [memShards]memShard
	locks  keylock.Map
	clock  clock.Clock
}

const memShards = 64

type memShard struct {
	mu sync.Mutex
	m  map[string]*memEntry
	_  [64]byte // keep shards on their own cache lines
}

// memEntry is one saved value: a record, or bytes saved through Store.
type memEntry struct {
	gone atomic.Bool
	exp  int64   // unix nanoseconds; 0: never expires
	v    []byte  // bytes saved through Store.Save or Add, until decoded
	rec  *Record // the record (set once; v is then nil)
	// view is the snapshot made from the entry, told when the entry goes.
	view atomic.Pointer[Snapshot]
}

// retire marks e no longer stored, and the snapshot made from it.
func (e *memEntry) retire() {
	e.gone.Store(true)
	if sn := e.view.Load(); sn != nil {
		sn.gone.Store(true)
	}
}

// live reports whether e is still the stored value at now (unix
// nanoseconds).
func (e *memEntry) live(now int64) bool {
	return !e.gone.Load() && (e.exp == 0 || now < e.exp)
}

// NewMemoryStore returns a memory store that Clients may pass to one
// another (package instances keeps an instance's sessions in one while it
// rebuilds the instance's Client): an engine given one uses it as its own.
func NewMemoryStore(c clock.Clock) Store { return newMemStore(c) }

func newMemStore(c clock.Clock) *memStore {
	s := &memStore{seed: maphash.MakeSeed(), clock: c}
	for i := range s.shards {
		s.shards[i].m = map[string]*memEntry{}
	}
	return s
}

func (s *memStore) shard(key string) *memShard {
	return &s.shards[maphash.String(s.seed, key)%memShards]
}

// put replaces key's entry with e and sweeps a few expired entries. Called
// with sh.mu held.
func (s *memStore) put(sh *memShard, key string, e *memEntry) {
	if old := sh.m[key]; old != nil {
		old.retire()
	}
	sh.m[key] = e
	now, n := s.clock.Now().UnixNano(), 0
	for k, old := range sh.m {
		if n++; n > 16 {
			break
		}
		if !old.live(now) {
			drop(sh, k)
		}
	}
}

// drop deletes key's entry. Called with sh.mu held.
func drop(sh *memShard, key string) {
	if old := sh.m[key]; old != nil {
		old.retire()
		delete(sh.m, key)
	}
}

// entry returns key's unexpired entry, or nil.
func (s *memStore) entry(sh *memShard, key string) *memEntry {
	e := sh.m[key]
	if e != nil && !e.live(s.clock.Now().UnixNano()) {
		drop(sh, key)
		return nil
	}
	return e
}

func (s *memStore) newEntry(ttl time.Duration) *memEntry {
	e := &memEntry{}
	if ttl > 0 {
		e.exp = s.clock.Now().Add(ttl).UnixNano()
	}
	return e
}

// load implements source: the record is decoded at most once per saved
// version.
func (s *memStore) load(ctx context.Context, key string, _ *Snapshot) (*Record, origin, error) {
	if err := ctx.Err(); err != nil {
		return nil, origin{}, err
	}
	sh := s.shard(key)
	sh.mu.Lock()
	e := s.entry(sh, key)
	if e == nil {
		sh.mu.Unlock()
		return nil, origin{}, ErrNotFound
	}
	rec, v := e.rec, e.v
	sh.mu.Unlock()
	if rec != nil {
		return rec, origin{mem: e}, nil
	}
	rec, err := Decode(v)
	if err != nil {
		return nil, origin{}, err
	}
	sh.mu.Lock()
	if e.rec == nil {
		e.rec, e.v = rec, nil
	} else {
		rec = e.rec // decoded meanwhile by another caller
	}
	sh.mu.Unlock()
	return rec, origin{mem: e}, nil
}

// save implements source, keeping rec decoded.
func (s *memStore) save(ctx context.Context, key string, rec *Record, ttl time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	e := s.newEntry(ttl)
	e.rec = rec
	sh := s.shard(key)
	sh.mu.Lock()
	s.put(sh, key, e)
	sh.mu.Unlock()
	return nil
}

// Load implements Store.
func (s *memStore) Load(ctx context.Context, key string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	sh := s.shard(key)
	sh.mu.Lock()
	var v []byte
	var rec *Record
	e := s.entry(sh, key)
	if e != nil {
		v, rec = e.v, e.rec
	}
	sh.mu.Unlock()
	switch {
	case e == nil:
		return nil, ErrNotFound
	case v != nil:
		return v, nil
	}
	return rec.Encode()
}

// Save implements Store.
func (s *memStore) Save(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	e := s.newEntry(ttl)
	e.v = append([]byte{}, value...) // never nil: an entry holds v or rec
	sh := s.shard(key)
	sh.mu.Lock()
	s.put(sh, key, e)
	sh.mu.Unlock()
	return nil
}

// Add implements Store.
func (s *memStore) Add(ctx context.Context, key string, value []byte, ttl time.Duration) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	sh := s.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if s.entry(sh, key) != nil {
		return false, nil
	}
	e := s.newEntry(ttl)
	e.v = append([]byte{}, value...)
	s.put(sh, key, e)
	return true, nil
}

// Delete implements Store.
func (s *memStore) Delete(ctx context.Context, key string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	sh := s.shard(key)
	sh.mu.Lock()
	drop(sh, key)
	sh.mu.Unlock()
	return nil
}

// LockRefresh implements Locker within this process.
func (s *memStore) LockRefresh(ctx context.Context, key string) (func(), error) {
	return s.locks.Lock(ctx, key)
}

// keys returns the keys held.
func (s *memStore) keys() []string {
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
