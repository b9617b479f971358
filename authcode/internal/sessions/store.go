package sessions

import (
	"bytes"
	"context"
	"errors"
	"time"
)

// The engine's errors. Package authcode sets them to its public errors
// (ErrSessionNotFound, ErrNoSession) when it is initialised, before any
// engine exists.
var (
	// ErrNotFound is returned by a Store for a key it does not hold (never
	// saved, deleted, or expired).
	ErrNotFound = errors.New("authcode: session not found")
	// ErrNoSession means there is no session to hand out.
	ErrNoSession = errors.New("authcode: not signed in")
)

// Store is authcode.Store: where records are kept, as opaque bytes.
type Store interface {
	Load(ctx context.Context, key string) ([]byte, error)
	Save(ctx context.Context, key string, value []byte, ttl time.Duration) error
	Add(ctx context.Context, key string, value []byte, ttl time.Duration) (bool, error)
	Delete(ctx context.Context, key string) error
}

// Locker is authcode.RefreshLocker.
type Locker interface {
	LockRefresh(ctx context.Context, key string) (unlock func(), err error)
}

// origin is where a snapshot's record was loaded from: the memory store's
// entry, or the bytes another Store returned. Two loads with the same
// origin hold the same stored version.
type origin struct {
	mem *memEntry
	raw []byte
}

// same reports whether o and p are the same stored version: the same
// memory entry, or the very bytes (not merely equal ones) load returned.
func (o origin) same(p origin) bool {
	return o.mem == p.mem && len(o.raw) == len(p.raw) && (len(o.raw) == 0 || &o.raw[0] == &p.raw[0])
}

// source is the one way records are loaded and saved: the engine's memory
// store, or any Store through storeSource.
type source interface {
	// load returns key's record and its origin. When have (may be nil)
	// holds the stored version, its record is returned undecoded.
	load(ctx context.Context, key string, have *Snapshot) (*Record, origin, error)
	// save writes rec under key for ttl.
	save(ctx context.Context, key string, rec *Record, ttl time.Duration) error
}

// storeSource loads records from any Store, decoding only bytes that
// changed.
type storeSource struct{ Store }

func (s storeSource) load(ctx context.Context, key string, have *Snapshot) (*Record, origin, error) {
	b, err := s.Load(ctx, key)
	if err != nil {
		return nil, origin{}, err
	}
	if have != nil && have.raw != nil && bytes.Equal(have.raw, b) {
		return have.Rec, have.origin(), nil
	}
	rec, err := Decode(b)
	if err != nil {
		return nil, origin{}, err
	}
	// The Store may reuse b: keep a copy.
	return rec, origin{raw: bytes.Clone(b)}, nil
}

func (s storeSource) save(ctx context.Context, key string, rec *Record, ttl time.Duration) error {
	b, err := rec.Encode()
	if err != nil {
		return err
	}
	return s.Save(ctx, key, b, ttl)
}
