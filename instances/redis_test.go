package instances_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/erpnetgo/auth/authcode/redisstore"
	"github.com/erpnetgo/auth/erpnettest"
	"github.com/erpnetgo/auth/instances"
	"github.com/erpnetgo/auth/internal/redistest"
)

// Two replicas sharing Redis (authcode/redisstore) and the secrets: users
// of two instances are served by either replica; Remove on one leaves no
// key of the instance's sessions in Redis.
func TestRedisReplicas(t *testing.T) {
	rs := redistest.Start(t)
	rc := redis.NewClient(&redis.Options{Addr: rs.Addr()})
	defer rc.Close()
	store, err := redisstore.New(redisstore.Config{Client: rc, Keys: [][]byte{make([]byte, 32)}})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	A, B := newInstance(t, "acme"), newInstance(t, "globex")
	secrets := new(mapSecrets)
	cfg := instances.Config{Store: store, Secrets: secrets}
	r1, r2 := newApp(t, cfg), newApp(t, cfg)
	ctx := context.Background()
	for _, in := range []*instance{A, B} {
		if err := r1.reg.Add(ctx, in.URL(), in.secret); err != nil {
			t.Fatal(err)
		}
	}
	u1, _ := url.Parse(r1.ts.URL)
	u2, _ := url.Parse(r2.ts.URL)
	var browsers []*http.Client
	for _, in := range []*instance{A, B} {
		c := r1.signIn(in, erpnettest.Demo.Alice)
		c.Jar.SetCookies(u2, c.Jar.Cookies(u1))
		if st, iss, _ := r2.me(c); st != http.StatusOK || iss != in.Authority() {
			t.Fatalf("replica 2, user of %s: /me %d %q", in.URL(), st, iss)
		}
		browsers = append(browsers, c)
	}
	sessionKeys := func() (n int) {
		keys, err := rc.Keys(ctx, "*").Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range keys {
			if strings.Contains(k, "/session/") {
				n++
			}
		}
		return n
	}
	if n := sessionKeys(); n != 2 {
		t.Fatalf("%d session keys in Redis; want 2", n)
	}
	if err := r1.reg.Remove(ctx, A.URL()); err != nil {
		t.Fatal(err)
	}
	if n := sessionKeys(); n != 1 {
		t.Fatalf("after Remove: %d session keys in Redis; want 1 (B's)", n)
	}
	if st, _, _ := r1.me(browsers[0]); st != http.StatusFound {
		t.Fatalf("A's user after Remove: /me %d; want 302", st)
	}
	if st, _, _ := r2.me(browsers[1]); st != http.StatusOK {
		t.Fatalf("B's user on replica 2: /me %d; want 200", st)
	}
}
