package main

// The -redis flag: keep sessions in Redis (authcode/redisstore) so that
// several replicas of this app behind a load balancer share their users'
// sign-ins and never redeem the same one-time refresh token twice. The
// step-by-step two-replica recipe is in the program's doc comment (main.go,
// `go doc ./examples/webapp`): one Redis, one identity server
// (examples/devserver) and the same ERPNET_* settings for every replica.
//
// -redis takes host:port or a redis:// URL (with password and database), or
// a Redis Cluster (redis+cluster://) or Sentinel (redis+sentinel://) URL as
// redisstore.Config.Addr describes.
// ERPNET_SESSION_KEY (base64 of 16, 24 or 32 bytes) seals the sessions in
// Redis; without it a key is derived from ERPNET_COOKIE_KEY, and without
// that a random per-process key is used (a warning is logged: sessions then
// last only as long as this process).

import (
	"context"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/erpnetgo/auth/authcode"
	"github.com/erpnetgo/auth/authcode/redisstore"
)

var redisAddr = flag.String("redis", "", "keep sessions in Redis at this address (host:port, or a redis://, redis+cluster:// or redis+sentinel:// URL) so replicas share them")

// newRedisStore connects the Redis session store and checks that Redis
// answers, so a wrong address fails at start-up rather than at sign-in.
func newRedisStore(ctx context.Context, log *slog.Logger, addr string) (authcode.Store, func(), error) {
	key, err := sessionKey(log)
	if err != nil {
		return nil, nil, err
	}
	store, err := redisstore.New(redisstore.Config{Addr: addr, Keys: [][]byte{key}, Logger: log})
	if err != nil {
		return nil, nil, err
	}
	pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if err := store.Ping(pctx); err != nil {
		_ = store.Close()
		return nil, nil, fmt.Errorf("-redis: %w", err)
	}
	log.Info("sessions are kept in Redis; run every replica with the same -redis, ERPNET_COOKIE_KEY and ERPNET_SESSION_KEY")
	return store, func() { _ = store.Close() }, nil
}

// sessionKey returns the key that seals sessions in Redis.
func sessionKey(log *slog.Logger) ([]byte, error) {
	if v := os.Getenv("ERPNET_SESSION_KEY"); v != "" {
		k, err := base64.StdEncoding.DecodeString(v)
		if err != nil {
			return nil, errors.New("ERPNET_SESSION_KEY must be base64 (e.g. openssl rand -base64 32)")
		}
		return k, nil
	}
	if v := os.Getenv("ERPNET_COOKIE_KEY"); v != "" {
		ck, err := base64.StdEncoding.DecodeString(v)
		if err != nil {
			return nil, errors.New("ERPNET_COOKIE_KEY must be base64 (e.g. openssl rand -base64 32)")
		}
		// A separate key for a separate purpose, derived from the cookie key.
		return hkdf.Key(sha256.New, ck, nil, "erpnetgo examples/webapp redis session key", 32)
	}
	log.Warn("neither ERPNET_SESSION_KEY nor ERPNET_COOKIE_KEY is set: sessions in Redis are sealed with a random key of this process and cannot be shared with replicas")
	k := make([]byte, 32)
	_, _ = rand.Read(k)
	return k, nil
}
