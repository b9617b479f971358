package redisstore_test

// Redis Cluster and Sentinel under failure: a master killed (SIGKILL) or
// hung (DEBUG SLEEP), its replica promoted. The store must serve again
// soon after the promotion, with a client built as go-redis' docs show
// (redis.NewUniversalClient, no tuning) and with its own client
// (Config.Addr), and no operation may block for much longer than
// Config.Timeout. Durations are asserted only against generous ceilings
// (a loaded 2-core machine must not make these fail); the measured figures
// are logged.

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/erpnetgo/auth"
	"github.com/erpnetgo/auth/authcode/redisstore"
	"github.com/erpnetgo/auth/internal/redistest"
	"github.com/erpnetgo/auth/internal/testutil"
)

const (
	// failTimeout is the stores' Config.Timeout in these tests.
	failTimeout = time.Second
	// callCeiling is how long one call may take, at most, for the test to
	// pass: Config.Timeout plus generous slack for a loaded machine. An
	// unbounded call (go-redis' own timeouts and retries) takes 20 s or
	// more.
	callCeiling = failTimeout + 4*time.Second
	// recoveryCeiling is how long after the promotion the store may take
	// to serve again, at most, for the test to pass (go-redis alone: up to
	// a minute after a kill, until the hung node wakes after a hang).
	recoveryCeiling = 20 * time.Second
)

// failStore is a store under test, with its name for messages.
type failStore struct {
	name  string
	store *redisstore.Store
}

// probe calls op every 20ms until it succeeds after the promotion (signalled
// by promoted) or the recovery ceiling passes. It checks that every call
// returned within callCeiling and that every failure is a temporary one, and
// returns the time from the promotion to the first success.
func probe(t *testing.T, name string, promoted <-chan time.Time, op func(context.Context) error) time.Duration {
	t.Helper()
	var promotedAt time.Time
	var longest time.Duration
	failures := 0
	for {
		start := time.Now()
		err := op(context.Background())
		took := time.Since(start)
		longest = max(longest, took)
		assert.LessOrEqual(t, took, callCeiling, "%s: a store call blocked past its bound", name)
		if promotedAt.IsZero() {
			select {
			case promotedAt = <-promoted:
			default:
			}
		}
		if err == nil && !promotedAt.IsZero() {
			rec := time.Since(promotedAt)
			t.Logf("%s: serving again %v after the promotion (%d failed calls, the longest call %v)", name, rec.Round(time.Millisecond), failures, longest.Round(time.Millisecond))
			return rec
		}
		if err != nil {
			failures++
			if !assert.ErrorIs(t, err, auth.ErrTemporary, "%s", name) {
				return 0
			}
		}
		if !promotedAt.IsZero() && time.Since(promotedAt) > recoveryCeiling {
			t.Errorf("%s: still failing %v after the promotion: %v", name, recoveryCeiling, err)
			return 0
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// probeAll probes every store at once (one goroutine each).
func probeAll(t *testing.T, stores []failStore, promoted func(), op func(context.Context, *redisstore.Store) error) {
	t.Helper()
	chans := make([]chan time.Time, len(stores))
	var wg sync.WaitGroup
	for i, fs := range stores {
		chans[i] = make(chan time.Time, 1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			probe(t, fs.name, chans[i], func(ctx context.Context) error { return op(ctx, fs.store) })
		}()
	}
	time.Sleep(300 * time.Millisecond) // a few failing calls before the promotion
	promoted()
	now := time.Now()
	for _, c := range chans {
		c <- now
	}
	wg.Wait()
}

// failStores returns a store on a client built as go-redis' docs show and
// one on the store's own client from addr.
func failStores(t *testing.T, universal *redis.UniversalOptions, addr string) []failStore {
	t.Helper()
	rdb := redis.NewUniversalClient(universal)
	t.Cleanup(func() { _ = rdb.Close() })
	user, err := redisstore.New(redisstore.Config{Client: rdb, Keys: [][]byte{key1}, Timeout: failTimeout})
	require.NoError(t, err)
	own, err := redisstore.New(redisstore.Config{Addr: addr, Keys: [][]byte{key1}, Timeout: failTimeout})
	require.NoError(t, err)
	// Closed before rdb (cleanups run last-in first-out): Close waits for
	// calls left behind at Timeout.
	t.Cleanup(func() { _ = user.Close(); _ = own.Close() })
	return []failStore{{"NewUniversalClient", user}, {"Config.Addr", own}}
}

// clusterURL is a redis+cluster:// URL listing c's nodes.
func clusterURL(c *redistest.Cluster) string {
	addrs := c.Addrs()
	return "redis+cluster://" + addrs[0] + "?addr=" + strings.Join(addrs[1:], "&addr=")
}

// keyOn returns a session key whose Redis key lives on node.
func keyOn(t *testing.T, c *redistest.Cluster, node *redistest.Server, tag string) string {
	t.Helper()
	for i := range 1000 {
		k := fmt.Sprintf("iss|client|%s-%d", tag, i)
		if c.MasterOf(defaultPrefix+k) == node {
			return k
		}
	}
	t.Fatal("no key found on the node")
	return ""
}

// skipShort skips a test that fails Redis nodes over for real under -short
// (.ci/run's second pass, under the oldest Go the module supports; its
// race pass runs them).
func skipShort(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("a real Redis failover (run without -short)")
	}
}

func TestClusterFailover(t *testing.T) {
	skipShort(t)
	c := redistest.StartCluster(t, 3)
	stores := failStores(t, &redis.UniversalOptions{Addrs: c.Addrs()}, clusterURL(c))
	ctx := context.Background()
	masters := c.Nodes()[:3]
	killedKey, hungKey := keyOn(t, c, masters[0], "killed"), keyOn(t, c, masters[1], "hung")
	for _, fs := range stores {
		require.NoError(t, fs.store.Save(ctx, killedKey, []byte("v"), time.Minute))
		require.NoError(t, fs.store.Save(ctx, hungKey, []byte("v"), time.Minute))
		_, err := fs.store.Load(ctx, killedKey)
		require.NoError(t, err)
	}
	load := func(key string) func(context.Context, *redisstore.Store) error {
		return func(ctx context.Context, s *redisstore.Store) error {
			_, err := s.Load(ctx, key)
			return err
		}
	}

	// A store whose writes wait for a replica, idle during the failover:
	// its slot map is stale when it writes next.
	logs := &testutil.SyncBuffer{}
	waiting, err := redisstore.New(redisstore.Config{Addr: clusterURL(c), Keys: [][]byte{key1}, Timeout: failTimeout,
		ReplicaWait: 100 * time.Millisecond, Logger: logger(logs)})
	require.NoError(t, err)
	t.Cleanup(func() { _ = waiting.Close() })
	require.NoError(t, waiting.Save(ctx, killedKey, []byte("v"), time.Minute))

	c.Synced() // the saved sessions are on the replicas
	t.Run("master killed", func(t *testing.T) {
		replica := c.ReplicaOf(masters[0])
		masters[0].Kill()
		probeAll(t, stores, func() { c.Takeover(replica) }, load(killedKey))
		// The write goes to the promoted replica (the slot map re-read);
		// with no replica of its own left, it stands there unacknowledged.
		require.NoError(t, waiting.Save(ctx, killedKey, []byte("v2"), time.Minute))
		got, err := stores[1].store.Load(ctx, killedKey)
		require.NoError(t, err)
		assert.Equal(t, "v2", string(got))
		assert.Contains(t, logs.String(), "no replica acknowledged")
	})
	t.Run("master hung", func(t *testing.T) {
		replica := c.ReplicaOf(masters[1])
		require.NoError(t, masters[1].Hang(30*time.Second))
		probeAll(t, stores, func() { c.Takeover(replica) }, load(hungKey))
		// Writes and the refresh lock work on the promoted replica too.
		for _, fs := range stores {
			require.NoError(t, fs.store.Save(ctx, hungKey, []byte("v2"), time.Minute), fs.name)
			unlock, err := fs.store.LockRefresh(ctx, hungKey)
			require.NoError(t, err, fs.name)
			unlock()
		}
		masters[1].Kill() // ends the calls left behind on it
	})
}

func TestSentinelFailover(t *testing.T) {
	skipShort(t)
	// A master name fails over at most once per two failover-timeouts: one
	// Sentinel set-up per failure.
	for _, hang := range []bool{false, true} {
		name := map[bool]string{false: "master killed", true: "master hung"}[hang]
		t.Run(name, func(t *testing.T) {
			s := redistest.StartSentinel(t, 1, 1)
			sentinels := s.Addrs()
			stores := failStores(t, &redis.UniversalOptions{MasterName: redistest.MasterName, Addrs: sentinels},
				"redis+sentinel://"+sentinels[0]+"?master_name="+redistest.MasterName)
			ctx := context.Background()
			for _, fs := range stores {
				require.NoError(t, fs.store.Save(ctx, "iss|client|sid", []byte("v"), time.Minute))
			}
			s.Synced()
			m := s.Master()
			if hang {
				require.NoError(t, m.Hang(30*time.Second))
			} else {
				m.Kill()
			}
			probeAll(t, stores, func() { s.WaitFailover(m) }, func(ctx context.Context, s *redisstore.Store) error {
				_, err := s.Load(ctx, "iss|client|sid")
				return err
			})
			m.Kill() // ends the calls left behind on a hung master
		})
	}
}

// A client that ignores context deadlines (go-redis' default) and a Redis
// that accepts connections and never answers: every operation returns at
// Config.Timeout with a temporary error, not at the client's ReadTimeout
// times its retries.
func TestTimeoutBoundsAnyClient(t *testing.T) {
	addr := blackhole(t)
	rdb := redis.NewClient(&redis.Options{Addr: addr, ReadTimeout: 2 * time.Second})
	t.Cleanup(func() { _ = rdb.Close() })
	s, err := redisstore.New(redisstore.Config{Client: rdb, Keys: [][]byte{key1}, Timeout: 200 * time.Millisecond})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	ctx := context.Background()
	ops := map[string]func() error{
		"load session":      func() error { _, err := s.Load(ctx, "k"); return err },
		"save session":      func() error { return s.Save(ctx, "k", []byte("v"), time.Minute) },
		"add key":           func() error { _, err := s.Add(ctx, "k", []byte("v"), time.Minute); return err },
		"delete session":    func() error { return s.Delete(ctx, "k") },
		"take refresh lock": func() error { _, err := s.LockRefresh(ctx, "k"); return err },
		"ping":              func() error { return s.Ping(ctx) },
	}
	for op, f := range ops {
		start := time.Now()
		err := f()
		took := time.Since(start)
		require.Error(t, err, op)
		assertRedisUnavailable(t, err, op)
		assert.Contains(t, err.Error(), "did not answer within 200ms (Config.Timeout)", op)
		assert.Contains(t, err.Error(), op)
		assert.NotErrorIs(t, err, context.DeadlineExceeded, "%s: not the caller's deadline", op)
		assert.Less(t, took, 1800*time.Millisecond, "%s blocked past Config.Timeout (the client's ReadTimeout is 2s, with retries)", op)
	}
	// The caller's own deadline is still reported as such.
	cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	_, err = s.Load(cctx, "k")
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.NotErrorIs(t, err, auth.ErrTemporary)
}
