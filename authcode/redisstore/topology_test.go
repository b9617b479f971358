package redisstore_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/erpnetgo/auth/authcode"
	"github.com/erpnetgo/auth/authcode/redisstore"
	"github.com/erpnetgo/auth/internal/redistest"
)

// Config.Client takes any redis.UniversalClient: a Redis Cluster and a
// Sentinel-managed master work like a single server (every command and
// script touches one key, so there is no cross-slot access).
func TestUniversalClients(t *testing.T) {
	t.Parallel() // waits on Redis and processes: overlaps with the others
	t.Run("cluster", func(t *testing.T) {
		addr := startCluster(t)
		rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{addr},
			MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}})
		t.Cleanup(func() { rdb.Close() })
		exerciseStore(t, rdb)
	})
	t.Run("sentinel", func(t *testing.T) {
		master := redistest.Start(t)
		sentinel := startSentinel(t, master.Port())
		rdb := redis.NewUniversalClient(&redis.UniversalOptions{MasterName: "mymaster", Addrs: []string{sentinel},
			MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}})
		t.Cleanup(func() { rdb.Close() })
		_, isFailover := rdb.(*redis.Client)
		require.True(t, isFailover, "MasterName makes a Sentinel (failover) client")
		exerciseStore(t, rdb)
		// The data went to the master Sentinel names.
		keys, err := master.Do("KEYS", defaultPrefix+"*")
		require.NoError(t, err)
		assert.Contains(t, keys, defaultPrefix+"iss|client|sid")
	})
}

// exerciseStore runs every Store operation through rdb.
func exerciseStore(t *testing.T, rdb redis.UniversalClient) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := redisstore.New(redisstore.Config{Client: rdb, Keys: [][]byte{key1}, LockTTL: 300 * time.Millisecond})
	require.NoError(t, err)
	defer s.Close()
	require.NoError(t, s.Ping(ctx))
	// Keys in many hash slots.
	for i := range 20 {
		k := fmt.Sprintf("iss|client|sid-%d", i)
		require.NoError(t, s.Save(ctx, k, []byte("v"+k), time.Minute))
		got, err := s.Load(ctx, k)
		require.NoError(t, err)
		require.Equal(t, "v"+k, string(got))
	}
	require.NoError(t, s.Save(ctx, "iss|client|sid", []byte("session"), time.Minute))
	added, err := s.Add(ctx, "iss|client|state/x", []byte{1}, time.Minute)
	require.NoError(t, err)
	require.True(t, added)
	added, err = s.Add(ctx, "iss|client|state/x", []byte{1}, time.Minute)
	require.NoError(t, err)
	require.False(t, added)
	// The lock scripts (compare-and-delete, compare-and-PEXPIRE).
	unlock, err := s.LockRefresh(ctx, "iss|client|sid")
	require.NoError(t, err)
	wctx, wcancel := context.WithTimeout(ctx, 500*time.Millisecond) // > LockTTL: only renewal keeps it
	_, err = s.LockRefresh(wctx, "iss|client|sid")
	wcancel()
	require.ErrorIs(t, err, context.DeadlineExceeded, "the renewed lock is still held")
	unlock()
	unlock2, err := s.LockRefresh(ctx, "iss|client|sid")
	require.NoError(t, err, "released by unlock")
	unlock2()
	require.NoError(t, s.Delete(ctx, "iss|client|sid"))
	_, err = s.Load(ctx, "iss|client|sid")
	require.ErrorIs(t, err, authcode.ErrSessionNotFound)
}

// freePort returns a port nobody listens on right now.
func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startRedis runs redis-server with args until the test ends.
func startRedis(t *testing.T, args ...string) {
	bin := redistest.Binary(t)
	cmd := exec.Command(bin, args...)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	require.NoError(t, cmd.Start())
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
	})
}

// startCluster runs a one-node Redis Cluster owning every slot (cross-slot
// commands are refused even so) and returns its address.
func startCluster(t *testing.T) string {
	dir := t.TempDir()
	port := freePort(t)
	startRedis(t, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", dir, "--cluster-enabled", "yes", "--cluster-config-file", filepath.Join(dir, "nodes.conf"),
		"--daemonize", "no", "--loglevel", "warning")
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	require.Eventually(t, func() bool { _, err := do(addr, "PING"); return err == nil }, 10*time.Second, 20*time.Millisecond)
	_, err := do(addr, "CLUSTER", "ADDSLOTSRANGE", "0", "16383")
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		info, err := do(addr, "CLUSTER", "INFO")
		return err == nil && strings.Contains(fmt.Sprint(info), "cluster_state:ok")
	}, 10*time.Second, 20*time.Millisecond)
	return addr
}

// do sends one command to addr on a client of its own.
func do(addr string, args ...any) (any, error) {
	rdb := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: time.Second,
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}})
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return rdb.Do(ctx, args...).Result()
}

// startSentinel runs a Sentinel watching the master on masterPort as
// "mymaster" and returns its address.
func startSentinel(t *testing.T, masterPort int) string {
	dir := t.TempDir()
	port := freePort(t)
	conf := filepath.Join(dir, "sentinel.conf")
	require.NoError(t, os.WriteFile(conf, []byte(fmt.Sprintf(
		"port %d\nbind 127.0.0.1\ndir %s\nsentinel monitor mymaster 127.0.0.1 %d 1\n", port, dir, masterPort)), 0o600))
	startRedis(t, conf, "--sentinel", "--loglevel", "warning")
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	require.Eventually(t, func() bool {
		v, err := do(addr, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", "mymaster")
		return err == nil && strings.Contains(fmt.Sprint(v), strconv.Itoa(masterPort))
	}, 10*time.Second, 20*time.Millisecond)
	return addr
}
