package redisstore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/erpnetgo/auth"
	"github.com/erpnetgo/auth/authcode"
	"github.com/erpnetgo/auth/authcode/redisstore"
	"github.com/erpnetgo/auth/internal/redistest"
	"github.com/erpnetgo/auth/internal/testutil"
)

var (
	key1 = bytes.Repeat([]byte{1}, 32)
	key2 = bytes.Repeat([]byte{2}, 16)
)

// newStore returns a Store with its own client on srv, closed at cleanup.
func newStore(t testing.TB, addr string, mod func(*redisstore.Config)) *redisstore.Store {
	t.Helper()
	cfg := redisstore.Config{Addr: addr, Keys: [][]byte{key1}}
	if mod != nil {
		mod(&cfg)
	}
	s, err := redisstore.New(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// defaultPrefix is Config.Prefix's documented default.
const defaultPrefix = "erpnet:authcode:"

// requireUndecryptable checks Load's error for a value that does not open:
// it reads as signed out, and says why.
func requireUndecryptable(t testing.TB, err error, msgAndArgs ...any) {
	t.Helper()
	require.ErrorIs(t, err, authcode.ErrSessionNotFound, msgAndArgs...)
	require.Contains(t, err.Error(), "cannot be decrypted", msgAndArgs...)
	require.NotErrorIs(t, err, auth.ErrTemporary, msgAndArgs...)
}

// requireLockTimeout checks LockRefresh's error when Config.LockWait
// passed: a temporary failure that says so.
func requireLockTimeout(t testing.TB, err error) {
	t.Helper()
	require.ErrorIs(t, err, auth.ErrTemporary)
	var ae *auth.Error
	require.ErrorAs(t, err, &ae)
	require.Contains(t, err.Error(), "timed out waiting for the session's refresh lock")
	require.NotErrorIs(t, err, context.DeadlineExceeded, "LockWait, not the caller's context")
}

// assertRedisUnavailable checks an error caused by Redis not answering: a
// temporary *auth.Error naming the Redis operation, which reads once (one
// prefix, one kind tag) however the SDK wrapped it.
func assertRedisUnavailable(t testing.TB, err error, msgAndArgs ...any) {
	t.Helper()
	assert.ErrorIs(t, err, auth.ErrTemporary, msgAndArgs...)
	var ae *auth.Error
	if assert.ErrorAs(t, err, &ae, msgAndArgs...) {
		msg := err.Error()
		assert.Contains(t, msg, "redis ", msgAndArgs...)
		assert.Equal(t, 1, strings.Count(msg, "erpnet auth:"), msg)
		assert.Equal(t, 1, strings.Count(msg, "[temporary failure]"), msg)
	}
}

// logger logs to l.
func logger(l *testutil.SyncBuffer) *slog.Logger { return slog.New(slog.NewTextHandler(l, nil)) }

func TestNewValidatesConfig(t *testing.T) {
	secretKey := []byte("THIS-IS-SECRET-KEY-MATERIAL-31b")
	cases := []struct {
		name  string
		cfg   redisstore.Config
		field string
	}{
		{"no client", redisstore.Config{Keys: [][]byte{key1}}, "Client"},
		{"both", redisstore.Config{Addr: "x:1", Client: redis.NewClient(&redis.Options{}), Keys: [][]byte{key1}}, "Addr"},
		{"no keys", redisstore.Config{Addr: "x:1"}, "Keys"},
		{"bad key", redisstore.Config{Addr: "x:1", Keys: [][]byte{key1, secretKey}}, "Keys[1]"},
		{"neg lock ttl", redisstore.Config{Addr: "x:1", Keys: [][]byte{key1}, LockTTL: -1}, "LockTTL"},
		{"tiny lock ttl", redisstore.Config{Addr: "x:1", Keys: [][]byte{key1}, LockTTL: time.Microsecond}, "LockTTL"},
		{"neg lock wait", redisstore.Config{Addr: "x:1", Keys: [][]byte{key1}, LockWait: -1}, "LockWait"},
		{"neg max ttl", redisstore.Config{Addr: "x:1", Keys: [][]byte{key1}, MaxTTL: -1}, "MaxTTL"},
		{"bad url", redisstore.Config{Addr: "redis://user:hunter2secret@host:6379/notanumber", Keys: [][]byte{key1}}, "Addr"},
		{"bad scheme", redisstore.Config{Addr: "http://user:hunter2secret@host:6379/0", Keys: [][]byte{key1}}, "Addr"},
		{"bad kind", redisstore.Config{Addr: "redis+ring://user:hunter2secret@host:6379", Keys: [][]byte{key1}}, "Addr"},
		{"bad cluster option", redisstore.Config{Addr: "redis+cluster://:hunter2secret@host:6379?addr=h2:1&bogus=1", Keys: [][]byte{key1}}, "Addr"},
		{"bad cluster addr", redisstore.Config{Addr: "rediss+cluster://:hunter2secret@host:6379?addr=nocolon", Keys: [][]byte{key1}}, "Addr"},
		{"sentinel without master", redisstore.Config{Addr: "redis+sentinel://u:hunter2secret@host:26379", Keys: [][]byte{key1}}, "Addr"},
		{"sentinel password param", redisstore.Config{Addr: "redis+sentinel://host:26379?master_name=m&password=hunter2secret", Keys: [][]byte{key1}}, "Addr"},
		{"sentinel bad option", redisstore.Config{Addr: "redis+sentinel://u:hunter2secret@host:26379?master_name=m&sentinel_password=hunter2secret&bogus=1", Keys: [][]byte{key1}}, "Addr"},
		{"unparsable url", redisstore.Config{Addr: "redis://u:hunter2secret@host:6379/%zz", Keys: [][]byte{key1}}, "Addr"},
		{"neg timeout", redisstore.Config{Addr: "x:1", Keys: [][]byte{key1}, Timeout: -1}, "Timeout"},
		{"tiny timeout", redisstore.Config{Addr: "x:1", Keys: [][]byte{key1}, Timeout: time.Microsecond}, "Timeout"},
		{"neg replica wait", redisstore.Config{Addr: "x:1", Keys: [][]byte{key1}, ReplicaWait: -1}, "ReplicaWait"},
		{"tiny replica wait", redisstore.Config{Addr: "x:1", Keys: [][]byte{key1}, ReplicaWait: time.Microsecond}, "ReplicaWait"},
		{"open brace in prefix", redisstore.Config{Addr: "x:1", Keys: [][]byte{key1}, Prefix: "app{"}, "Prefix"},
		{"empty tag in prefix", redisstore.Config{Addr: "x:1", Keys: [][]byte{key1}, Prefix: "app{}:"}, "Prefix"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.cfg.Client != nil {
				defer c.cfg.Client.Close()
			}
			s, err := redisstore.New(c.cfg)
			require.Error(t, err)
			require.Nil(t, s)
			// The field as the caller wrote it, without a package prefix.
			var ce *auth.ConfigError
			require.ErrorAs(t, err, &ce)
			assert.Equal(t, c.field, ce.Field)
			assert.ErrorIs(t, err, auth.ErrMisconfigured)
			assert.NotContains(t, err.Error(), string(secretKey))
			assert.NotContains(t, err.Error(), "hunter2secret")
		})
	}
	// Valid configs do no I/O: an address nobody listens on is fine.
	for _, addr := range []string{
		"127.0.0.1:1",
		"redis://:pw@127.0.0.1:1/2",
		"rediss://127.0.0.1:1?read_timeout=5s",
		"redis+cluster://:pw@127.0.0.1:1?addr=127.0.0.1:2&addr=127.0.0.1:3",
		"rediss+cluster://127.0.0.1:1",
		"redis+sentinel://u:pw@127.0.0.1:1/3?master_name=m&addr=127.0.0.1:2&sentinel_password=spw",
		"rediss+sentinel://127.0.0.1:1?master_name=m",
	} {
		s, err := redisstore.New(redisstore.Config{Addr: addr, Keys: [][]byte{key1, key2}, Prefix: "app:{tag}:", ReplicaWait: time.Second})
		require.NoError(t, err, addr)
		require.NoError(t, s.Close(), addr)
	}
}

func TestRoundTripDeleteAndNotFound(t *testing.T) {
	srv := redistest.Start(t)
	s := newStore(t, srv.Addr(), nil)
	ctx := context.Background()

	_, err := s.Load(ctx, "iss|client|sid1")
	require.ErrorIs(t, err, authcode.ErrSessionNotFound)
	require.Equal(t, authcode.ErrSessionNotFound, err, "a missing key returns the sentinel itself")

	require.NoError(t, s.Save(ctx, "iss|client|sid1", []byte("session-one"), time.Minute))
	got, err := s.Load(ctx, "iss|client|sid1")
	require.NoError(t, err)
	require.Equal(t, "session-one", string(got))

	require.NoError(t, s.Save(ctx, "iss|client|sid1", []byte("session-two"), time.Minute))
	got, err = s.Load(ctx, "iss|client|sid1")
	require.NoError(t, err)
	require.Equal(t, "session-two", string(got))

	require.NoError(t, s.Delete(ctx, "iss|client|sid1"))
	_, err = s.Load(ctx, "iss|client|sid1")
	require.ErrorIs(t, err, authcode.ErrSessionNotFound)
	require.NoError(t, s.Delete(ctx, "iss|client|sid1"), "deleting a missing key is not an error")

	// Empty values round-trip too.
	require.NoError(t, s.Save(ctx, "empty", nil, time.Minute))
	got, err = s.Load(ctx, "empty")
	require.NoError(t, err)
	require.Empty(t, got)

	// Keys that could collide with lock keys are refused.
	require.Error(t, s.Save(ctx, "lock:x", []byte("v"), time.Minute))
	require.Error(t, s.Save(ctx, "{x}y", []byte("v"), time.Minute))
	_, err = s.Load(ctx, "")
	require.Error(t, err)
}

func pttl(t *testing.T, srv *redistest.Server, key string) time.Duration {
	t.Helper()
	v, err := srv.Do("PTTL", key)
	require.NoError(t, err)
	n, err := strconv.ParseInt(v, 10, 64)
	require.NoError(t, err)
	return time.Duration(n) * time.Millisecond
}

func TestTTL(t *testing.T) {
	srv := redistest.Start(t)
	s := newStore(t, srv.Addr(), func(c *redisstore.Config) { c.MaxTTL = time.Hour })
	ctx := context.Background()

	require.NoError(t, s.Save(ctx, "a", []byte("v"), 90*time.Second))
	d := pttl(t, srv, defaultPrefix+"a")
	assert.InDelta(t, float64(90*time.Second), float64(d), float64(2*time.Second))

	// No expiry requested, or too long: clamped to MaxTTL.
	require.NoError(t, s.Save(ctx, "b", []byte("v"), 0))
	assert.InDelta(t, float64(time.Hour), float64(pttl(t, srv, defaultPrefix+"b")), float64(2*time.Second))
	require.NoError(t, s.Save(ctx, "c", []byte("v"), 48*time.Hour))
	assert.InDelta(t, float64(time.Hour), float64(pttl(t, srv, defaultPrefix+"c")), float64(2*time.Second))

	// Sub-second TTLs are kept with millisecond precision and expire.
	require.NoError(t, s.Save(ctx, "d", []byte("v"), 150*time.Millisecond))
	d = pttl(t, srv, defaultPrefix+"d")
	assert.True(t, d > 0 && d <= 150*time.Millisecond, "pttl %v", d)
	require.Eventually(t, func() bool {
		_, err := s.Load(ctx, "d")
		return errors.Is(err, authcode.ErrSessionNotFound)
	}, 2*time.Second, 20*time.Millisecond)
}

func TestNamespacing(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	a := newStore(t, srv.Addr(), func(c *redisstore.Config) { c.Prefix = "app-a:" })
	b := newStore(t, srv.Addr(), func(c *redisstore.Config) { c.Prefix = "app-b:" })
	def := newStore(t, srv.Addr(), nil)

	require.NoError(t, a.Save(ctx, "k", []byte("from a"), time.Minute))
	require.NoError(t, b.Save(ctx, "k", []byte("from b"), time.Minute))
	require.NoError(t, def.Save(ctx, "k", []byte("from default"), time.Minute))

	keys, err := srv.Do("KEYS", "*")
	require.NoError(t, err)
	assert.ElementsMatch(t, []string{"app-a:k", "app-b:k", "erpnet:authcode:k"}, strings.Split(keys, "\n"))

	for s, want := range map[*redisstore.Store]string{a: "from a", b: "from b", def: "from default"} {
		got, err := s.Load(ctx, "k")
		require.NoError(t, err)
		assert.Equal(t, want, string(got))
	}
	require.NoError(t, a.Delete(ctx, "k"))
	_, err = b.Load(ctx, "k")
	require.NoError(t, err, "deleting in one namespace leaves the others")

	// Lock keys live beside session keys, under the same prefix.
	unlock, err := a.LockRefresh(ctx, "k")
	require.NoError(t, err)
	v, err := srv.Do("EXISTS", "app-a:lock:k")
	require.NoError(t, err)
	assert.Equal(t, "1", v)
	unlock()
}

func TestEncryptedAtRest(t *testing.T) {
	srv := redistest.Start(t)
	s := newStore(t, srv.Addr(), nil)
	ctx := context.Background()
	access := "eyJhbGciOiJSUzI1NiJ9.ACCESS-TOKEN-PAYLOAD.sig"
	refresh := "REFRESHTOKEN0123456789ABCDEF"
	value := fmt.Sprintf(`{"access_token":%q,"refresh_token":%q,"sub":"alice"}`, access, refresh)
	require.NoError(t, s.Save(ctx, "iss|client|sid", []byte(value), time.Minute))

	keys, err := srv.Do("KEYS", "*")
	require.NoError(t, err)
	require.NotEmpty(t, keys)
	for _, k := range strings.Split(keys, "\n") {
		raw, err := srv.Do("GET", k)
		require.NoError(t, err)
		for _, secret := range []string{access, refresh, "ACCESS-TOKEN", "REFRESHTOKEN", "alice", "access_token"} {
			assert.NotContains(t, raw, secret, "Redis holds %q in clear under %q", secret, k)
		}
	}
}

func TestKeyRotation(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	logs := &testutil.SyncBuffer{}
	old := newStore(t, srv.Addr(), nil)                                                              // key1 only
	rotated := newStore(t, srv.Addr(), func(c *redisstore.Config) { c.Keys = [][]byte{key2, key1} }) // key2 seals
	newOnly := newStore(t, srv.Addr(), func(c *redisstore.Config) {
		c.Keys = [][]byte{key2}
		c.Logger = logger(logs)
	})

	require.NoError(t, old.Save(ctx, "s", []byte("sealed with key1"), time.Minute))
	got, err := rotated.Load(ctx, "s")
	require.NoError(t, err, "a rotated ring opens values sealed with the old key")
	require.Equal(t, "sealed with key1", string(got))

	// Once the old key is dropped, its values read as signed out, and it is logged.
	_, err = newOnly.Load(ctx, "s")
	require.ErrorIs(t, err, authcode.ErrSessionNotFound)
	requireUndecryptable(t, err)
	assert.Contains(t, logs.String(), "cannot be decrypted")
	assert.Contains(t, logs.String(), "key_fingerprint=")
	assert.NotContains(t, logs.String(), defaultPrefix+"s")

	// The rotated ring seals with the new key: the new-only ring opens it,
	// the old ring does not.
	require.NoError(t, rotated.Save(ctx, "s", []byte("sealed with key2"), time.Minute))
	got, err = newOnly.Load(ctx, "s")
	require.NoError(t, err)
	require.Equal(t, "sealed with key2", string(got))
	_, err = old.Load(ctx, "s")
	requireUndecryptable(t, err)
}

func TestTamperedValue(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	logs := &testutil.SyncBuffer{}
	s := newStore(t, srv.Addr(), func(c *redisstore.Config) { c.Logger = logger(logs) })
	require.NoError(t, s.Save(ctx, "s", []byte("precious session"), time.Minute))
	rk := defaultPrefix + "s"
	raw, err := srv.Do("GET", rk)
	require.NoError(t, err)

	for _, i := range []int{0, 3, 20, len(raw) - 1} {
		b := []byte(raw)
		b[i] ^= 0x01
		_, err = srv.Do("SET", rk, string(b))
		require.NoError(t, err)
		_, err := s.Load(ctx, "s")
		require.ErrorIs(t, err, authcode.ErrSessionNotFound, "byte %d", i)
		requireUndecryptable(t, err, "byte %d", i)
	}
	_, err = srv.Do("SET", rk, "not sealed at all")
	require.NoError(t, err)
	_, err = s.Load(ctx, "s")
	requireUndecryptable(t, err)
	assert.NotContains(t, err.Error(), "precious")
	assert.Contains(t, logs.String(), "cannot be decrypted")

	// The original, untampered, still opens.
	_, err = srv.Do("SET", rk, raw)
	require.NoError(t, err)
	got, err := s.Load(ctx, "s")
	require.NoError(t, err)
	require.Equal(t, "precious session", string(got))
}

func TestAADBindsKey(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	s := newStore(t, srv.Addr(), nil)
	other := newStore(t, srv.Addr(), func(c *redisstore.Config) { c.Prefix = "other:" })
	require.NoError(t, s.Save(ctx, "victim", []byte("victim's tokens"), time.Minute))

	// An attacker with write access to Redis copies the victim's value over
	// their own session key.
	_, err := srv.Do("COPY", defaultPrefix+"victim", defaultPrefix+"attacker")
	require.NoError(t, err)
	_, err = s.Load(ctx, "attacker")
	requireUndecryptable(t, err)

	// Same key under another prefix, same AES key: still bound.
	_, err = srv.Do("COPY", defaultPrefix+"victim", "other:victim")
	require.NoError(t, err)
	_, err = other.Load(ctx, "victim")
	requireUndecryptable(t, err)

	got, err := s.Load(ctx, "victim")
	require.NoError(t, err)
	require.Equal(t, "victim's tokens", string(got))
}

func TestLockExclusive(t *testing.T) {
	srv := redistest.Start(t)
	// Five Stores, each with its own connection pool, stand for five
	// replicas; ten goroutines on each also exercise the in-process gate.
	stores := make([]*redisstore.Store, 5)
	for i := range stores {
		stores[i] = newStore(t, srv.Addr(), func(c *redisstore.Config) { c.LockTTL = 5 * time.Second })
	}
	var (
		inside, maxInside, total atomic.Int32
		start                    = make(chan struct{})
		wg                       sync.WaitGroup
		errs                     = make(chan error, 50)
	)
	for g := 0; g < 50; g++ {
		wg.Add(1)
		go func(s *redisstore.Store) {
			defer wg.Done()
			<-start
			unlock, err := s.LockRefresh(context.Background(), "iss|client|sid")
			if err != nil {
				errs <- err
				return
			}
			n := inside.Add(1)
			for {
				m := maxInside.Load()
				if n <= m || maxInside.CompareAndSwap(m, n) {
					break
				}
			}
			time.Sleep(2 * time.Millisecond)
			total.Add(1)
			inside.Add(-1)
			unlock()
			unlock() // safe twice
		}(stores[g%len(stores)])
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	assert.EqualValues(t, 1, maxInside.Load(), "two holders at once")
	assert.EqualValues(t, 50, total.Load())
	v, err := srv.Do("EXISTS", defaultPrefix+"lock:iss|client|sid")
	require.NoError(t, err)
	assert.Equal(t, "0", v, "the last unlock removed the lock")
}

func TestLockOwnerOnlyRelease(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	logs := &testutil.SyncBuffer{}
	a := newStore(t, srv.Addr(), func(c *redisstore.Config) {
		c.LockTTL = 100 * time.Millisecond
		c.LockMaxHold = -1 // no renewal: A's lock expires while A still "works"
		c.Logger = logger(logs)
	})
	b := newStore(t, srv.Addr(), func(c *redisstore.Config) { c.LockTTL = 10 * time.Second })
	c := newStore(t, srv.Addr(), func(c *redisstore.Config) { c.LockWait = 200 * time.Millisecond })
	lk := defaultPrefix + "lock:k"

	unlockA, err := a.LockRefresh(ctx, "k")
	require.NoError(t, err)
	ownerA, err := srv.Do("GET", lk)
	require.NoError(t, err)
	// A is too slow: its lock expires by itself (nobody releases it) and B
	// takes it.
	unlockB, err := b.LockRefresh(ctx, "k")
	require.NoError(t, err)
	ownerB, err := srv.Do("GET", lk)
	require.NoError(t, err)

	unlockA() // must not release B's lock
	unlockA()
	got, err := srv.Do("GET", lk)
	require.NoError(t, err)
	require.NotEqual(t, ownerA, ownerB)
	require.Equal(t, ownerB, got, "A's unlock released B's lock")
	assert.Contains(t, logs.String(), "was lost before release")

	// C cannot get it while B holds it.
	_, err = c.LockRefresh(ctx, "k")
	requireLockTimeout(t, err)
	require.ErrorIs(t, err, auth.ErrTemporary)

	unlockB()
	got, err = srv.Do("GET", lk)
	require.NoError(t, err)
	require.Equal(t, "(nil)", got)
	unlockC, err := c.LockRefresh(ctx, "k")
	require.NoError(t, err)
	unlockC()
}

// The lock of a holder that dies expires by itself; one held by a live
// holder is renewed. Asserted on events (who holds the lock, its PTTL,
// what is logged), not on how long things took.
func TestLockExpiresWhenHolderDies(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	const lockTTL = 300 * time.Millisecond
	dead := newStore(t, srv.Addr(), func(c *redisstore.Config) { c.LockTTL = lockTTL })
	next := newStore(t, srv.Addr(), func(c *redisstore.Config) { c.LockTTL = lockTTL })
	lk := defaultPrefix + "lock:k"

	_, err := dead.LockRefresh(ctx, "k") // never unlocked
	require.NoError(t, err)
	owner, err := srv.Do("GET", lk)
	require.NoError(t, err)
	// While the holder lives its lock is renewed: its PTTL goes back up.
	low := pttl(t, srv, lk)
	require.Eventually(t, func() bool {
		d := pttl(t, srv, lk)
		if d > low {
			return true
		}
		low = min(low, d)
		return false
	}, 10*time.Second, 5*time.Millisecond, "a live holder's lock was not renewed")
	got, err := srv.Do("GET", lk)
	require.NoError(t, err)
	require.Equal(t, owner, got, "still the first holder's lock")

	require.NoError(t, dead.Close()) // the holder "dies": renewal stops
	// Nobody renews it any more: its remaining life is at most LockTTL, and
	// it never goes back up.
	d := pttl(t, srv, lk)
	if d > 0 { // (unless it already expired)
		assert.LessOrEqual(t, d, lockTTL)
	}
	// The next replica takes it once it expired by itself (within
	// LockWait, LockTTL+2s by default, or this fails with a lock timeout).
	unlock, err := next.LockRefresh(ctx, "k")
	require.NoError(t, err)
	got, err = srv.Do("GET", lk)
	require.NoError(t, err)
	assert.NotEqual(t, owner, got, "the next replica holds it now")
	unlock()

	// The same within one process: a goroutine that never unlocks holds the
	// lock for LockMaxHold at most, and does not block the process's other
	// goroutines beyond that.
	logs := &testutil.SyncBuffer{}
	same := newStore(t, srv.Addr(), func(c *redisstore.Config) {
		c.LockTTL = lockTTL
		c.LockMaxHold = 200 * time.Millisecond
		c.Logger = logger(logs)
	})
	_, err = same.LockRefresh(ctx, "k2") // dropped
	require.NoError(t, err)
	owner, err = srv.Do("GET", defaultPrefix+"lock:k2")
	require.NoError(t, err)
	unlock, err = same.LockRefresh(ctx, "k2")
	require.NoError(t, err)
	got, err = srv.Do("GET", defaultPrefix+"lock:k2")
	require.NoError(t, err)
	assert.NotEqual(t, owner, got, "the dropped lock expired; the second caller took a new one")
	unlock()
	assert.Contains(t, logs.String(), "held past LockMaxHold")
	assert.Equal(t, 1, strings.Count(logs.String(), "was not released within"))
	// ... and only once: the next caller does not wait for the retired
	// gate again (that would log a second time).
	unlock, err = same.LockRefresh(ctx, "k2")
	require.NoError(t, err)
	unlock()
	assert.Equal(t, 1, strings.Count(logs.String(), "was not released within"))
}

func TestLockRenewedWhileHeld(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	// Renewal every LockTTL/3 leaves two thirds of LockTTL of slack for a
	// late renewal: generous, so that a loaded machine does not lose it.
	holder := newStore(t, srv.Addr(), func(c *redisstore.Config) { c.LockTTL = 600 * time.Millisecond })
	other := newStore(t, srv.Addr(), func(c *redisstore.Config) { c.LockWait = 2400 * time.Millisecond })
	unlock, err := holder.LockRefresh(ctx, "k")
	require.NoError(t, err)
	// A slow refresh, four times LockTTL: nobody else gets the lock.
	_, err = other.LockRefresh(ctx, "k")
	requireLockTimeout(t, err)
	unlock()
	unlock2, err := other.LockRefresh(ctx, "k")
	require.NoError(t, err, "not released by unlock")
	unlock2()
	time.Sleep(200 * time.Millisecond) // a stopped renewal must not recreate the lock
	v, err := srv.Do("EXISTS", defaultPrefix+"lock:k")
	require.NoError(t, err)
	assert.Equal(t, "0", v)
}

func TestLockWaitEnds(t *testing.T) {
	srv := redistest.Start(t)
	s := newStore(t, srv.Addr(), func(c *redisstore.Config) { c.LockWait = 150 * time.Millisecond })
	holder := newStore(t, srv.Addr(), nil)
	unlock, err := holder.LockRefresh(context.Background(), "k")
	require.NoError(t, err)
	defer unlock()

	// The holder's lock lives 10 s: only LockWait can end this wait.
	_, err = s.LockRefresh(context.Background(), "k")
	requireLockTimeout(t, err)

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err = s.LockRefresh(ctx, "k")
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.NotErrorIs(t, err, auth.ErrTemporary, "the caller's deadline, not LockWait")

	// Waiters in the same process queue on the in-process gate and give up too.
	ctx2, cancel2 := context.WithCancel(context.Background())
	unlockSame, err := holder.LockRefresh(context.Background(), "other")
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { _, err := holder.LockRefresh(ctx2, "other"); done <- err }()
	time.Sleep(20 * time.Millisecond)
	cancel2()
	require.ErrorIs(t, <-done, context.Canceled)
	unlockSame()
}

// deadAddr returns an address nobody listens on.
func deadAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return addr
}

// blackhole returns the address of a listener that accepts connections and
// never answers.
func blackhole(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var mu sync.Mutex
	var conns []interface{ Close() error }
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = l.Close()
		<-done
		mu.Lock()
		for _, c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
	})
	return l.Addr().String()
}

func TestRedisUnreachable(t *testing.T) {
	s := newStore(t, deadAddr(t), nil)
	ctx := context.Background()
	check := func(op string, err error) {
		t.Helper()
		require.Error(t, err, op)
		assertRedisUnavailable(t, err, op)
		assert.NotErrorIs(t, err, authcode.ErrSessionNotFound, op)
		assert.NotContains(t, err.Error(), "sid-secret", op)
		assert.NotContains(t, err.Error(), "token-value", op)
		assert.Contains(t, err.Error(), op)
	}
	t0 := time.Now()
	_, err := s.Load(ctx, "iss|sid-secret")
	check("load session", err)
	check("save session", s.Save(ctx, "iss|sid-secret", []byte("token-value"), time.Minute))
	check("delete session", s.Delete(ctx, "iss|sid-secret"))
	_, err = s.LockRefresh(ctx, "iss|sid-secret")
	check("take refresh lock", err)
	check("ping", s.Ping(ctx))
	assert.Less(t, time.Since(t0), 5*time.Second, "errors must come promptly")

	// A cancelled context is reported as such, not as an outage.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_, err = s.Load(cctx, "k")
	require.ErrorIs(t, err, context.Canceled)
}

func TestRedisBlackholeRespectsContext(t *testing.T) {
	// A listener that accepts and never answers: reads hang until ctx ends.
	s := newStore(t, blackhole(t), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	t0 := time.Now()
	_, err := s.Load(ctx, "k")
	require.Error(t, err)
	assert.Less(t, time.Since(t0), 1500*time.Millisecond, "Load ignored its context")
}

func TestRestartWithPersistence(t *testing.T) {
	srv := redistest.Start(t, redistest.Persistent())
	s := newStore(t, srv.Addr(), nil)
	ctx := context.Background()
	require.NoError(t, s.Save(ctx, "s", []byte("survives"), time.Minute))

	srv.Stop()
	_, err := s.Load(ctx, "s")
	assertRedisUnavailable(t, err)
	assertRedisUnavailable(t, s.Save(ctx, "s", []byte("lost?"), time.Minute))

	srv.Restart()
	require.Eventually(t, func() bool {
		got, err := s.Load(ctx, "s")
		return err == nil && string(got) == "survives"
	}, 5*time.Second, 50*time.Millisecond, "the session did not survive the restart")
	unlock, err := s.LockRefresh(ctx, "s") // the script cache was lost too: EVALSHA falls back to EVAL
	require.NoError(t, err)
	unlock()
	v, err := srv.Do("EXISTS", defaultPrefix+"lock:s")
	require.NoError(t, err)
	assert.Equal(t, "0", v)
}

func TestExternalClientNotClosed(t *testing.T) {
	srv := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer rdb.Close()
	s, err := redisstore.New(redisstore.Config{Client: rdb, Keys: [][]byte{key1}})
	require.NoError(t, err)
	require.NoError(t, s.Save(context.Background(), "k", []byte("v"), time.Minute))
	require.NoError(t, s.Close())
	require.NoError(t, rdb.Ping(context.Background()).Err(), "Close closed a client it does not own")
}

// A Store on the user's client (which it does not close) starts nothing
// after Close: a call then fails with auth.ErrClosed rather than running
// on a goroutine Close no longer waits for.
func TestNothingStartsAfterClose(t *testing.T) {
	srv := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr()}) // ignores deadlines: calls run on goroutines
	defer rdb.Close()
	s, err := redisstore.New(redisstore.Config{Client: rdb, Keys: [][]byte{key1}})
	require.NoError(t, err)
	ctx := context.Background()
	require.NoError(t, s.Save(ctx, "k", []byte("v"), time.Minute))
	require.NoError(t, s.Close())
	_, err = s.Load(ctx, "k")
	require.ErrorIs(t, err, auth.ErrClosed)
	require.NotErrorIs(t, err, auth.ErrTemporary)
	_, err = s.LockRefresh(ctx, "k")
	require.ErrorIs(t, err, auth.ErrClosed)
}
