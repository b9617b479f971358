package redisstore_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/erpnetgo/auth"
	"github.com/erpnetgo/auth/authcode/redisstore"
	"github.com/erpnetgo/auth/internal/redistest"
	"github.com/erpnetgo/auth/internal/testutil"
)

// startReplicated runs a master and one replica in sync with it.
func startReplicated(t *testing.T) (master, replica *redistest.Server) {
	master, replica = redistest.Start(t), redistest.Start(t)
	_, err := replica.Do("REPLICAOF", "127.0.0.1", strconv.Itoa(master.Port()))
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		info, err := master.Do("INFO", "replication")
		return err == nil && strings.Contains(info, ",state=online,")
	}, 10*time.Second, 20*time.Millisecond)
	return master, replica
}

// returnsWhen runs f and checks that it does not return while the replica
// is paused, and does once it is resumed.
func returnsWhen(t *testing.T, replica *redistest.Server, what string, f func() error) {
	t.Helper()
	replica.Pause()
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		replica.Resume()
		t.Fatalf("%s returned (%v) before the replica had it", what, err)
	case <-time.After(300 * time.Millisecond):
	}
	replica.Resume()
	select {
	case err := <-done:
		require.NoError(t, err, what)
	case <-time.After(20 * time.Second):
		t.Fatalf("%s did not return once the replica was back", what)
	}
}

// With ReplicaWait, a saved session, a deleted one and a refresh lock are
// on a replica by the time the call returns: the call waits while the
// replica cannot acknowledge.
func TestReplicaWait(t *testing.T) {
	master, replica := startReplicated(t)
	logs := &testutil.SyncBuffer{}
	s := newStore(t, master.Addr(), func(c *redisstore.Config) {
		c.ReplicaWait = 15 * time.Second
		c.Logger = logger(logs)
	})
	ctx := context.Background()
	rk := defaultPrefix + "iss|client|sid"

	returnsWhen(t, replica, "Save", func() error { return s.Save(ctx, "iss|client|sid", []byte("rotated"), time.Minute) })
	v, err := replica.Do("EXISTS", rk)
	require.NoError(t, err)
	assert.Equal(t, "1", v, "the saved session is not on the replica")

	var unlock func()
	returnsWhen(t, replica, "LockRefresh", func() (err error) { unlock, err = s.LockRefresh(ctx, "iss|client|sid"); return err })
	locks, err := replica.Do("KEYS", defaultPrefix+"lock:*")
	require.NoError(t, err)
	assert.Len(t, strings.Split(locks, "\n"), 2, "the lock keys are not on the replica: %q", locks)
	unlock()

	returnsWhen(t, replica, "Delete", func() error { return s.Delete(ctx, "iss|client|sid") })
	v, err = replica.Do("EXISTS", rk)
	require.NoError(t, err)
	assert.Equal(t, "0", v, "the deleted session is still on the replica")
	assert.NotContains(t, logs.String(), "replica")

	// No replica acknowledges within ReplicaWait: the write stands on the
	// master, a warning says so.
	short := newStore(t, master.Addr(), func(c *redisstore.Config) {
		c.ReplicaWait = 100 * time.Millisecond
		c.Logger = logger(logs)
	})
	replica.Pause()
	err = short.Save(ctx, "iss|client|sid", []byte("v"), time.Minute)
	replica.Resume()
	require.NoError(t, err)
	got, err := short.Load(ctx, "iss|client|sid")
	require.NoError(t, err)
	assert.Equal(t, "v", string(got))
	assert.Contains(t, logs.String(), "no replica acknowledged a write within ReplicaWait")
	assert.NotContains(t, logs.String(), "iss|client|sid")
}

// Off by default: no WAIT is ever sent.
func TestReplicaWaitOffByDefault(t *testing.T) {
	master, _ := startReplicated(t)
	s := newStore(t, master.Addr(), nil)
	ctx := context.Background()
	require.NoError(t, s.Save(ctx, "k", []byte("v"), time.Minute))
	unlock, err := s.LockRefresh(ctx, "k")
	require.NoError(t, err)
	unlock()
	require.NoError(t, s.Delete(ctx, "k"))
	stats, err := master.Do("INFO", "commandstats")
	require.NoError(t, err)
	assert.NotContains(t, stats, "cmdstat_wait:")
}

// On a Redis Cluster, the write and its WAIT go to the master that holds
// the key, whatever slot it is in; a replica has it when Save returns.
func TestReplicaWaitCluster(t *testing.T) {
	t.Parallel() // waits on Redis and processes: overlaps with the others
	c := redistest.StartCluster(t, 3)
	url := clusterURL(c)
	s, err := redisstore.New(redisstore.Config{Addr: url, Keys: [][]byte{key1}, ReplicaWait: 5 * time.Second})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	ctx := context.Background()
	replicas := map[*redistest.Server]*redis.Client{}
	for i := range 30 {
		k := fmt.Sprintf("iss|client|sid-%d", i)
		require.NoError(t, s.Save(ctx, k, []byte("v"), time.Minute))
		r := c.ReplicaOf(c.MasterOf(defaultPrefix + k))
		if replicas[r] == nil {
			replicas[r] = redis.NewClient(&redis.Options{Addr: r.Addr(),
				MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
				OnConnect:                func(ctx context.Context, cn *redis.Conn) error { return cn.ReadOnly(ctx).Err() }})
			t.Cleanup(func() { _ = replicas[r].Close() })
		}
		n, err := replicas[r].Exists(ctx, defaultPrefix+k).Result()
		require.NoError(t, err)
		require.EqualValues(t, 1, n, "%s is not on its master's replica", k)
		unlock, err := s.LockRefresh(ctx, k)
		require.NoError(t, err)
		unlock()
	}
	require.Len(t, replicas, 3, "keys in every master's slots")
	for _, m := range c.Nodes()[:3] {
		stats, err := m.Do("INFO", "commandstats")
		require.NoError(t, err)
		assert.Contains(t, stats, "cmdstat_wait:", "no WAIT reached master %d", m.Port())
	}
}

func TestReplicaWaitNeedsAPinnableClient(t *testing.T) {
	ring := redis.NewRing(&redis.RingOptions{Addrs: map[string]string{"a": "127.0.0.1:1"}})
	defer ring.Close()
	_, err := redisstore.New(redisstore.Config{Client: ring, Keys: [][]byte{key1}, ReplicaWait: time.Second})
	require.ErrorIs(t, err, auth.ErrMisconfigured)
	var ce *auth.ConfigError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, "ReplicaWait", ce.Field)
	assert.Contains(t, err.Error(), "*redis.Ring")
}
