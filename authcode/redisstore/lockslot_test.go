package redisstore_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/erpnetgo/auth"
	"github.com/erpnetgo/auth/authcode/redisstore"
	"github.com/erpnetgo/auth/internal/redistest"
)

// A session's refresh lock lives in the session's hash slot, so on a Redis
// Cluster it lives on the session's master: a multi-key script over the
// session and its lock runs (no CROSSSLOT), and while one master is down
// every session on the other masters can still refresh. Before, the lock
// key hashed on its own and a third of the sessions on live masters had
// their lock on the dead one.
func TestLockInSessionSlot(t *testing.T) {
	skipShort(t)
	t.Parallel() // waits on Redis and processes: overlaps with the others
	c := redistest.StartCluster(t, 3, redistest.PartialCoverage())
	rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs(),
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}})
	t.Cleanup(func() { _ = rdb.Close() })
	newStore := func(slotOnly bool) *redisstore.Store {
		s, err := redisstore.New(redisstore.Config{Client: rdb, Keys: [][]byte{key1}, SlotLockOnly: slotOnly, Timeout: time.Second})
		require.NoError(t, err)
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	slotOnly, compat := newStore(true), newStore(false)
	ctx := context.Background()
	keys := make([]string, 30)
	for i := range keys {
		keys[i] = fmt.Sprintf("erpnetgo/authcode/v1/iss/client/session/sid-%d", i)
		require.NoError(t, slotOnly.Save(ctx, keys[i], []byte("v"), time.Minute))
	}
	both := redis.NewScript(`return redis.call("EXISTS", KEYS[1], KEYS[2])`)
	for _, k := range keys {
		rk := defaultPrefix + k
		master := c.MasterOf(rk)
		unlock, err := slotOnly.LockRefresh(ctx, k)
		require.NoError(t, err)
		// The only lock in the cluster is on the session's master, in its slot.
		lock, err := master.Do("KEYS", defaultPrefix+"lock:*")
		require.NoError(t, err)
		require.NotEmpty(t, lock, "the lock is not on the session's master")
		require.NotContains(t, lock, "\n", "one lock key")
		s1, _ := master.Do("CLUSTER", "KEYSLOT", rk)
		s2, _ := master.Do("CLUSTER", "KEYSLOT", lock)
		require.Equal(t, s1, s2, "lock %q is not in the slot of its session", lock)
		n, err := both.Run(ctx, rdb, []string{rk, lock}).Int()
		require.NoError(t, err, "a script over a session and its lock")
		require.Equal(t, 2, n)
		unlock()
	}

	// One master dies and stays dead (its replica too), the others keep
	// serving their slots (cluster-require-full-coverage no).
	dead := c.Nodes()[0]
	c.ReplicaOf(dead).Kill()
	dead.Kill()
	var live, legacyOnDead int
	for _, k := range keys {
		if c.MasterOf(defaultPrefix+k) == dead {
			continue
		}
		live++
		unlock, err := slotOnly.LockRefresh(ctx, k)
		require.NoError(t, err, "a session on a live master cannot take its lock")
		unlock()
		// The legacy lock key (taken too unless SlotLockOnly) hashes on its
		// own: where it lands on the dead master, the session cannot refresh.
		// Two such sessions show it (each costs Config.Timeout).
		if legacyOnDead == 2 || c.MasterOf(defaultPrefix+"lock:"+k) != dead {
			continue
		}
		legacyOnDead++
		_, err = compat.LockRefresh(ctx, k)
		require.ErrorIs(t, err, auth.ErrTemporary)
	}
	require.Positive(t, live)
	require.Positive(t, legacyOnDead, "no session had its legacy lock on the dead master; pick other keys")
	t.Logf("%d sessions on live masters: all refresh with SlotLockOnly; %d of them checked had the legacy lock on the dead master", live, legacyOnDead)
}

// oldLock is the refresh lock of releases before the lock moved into the
// session's slot: SET NX PX on Prefix+"lock:"+key, released by a
// compare-and-delete.
func oldLock(ctx context.Context, rdb redis.UniversalClient, key string, wait time.Duration) (func(), error) {
	lk := defaultPrefix + "lock:" + key
	token := fmt.Sprint(time.Now().UnixNano())
	deadline := time.Now().Add(wait)
	for {
		ok, err := rdb.SetNX(ctx, lk, token, 10*time.Second).Result()
		if err != nil {
			return nil, err
		}
		if ok {
			return func() {
				_ = redis.NewScript(`if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) end return 0`).
					Run(context.Background(), rdb, []string{lk}, token).Err()
			}, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("old release: lock timeout")
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// During a rolling deploy, replicas of the old release (the legacy lock
// key only) and of this one (the slot lock, then the legacy key) never
// hold one session's lock at once. With SlotLockOnly they would: that is
// the setting for after the deploy.
func TestRollingDeployOneHolder(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	old := redis.NewClient(&redis.Options{Addr: srv.Addr(), MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}})
	t.Cleanup(func() { _ = old.Close() })
	stores := []*redisstore.Store{newStore(t, srv.Addr(), nil), newStore(t, srv.Addr(), nil)}

	var inside, most, total atomic.Int32
	var wg sync.WaitGroup
	for g := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var unlock func()
			var err error
			if g%2 == 0 {
				unlock, err = oldLock(ctx, old, "iss|client|sid", 30*time.Second)
			} else {
				unlock, err = stores[g%4/2].LockRefresh(ctx, "iss|client|sid")
			}
			if !assert.NoError(t, err) {
				return
			}
			n := inside.Add(1)
			for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
			}
			time.Sleep(time.Millisecond)
			inside.Add(-1)
			total.Add(1)
			unlock()
		}()
	}
	wg.Wait()
	assert.EqualValues(t, 40, total.Load())
	assert.EqualValues(t, 1, most.Load(), "an old and a new replica held one session's lock at once")

	// Step by step: each side waits while the other holds.
	short := newStore(t, srv.Addr(), func(c *redisstore.Config) { c.LockWait = 200 * time.Millisecond })
	unlockOld, err := oldLock(ctx, old, "k", time.Second)
	require.NoError(t, err)
	_, err = short.LockRefresh(ctx, "k")
	requireLockTimeout(t, err)
	keys, err := srv.Do("KEYS", defaultPrefix+"lock:*")
	require.NoError(t, err)
	assert.Equal(t, defaultPrefix+"lock:k", keys, "a new replica that gave up left a lock behind")
	unlockOld()
	unlockNew, err := short.LockRefresh(ctx, "k")
	require.NoError(t, err)
	_, err = oldLock(ctx, old, "k", 200*time.Millisecond)
	require.Error(t, err, "an old replica took the lock a new one holds")
	unlockNew()
	keys, err = srv.Do("KEYS", defaultPrefix+"lock:*")
	require.NoError(t, err)
	assert.Equal(t, "", keys, "unlock released both keys")

	// After the deploy (SlotLockOnly), the legacy key is not taken: an old
	// replica would not be kept out.
	after := newStore(t, srv.Addr(), func(c *redisstore.Config) { c.SlotLockOnly = true })
	unlockOld, err = oldLock(ctx, old, "k", time.Second)
	require.NoError(t, err)
	unlockAfter, err := after.LockRefresh(ctx, "k")
	require.NoError(t, err, "SlotLockOnly takes only the slot lock")
	unlockAfter()
	unlockOld()
	keys, err = srv.Do("KEYS", defaultPrefix+"lock:*")
	require.NoError(t, err)
	assert.False(t, strings.Contains(keys, "lock:"), "locks left: %q", keys)
}
