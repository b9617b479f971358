package redisstore_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/erpnetgo/auth/authcode"
	"github.com/erpnetgo/auth/authcode/redisstore"
	"github.com/erpnetgo/auth/erpnettest"
	"github.com/erpnetgo/auth/internal/erpnetctl"
	"github.com/erpnetgo/auth/internal/redistest"
)

// countingHook counts the commands sent to Redis: one per round trip for
// single commands, one per pipeline.
type countingHook struct{ n atomic.Int64 }

func (h *countingHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *countingHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmd)
	}
}

func (h *countingHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmds)
	}
}

// BenchmarkSessionLoadAndToken measures what every request of a signed-in
// user costs: authcode.UserSession (the session loaded from Redis and
// decrypted) and TokenSource.Token on a fresh access token.
func BenchmarkSessionLoadAndToken(b *testing.B) {
	w := &world{redis: redistest.Start(b), sealKey: key1, cookieKey: key2}
	w.ds = erpnettest.NewServer(b)
	erpnetctl.Of(w.ds).AutoSignIn(erpnettest.Demo.Alice)

	hook := &countingHook{}
	rdb := redis.NewClient(&redis.Options{Addr: w.redis.Addr()})
	rdb.AddHook(hook)
	b.Cleanup(func() { _ = rdb.Close() })
	store, err := redisstore.New(redisstore.Config{Client: rdb, Keys: [][]byte{w.sealKey}})
	require.NoError(b, err)
	client, err := authcode.New(authcode.Config{
		Authority:    w.ds.URL(),
		ClientID:     erpnettest.Demo.WebAppID,
		ClientSecret: erpnettest.Demo.WebAppSecret,
		RedirectURL:  "http://127.0.0.1:8080/callback",
		Store:        store,
		Keys:         [][]byte{w.cookieKey},
	})
	require.NoError(b, err)
	b.Cleanup(func() { _ = client.Close() })
	ck := signIn(b, &replica{store: store, client: client})
	ctx := context.Background()
	r := request(ctx, ck.Name+"="+ck.Value)
	if _, err := sessionToken(ctx, client, ck.Name+"="+ck.Value); err != nil {
		b.Fatal(err)
	}
	grants := w.ds.Requests("token")

	b.ReportAllocs()
	hook.n.Store(0)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		sess, err := client.UserSession(r)
		if err != nil {
			b.Fatal(err)
		}
		tok, err := client.TokenSource(ctx, sess).Token()
		if err != nil || tok.AccessToken == "" {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(hook.n.Load())/float64(b.N), "redis-roundtrips/op")
	// What the session takes in Redis: its key and sealed value, as Redis
	// accounts them (MEMORY USAGE), and the value alone.
	keys, err := rdb.Keys(ctx, "*session/*").Result()
	if err != nil || len(keys) != 1 {
		b.Fatalf("session keys %q: %v", keys, err)
	}
	usage, err := rdb.MemoryUsage(ctx, keys[0], 0).Result()
	if err != nil {
		b.Fatal(err)
	}
	size, err := rdb.StrLen(ctx, keys[0]).Result()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(usage), "redis-B/session")
	b.ReportMetric(float64(size), "value-B/session")
	if w.ds.Requests("token") != grants {
		b.Fatal("the benchmark made token requests")
	}
}

// BenchmarkStoreLoad is the store's part alone: one GET and one AES-GCM open.
func BenchmarkStoreLoad(b *testing.B) {
	srv := redistest.Start(b)
	s := newStore(b, srv.Addr(), nil)
	ctx := context.Background()
	value := make([]byte, 2048) // about the size of a session with JWTs
	require.NoError(b, s.Save(ctx, "k", value, time.Hour))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := s.Load(ctx, "k"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLockRefresh is an uncontended lock and unlock: two round trips
// per lock key (SET NX, then the release script), so four by default (the
// slot lock and the legacy key), two with SlotLockOnly.
func BenchmarkLockRefresh(b *testing.B) {
	srv := redistest.Start(b)
	for _, slotOnly := range []bool{false, true} {
		b.Run(map[bool]string{false: "default", true: "SlotLockOnly"}[slotOnly], func(b *testing.B) {
			s := newStore(b, srv.Addr(), func(c *redisstore.Config) { c.SlotLockOnly = slotOnly })
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				unlock, err := s.LockRefresh(ctx, "k")
				if err != nil {
					b.Fatal(err)
				}
				unlock()
			}
		})
	}
}
