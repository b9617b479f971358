package redisstore_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"log"
	"net/http"
	"os"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/erpnetgo/auth/authcode"
	"github.com/erpnetgo/auth/authcode/redisstore"
)

// A Store used directly, as the authcode Client uses it.
func Example() {
	// Every replica must share the same keys: load them from your secret
	// store. The first key seals; older ones listed after it still open.
	key := make([]byte, 32)
	_, _ = rand.Read(key)

	store, err := redisstore.New(redisstore.Config{
		Addr: os.Getenv("REDIS_ADDR"), // "127.0.0.1:6379", or "redis://:password@redis:6379/0"
		Keys: [][]byte{key},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()

	ctx := context.Background()
	if err := store.Save(ctx, "example/session/1", []byte("sealed before it reaches Redis"), time.Hour); err != nil {
		log.Fatal(err)
	}
	v, err := store.Load(ctx, "example/session/1")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(v))

	// Only one replica at a time holds a session's refresh lock.
	unlock, err := store.LockRefresh(ctx, "example/session/1")
	if err != nil {
		log.Fatal(err)
	}
	// ... reload the session, redeem its refresh token, save the result ...
	unlock()

	_ = store.Delete(ctx, "example/session/1")
	_, err = store.Load(ctx, "example/session/1")
	fmt.Println(err == authcode.ErrSessionNotFound)
	// Output:
	// sealed before it reaches Redis
	// true
}

// Sharing sign-ins between the replicas of a web app: give every replica
// the same Store configuration and the same Keys.
func Example_authcode() {
	store, err := redisstore.New(redisstore.Config{
		Addr: "redis:6379",
		Keys: [][]byte{mustKey("SESSION_STORE_KEY")},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()

	client, err := authcode.New(authcode.Config{
		Authority:    "https://demodb.my.erp.net",
		ClientID:     "com.example/webapp",
		ClientSecret: os.Getenv("ERPNET_CLIENT_SECRET"),
		RedirectURL:  "https://app.example.com/callback",
		Store:        store, // also its RefreshLocker: one refresh per session across replicas
		Keys:         [][]byte{mustKey("COOKIE_KEY")},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	http.Handle("/signin", client.SignIn())
	http.Handle("/callback", client.Callback())
	log.Fatal(http.ListenAndServe(":8080", nil))
}

// A Redis Cluster or a Sentinel-managed master: pass any
// redis.UniversalClient as Config.Client (the Store does not close it).
func ExampleNew_sentinel() {
	rdb := redis.NewUniversalClient(&redis.UniversalOptions{
		MasterName: "mymaster", // Sentinel; leave it empty and list the nodes for a Cluster
		Addrs:      []string{"sentinel-1:26379", "sentinel-2:26379", "sentinel-3:26379"},
	})
	defer rdb.Close()
	store, err := redisstore.New(redisstore.Config{
		Client: rdb,
		Keys:   [][]byte{mustKey("SESSION_STORE_KEY")},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()
	_ = authcode.Config{Store: store} // as in Example_authcode
}

// A Redis Cluster through the Store's own client: the seed nodes in one
// URL (one is enough), the SDK's timeouts, and a replica's acknowledgement
// on the writes that matter.
func ExampleNew_cluster() {
	store, err := redisstore.New(redisstore.Config{
		Addr:        "rediss+cluster://:" + os.Getenv("REDIS_PASSWORD") + "@node-1:6379?addr=node-2:6379&addr=node-3:6379",
		Keys:        [][]byte{mustKey("SESSION_STORE_KEY")},
		Timeout:     time.Second,            // no request waits on Redis longer (default 2s)
		ReplicaWait: 100 * time.Millisecond, // WAIT 1 on session saves, deletes and locks
		// SlotLockOnly: true, // once no replica of a release before the slot lock runs
	})
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()
	_ = authcode.Config{Store: store} // as in Example_authcode
}

// mustKey reads a 32-byte key from a secret store (here: a stand-in).
func mustKey(name string) []byte {
	_ = name
	k := make([]byte, 32)
	_, _ = rand.Read(k)
	return k
}
