package redisstore_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/erpnetgo/auth/authcode/redisstore"
	"github.com/erpnetgo/auth/internal/redistest"
)

// TestMeasureClusterFailover measures what users of a 3-master, 3-replica
// Redis Cluster see when a master dies (SIGKILL) or hangs (DEBUG SLEEP 30)
// and the cluster fails it over by itself (cluster-node-timeout 2s): four
// request loops load sessions spread over every slot through a store on a
// client built as go-redis' docs show (redis.NewUniversalClient, nothing
// tuned). It reports when the replica was promoted, how long after that
// requests still failed, how many failed, and the longest request. It runs
// only with REDISSTORE_MEASURE=1 (about two minutes):
//
//	REDISSTORE_MEASURE=1 go test -run TestMeasureClusterFailover -v ./authcode/redisstore/
func TestMeasureClusterFailover(t *testing.T) {
	if os.Getenv("REDISSTORE_MEASURE") == "" {
		t.Skip("a measurement: set REDISSTORE_MEASURE=1")
	}
	for _, scenario := range []string{"kill", "hang"} {
		t.Run(scenario, func(t *testing.T) { measureFailover(t, scenario) })
	}
}

func measureFailover(t *testing.T, scenario string) {
	c := redistest.StartCluster(t, 3)
	rdb := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: c.Addrs()})
	t.Cleanup(func() { _ = rdb.Close() })
	s, err := redisstore.New(redisstore.Config{Client: rdb, Keys: [][]byte{key1}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	ctx := context.Background()
	keys := make([]string, 300)
	for i := range keys {
		keys[i] = fmt.Sprintf("iss|client|sid-%d", i)
		require.NoError(t, s.Save(ctx, keys[i], []byte("session"), time.Hour))
	}
	c.Synced()
	victim := c.MasterOf(defaultPrefix + keys[0])
	replica := c.ReplicaOf(victim)

	type result struct {
		at   time.Time
		took time.Duration
		err  error
	}
	var (
		mu      sync.Mutex
		results []result
		stop    = make(chan struct{})
		wg      sync.WaitGroup
	)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				case <-time.After(5 * time.Millisecond):
				}
				start := time.Now()
				_, err := s.Load(ctx, keys[rand.N(len(keys))])
				mu.Lock()
				results = append(results, result{start, time.Since(start), err})
				mu.Unlock()
			}
		}()
	}
	time.Sleep(500 * time.Millisecond)
	failedAt := time.Now()
	if scenario == "kill" {
		victim.Kill()
	} else {
		require.NoError(t, victim.Hang(30*time.Second))
	}
	var promotedAt time.Time
	for promotedAt.IsZero() && time.Since(failedAt) < 30*time.Second {
		if role, err := replica.DoWithin(time.Second, "ROLE"); err == nil && strings.HasPrefix(role, "master") {
			promotedAt = time.Now()
		}
		time.Sleep(10 * time.Millisecond)
	}
	require.False(t, promotedAt.IsZero(), "the cluster did not promote the replica")
	// Run until requests have succeeded for 3 s in a row (at most 75 s).
	for time.Since(promotedAt) < 75*time.Second {
		time.Sleep(250 * time.Millisecond)
		mu.Lock()
		lastErr := time.Time{}
		for _, r := range results {
			if r.err != nil && r.at.Add(r.took).After(lastErr) {
				lastErr = r.at.Add(r.took)
			}
		}
		mu.Unlock()
		if time.Since(lastErr) > 3*time.Second && time.Since(promotedAt) > 3*time.Second {
			break
		}
	}
	close(stop)
	wg.Wait()
	var failed int
	var lastErr time.Time
	var longest time.Duration
	for _, r := range results {
		if r.at.Before(failedAt) {
			continue
		}
		longest = max(longest, r.took)
		if r.err != nil {
			failed++
			lastErr = r.at.Add(r.took)
		}
	}
	window := "none"
	if lastErr.After(promotedAt) {
		window = lastErr.Sub(promotedAt).Round(10 * time.Millisecond).String()
	}
	t.Logf("%s: promoted %v after the failure; requests failed until %s after the promotion; %d of %d requests failed; longest request %v",
		scenario, promotedAt.Sub(failedAt).Round(10*time.Millisecond), window, failed, len(results), longest.Round(10*time.Millisecond))
	victim.Kill()
}
