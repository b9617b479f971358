package redisstore_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/erpnetgo/auth/internal/redistest"
)

// Add is one SET NX: of many concurrent adds of one key, one wins; the
// value is sealed like any other.
func TestAddIsAtomic(t *testing.T) {
	srv := redistest.Start(t)
	s := newStore(t, srv.Addr(), nil)
	ctx := context.Background()
	var wins atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			added, err := s.Add(ctx, "iss|client|state/abc", []byte("used"), time.Minute)
			require.NoError(t, err)
			if added {
				wins.Add(1)
			}
		}()
	}
	wg.Wait()
	require.Equal(t, int32(1), wins.Load())
	v, err := s.Load(ctx, "iss|client|state/abc")
	require.NoError(t, err)
	require.Equal(t, "used", string(v))
	require.Positive(t, pttl(t, srv, defaultPrefix+"iss|client|state/abc"), "added key has a TTL")
}
