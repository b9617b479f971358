package instances

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/erpnetgo/auth/authcode"
)

// SecretStore keeps one record per instance root: the instance's client
// secret, sealed with Config.Keys (the store never sees it in clear), and
// what orders the instance's Marketplace events. Implement it over your
// database or Redis to keep instances across restarts and share them
// between replicas; every replica then reads a record again at most a
// minute after last reading it, so a change made on one (Add, Remove, an
// event) reaches the others within a minute. Records are never deleted
// (Remove leaves a record saying so), and each is small (a few hundred
// bytes).
//
// Implementations must be safe for concurrent use. A Save that fails must
// return an error.
type SecretStore interface {
	// Load returns the value saved for root, or nil and no error when
	// there is none.
	Load(ctx context.Context, root string) ([]byte, error)
	// Save stores value for root, replacing any previous value, with no
	// expiry.
	Save(ctx context.Context, root string, value []byte) error
}

// memorySecrets is the default SecretStore: this process's memory.
type memorySecrets struct {
	mu sync.Mutex
	m  map[string][]byte
}

func (s *memorySecrets) Load(ctx context.Context, root string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]byte(nil), s.m[root]...), nil
}

func (s *memorySecrets) Save(ctx context.Context, root string, value []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[string][]byte{}
	}
	s.m[root] = append([]byte(nil), value...)
	return nil
}

// nsStore is one instance's view of Config.Store: every key under the
// instance's namespace (its epoch, new each time the instance is added
// after a removal, so that sessions of an earlier installation are never
// found again), and an index of the keys this process wrote, so that
// Remove can delete them: the Store interface cannot list keys.
type nsStore struct {
	s      authcode.Store
	prefix string
	now    func() time.Time

	mu     sync.Mutex
	keys   map[string]int64 // key → expiry (unix nanoseconds; 0: none)
	closed bool
}

// errRemoved refuses writes to the store of a removed instance.
var errRemoved = errors.New("instances: the instance was removed")

func newNSStore(s authcode.Store, epoch string, now func() time.Time) *nsStore {
	return &nsStore{s: s, prefix: "erpnetgo/instances/v1/" + epoch + "/", now: now, keys: map[string]int64{}}
}

// store returns n as the authcode.Store to give the instance's Client: a
// RefreshLocker when the underlying store is one.
func (n *nsStore) store() authcode.Store {
	if l, ok := n.s.(authcode.RefreshLocker); ok {
		return &nsLockStore{n, l}
	}
	return n
}

func (n *nsStore) Load(ctx context.Context, key string) ([]byte, error) {
	return n.s.Load(ctx, n.prefix+key)
}

func (n *nsStore) Save(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	if !n.open() {
		return errRemoved
	}
	if err := n.s.Save(ctx, n.prefix+key, value, ttl); err != nil {
		return err
	}
	n.note(key, ttl)
	return nil
}

func (n *nsStore) Add(ctx context.Context, key string, value []byte, ttl time.Duration) (bool, error) {
	if !n.open() {
		return false, errRemoved
	}
	added, err := n.s.Add(ctx, n.prefix+key, value, ttl)
	if added {
		n.note(key, ttl)
	}
	return added, err
}

func (n *nsStore) Delete(ctx context.Context, key string) error {
	if err := n.s.Delete(ctx, n.prefix+key); err != nil {
		return err
	}
	n.mu.Lock()
	delete(n.keys, key)
	n.mu.Unlock()
	return nil
}

func (n *nsStore) open() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return !n.closed
}

// note records that key was written, until ttl passes, and forgets a few
// keys that have expired.
func (n *nsStore) note(key string, ttl time.Duration) {
	now := n.now().UnixNano()
	var exp int64
	if ttl > 0 {
		exp = now + int64(ttl)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return
	}
	if old, ok := n.keys[key]; !ok || old != 0 && (exp == 0 || exp > old) {
		n.keys[key] = exp
	}
	i := 0
	for k, e := range n.keys {
		if i++; i > 8 {
			break
		}
		if e != 0 && e <= now {
			delete(n.keys, k)
		}
	}
}

// purge refuses further writes and deletes every key this process wrote
// that has not expired.
func (n *nsStore) purge(ctx context.Context) error {
	n.mu.Lock()
	n.closed = true
	keys := n.keys
	n.keys = map[string]int64{}
	n.mu.Unlock()
	now := n.now().UnixNano()
	var errs []error
	for k, e := range keys {
		if e != 0 && e <= now {
			continue
		}
		if err := n.s.Delete(ctx, n.prefix+k); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs[0], errors.New("instances: some sessions of the removed instance could not be deleted; they expire with their TTL and are never found again"))
	}
	return nil
}

// nsLockStore is an nsStore over a Store that is a RefreshLocker.
type nsLockStore struct {
	*nsStore
	l authcode.RefreshLocker
}

func (n *nsLockStore) LockRefresh(ctx context.Context, key string) (func(), error) {
	return n.l.LockRefresh(ctx, n.prefix+key)
}
