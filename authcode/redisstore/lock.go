package redisstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/erpnetgo/auth"
)

// Lock keys. A session stored at Prefix+key has its refresh lock at
// Prefix+"lock:{tag}"+key, where the hash tag puts the lock in the
// session's own Cluster slot (see slotTag). Releases before this one took
// the lock at Prefix+"lock:"+key, in whatever slot that hashes to; unless
// Config.SlotLockOnly is set, the Store takes that legacy key too, second,
// so that old and new replicas exclude each other during a rolling deploy.
// Session keys that begin with "lock:" or "{" are refused, so no session
// key and no lock key (of either form) can be the same.
const lockInfix = "lock:"

// lockKeys returns the Redis keys of key's refresh lock, in the order
// they are taken: the one in the session's slot, then the legacy one.
func (s *Store) lockKeys(key string) []string {
	rk := s.prefix + key
	slotLock := s.prefix + lockInfix + "{" + slotTag(rk) + "}" + key
	if s.slotLockOnly {
		return []string{slotLock}
	}
	return []string{slotLock, s.prefix + lockInfix + key}
}

// Lock polling: a waiter sleeps a random time in [0, backoff) between
// attempts, the backoff growing from pollMin to pollMax.
const (
	pollMin = 4 * time.Millisecond
	pollMax = 64 * time.Millisecond
)

// errLockTimeout is the cause of a LockRefresh that waited Config.LockWait
// in vain (another replica held the lock for too long).
var errLockTimeout = errors.New("timed out waiting for the session's refresh lock")

// releaseScript deletes a lock only if it still holds the caller's owner
// token, so a holder whose lock expired never releases its successor's.
var releaseScript = redis.NewScript(`if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) end return 0`)

// extendScript renews a lock only if it still holds the caller's token.
var extendScript = redis.NewScript(`if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("PEXPIRE", KEYS[1], ARGV[2]) end return 0`)

// LockRefresh implements authcode.RefreshLocker. It takes key's refresh lock
// with SET NX PX (Config.LockTTL) and a random owner token, polling with
// short jittered sleeps while someone else holds it, until it succeeds, ctx
// ends (ctx's error is returned) or Config.LockWait passes (an error
// matching auth.ErrTemporary). A Redis failure, or Redis not answering
// within Config.Timeout, returns an error matching auth.ErrTemporary at
// once.
//
// The lock lives in the session's hash slot (on a Cluster, on the
// session's own master); unless Config.SlotLockOnly is set the Store also
// takes the key older releases use (see Config.SlotLockOnly). With
// Config.ReplicaWait, each key taken waits for a replica.
//
// While held, the lock is renewed every LockTTL/3 (a compare-and-PEXPIRE
// script), for at most Config.LockMaxHold. unlock stops the renewal and
// releases the lock only if this caller still owns it (a Lua
// compare-and-delete); it is safe to call more than once and from any
// goroutine, and does not depend on ctx still being live. If the holder's
// process dies, renewal stops with it and the lock expires within LockTTL.
func (s *Store) LockRefresh(ctx context.Context, key string) (unlock func(), err error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	lks := s.lockKeys(key)
	wctx, cancel := context.WithTimeoutCause(ctx, s.lockWait, errLockTimeout)
	defer cancel()

	// Queue behind this process's other waiters for the key, so that only
	// one goroutine per process polls Redis. The gate only spares Redis:
	// Redis alone decides who holds the lock, and a gate held for longer
	// than LockMaxHold+LockTTL (an unlock func that was dropped) is retired,
	// just as its Redis lock expires.
	leave, err := s.gates.LockOrRetire(wctx, lks[0], s.maxHold+s.lockTTL, func() {
		s.log.LogAttrs(ctx, slog.LevelWarn, "redisstore: a refresh lock of this process was not released within LockMaxHold+LockTTL; was an unlock func dropped?",
			slog.String("key_fingerprint", fingerprint(lks[0])))
	})
	if err != nil {
		return nil, s.lockWaitErr(ctx)
	}
	token := ownerToken()
	for i, lk := range lks {
		if err := s.take(ctx, wctx, lk, token); err != nil {
			leave()
			s.abandon(lks[:i+1], token)
			return nil, err
		}
	}
	return s.unlocker(lks, token, leave), nil
}

// take polls for one lock key until it holds it for token.
func (s *Store) take(ctx, wctx context.Context, lk, token string) error {
	backoff := pollMin
	var timer *time.Timer
	for {
		ok, err := call(s, wctx, s.timeout+s.replicaWait, func(ctx context.Context) (bool, error) {
			return s.setNX(ctx, lk, token)
		})
		switch {
		case err == nil && ok:
			return nil
		case err != nil && wctx.Err() != nil:
			return s.lockWaitErr(ctx)
		case err != nil:
			return s.fail(ctx, "take refresh lock", err)
		}
		d := mrand.N(backoff) + time.Millisecond
		backoff = min(backoff*2, pollMax)
		if timer == nil {
			timer = time.NewTimer(d)
			defer timer.Stop()
		} else {
			timer.Reset(d)
		}
		select {
		case <-timer.C:
		case <-wctx.Done():
			return s.lockWaitErr(ctx)
		}
	}
}

// setNX is one attempt at a lock key (waiting for a replica once taken,
// with Config.ReplicaWait).
func (s *Store) setNX(ctx context.Context, lk, token string) (bool, error) {
	if s.replicaWait == 0 {
		return s.rdb.SetNX(ctx, lk, token, s.lockTTL).Result()
	}
	return s.pinned(ctx, lk, func(ctx context.Context, c redis.Cmdable) (bool, error) {
		return c.SetNX(ctx, lk, token, s.lockTTL).Result()
	})
}

// lockWaitErr explains why waiting for a lock ended: the caller's context,
// or LockWait.
func (s *Store) lockWaitErr(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("redisstore: take refresh lock: %w", err)
	}
	return &auth.Error{Op: "redis take refresh lock", Kind: auth.ErrTemporary,
		Err: fmt.Errorf("%w (after %v)", errLockTimeout, s.lockWait)}
}

// abandon removes the lock keys taken for token (and one whose SET reply
// was lost may have been), so that others need not wait for them to
// expire. Best effort, the keys at once (together bounded by one
// Config.Timeout), and done before LockRefresh returns: a caller that gave
// up leaves no lock behind.
func (s *Store) abandon(lks []string, token string) {
	var wg sync.WaitGroup
	for _, lk := range lks {
		wg.Go(func() {
			_, _ = call(s, context.Background(), s.timeout, func(ctx context.Context) (int, error) {
				return releaseScript.Run(ctx, s.rdb, []string{lk}, token).Int()
			})
		})
	}
	wg.Wait()
}

// unlocker starts renewing a held lock and returns its idempotent release
// function.
func (s *Store) unlocker(lks []string, token string, leave func()) func() {
	stop := make(chan struct{})
	if s.maxHold > 0 {
		s.life.Go(func() { s.renew(lks, token, stop) }) // not after Close: nothing to renew then
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			close(stop)
			defer leave()
			// The legacy key first: a new replica waiting for the slot
			// key then finds the legacy one free.
			for i := len(lks) - 1; i >= 0; i-- {
				lk := lks[i]
				n, err := call(s, context.Background(), s.timeout, func(ctx context.Context) (int, error) {
					return releaseScript.Run(ctx, s.rdb, []string{lk}, token).Int()
				})
				switch {
				case err != nil:
					s.failed()
					s.log.LogAttrs(context.Background(), slog.LevelWarn, "redisstore: refresh lock release failed; it will expire by itself",
						slog.String("key_fingerprint", fingerprint(lk)), slog.Duration("lock_ttl", s.lockTTL), slog.String("error", err.Error()))
				case n == 0:
					s.log.LogAttrs(context.Background(), slog.LevelWarn, "redisstore: refresh lock was lost before release (held past LockMaxHold, or not renewed while Redis was unreachable)",
						slog.String("key_fingerprint", fingerprint(lk)), slog.Duration("lock_ttl", s.lockTTL))
				}
			}
		})
	}
}

// renew keeps the lock keys alive every LockTTL/3 until stop closes, the
// lock is lost, LockMaxHold passes, renewals have failed for a whole
// LockTTL (the lock is gone anyway), or the Store closes.
func (s *Store) renew(lks []string, token string, stop <-chan struct{}) {
	every := max(s.lockTTL/3, time.Millisecond)
	t := time.NewTicker(every)
	defer t.Stop()
	start, lastOK := time.Now(), time.Now()
	ttl := s.lockTTL.Milliseconds()
	for {
		select {
		case <-stop:
			return
		case <-s.life.Context().Done():
			return
		case now := <-t.C:
			if now.Sub(start) >= s.maxHold {
				s.log.LogAttrs(s.life.Context(), slog.LevelWarn, "redisstore: refresh lock held past LockMaxHold; no longer renewed",
					slog.String("key_fingerprint", fingerprint(lks[0])), slog.Duration("lock_max_hold", s.maxHold))
				return
			}
			held, failed := 0, false
			for _, lk := range lks {
				n, err := call(s, s.life.Context(), min(every, s.timeout), func(ctx context.Context) (int, error) {
					return extendScript.Run(ctx, s.rdb, []string{lk}, token, ttl).Int()
				})
				if err != nil {
					failed = true
					s.failed()
				}
				held += n
			}
			switch {
			case !failed && held == 0:
				return // released, or lost
			case !failed:
				lastOK = now
			case now.Sub(lastOK) >= s.lockTTL:
				return
			}
		}
	}
}
