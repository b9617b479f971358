// Package redisstore keeps authcode sessions in Redis, so that several
// replicas of a web backend share their users' sign-ins, and serialises
// refresh-token redemption between those replicas.
//
// ERP.net's identity server issues one-time refresh tokens: redeeming one
// revokes it, and replaying a rotated one ends the whole sign-in. When two
// replicas behind a load balancer refresh the same user's session at the
// same moment, one of them would redeem a dead token and throw the user out.
// Store implements authcode.RefreshLocker: before redeeming, the authcode
// Client takes a per-session lock in Redis (SET NX PX with a random owner
// token, renewed while its holder lives, released by a compare-and-delete
// script), reloads the session and redeems only if no other replica already
// did.
//
// Values are sealed with AES-GCM under a ring of keys: the
// first key seals, every key opens, so keys can be rotated. The associated
// data binds each value to its Redis key, so a value copied under another
// key does not open. Redis never holds a token in clear.
//
// # Choices
//
//   - TTL: every Save sets an expiry in the same SET command (SET ... PX), so
//     a session is never half written and never outlives its refresh token.
//     A ttl of zero or less (no expiry requested) and a ttl above
//     Config.MaxTTL are clamped to MaxTTL (default 30 days, the longest
//     refresh-token lifetime ERP.net issues); Redis never keeps a session
//     forever.
//   - A stored value that cannot be opened (tampered with, or sealed under a
//     key that was removed from Config.Keys) reads as "signed out": Load
//     returns an error matching authcode.ErrSessionNotFound, and logs a
//     warning with a fingerprint of the key (never the key or the value).
//     The user signs in again; the value is left in place (a replica with
//     the right key ring can still read it) and expires with its TTL.
//   - Redis failures, and a refresh lock not taken within Config.LockWait,
//     return *auth.Error values matching auth.ErrTemporary, naming the
//     operation, never the value or the session key.
//     authcode.ErrSessionNotFound is returned only when Redis answers that
//     the key does not exist (or holds a value that does not open). Invalid
//     configuration gives *auth.ConfigError values, matching
//     auth.ErrMisconfigured.
//   - Session durability across a Redis restart needs Redis persistence
//     (appendonly yes). Without it a restarted Redis has forgotten every
//     session and all users must sign in again.
//   - Within one process, waiters for the same session's lock queue on an
//     in-process gate first, so only one goroutine per process polls Redis.
//
// # Operating it
//
// A session lives at Prefix+key (key as the authcode Client gives it), its
// refresh lock at Prefix+"lock:"+key. Every operation (the Lua scripts
// included) touches one key, so any redis.UniversalClient works: a
// *redis.Client, a Redis Cluster (*redis.ClusterClient) or Sentinel
// (redis.NewFailoverClient, or *redis.Ring).
//
// Give every replica the same Keys, Prefix and Redis. A refresh lock is
// renewed while its holder lives (up to LockMaxHold, which must exceed the
// longest refresh: token request with retries, plus the Save; a holder
// slower than that loses the lock and a second replica may redeem the same
// refresh token). If a holder dies, its session waits at most LockTTL.
//
// Run Redis with persistence (appendonly yes; appendfsync always, or
// everysec if losing the last second of refreshes on a crash is
// acceptable: a rotated refresh token that was not persisted signs that
// user out). Without persistence a Redis restart signs everyone out.
//
// go-redis writes its own diagnostics (such as failed dials while Redis is
// down) through redis.SetLogger; this package does not change that global.
package redisstore

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/erpnetgo/auth"
	"github.com/erpnetgo/auth/authcode"
	"github.com/erpnetgo/auth/internal/config"
	"github.com/erpnetgo/auth/internal/seal"
)

// Defaults applied by New to zero Config fields (documented there).
const (
	defaultPrefix      = "erpnet:authcode:"
	defaultLockTTL     = 10 * time.Second
	defaultMaxTTL      = 30 * 24 * time.Hour // a confidential client's refresh token lifetime on ERP.net
	defaultLockMaxHold = 3 * time.Minute     // a little more than the authcode Client's longest refresh
)

// lockInfix separates lock keys from session keys: a session is stored at
// Prefix+key, its refresh lock at Prefix+"lock:"+key. Session keys that
// begin with "lock:" are refused so the two can never collide.
const lockInfix = "lock:"

// aadLabel starts the associated data that binds a sealed value to its key.
const aadLabel = "erpnetgo/redisstore/v1\x00"

// releaseTimeout bounds the unlock script when the caller's context is gone.
const releaseTimeout = 2 * time.Second

// Lock polling: a waiter sleeps a random time in [0, backoff) between
// attempts, the backoff growing from pollMin to pollMax.
const (
	pollMin = 4 * time.Millisecond
	pollMax = 64 * time.Millisecond
)

// errLockTimeout is the cause of a LockRefresh that waited Config.LockWait
// in vain (another replica held the lock for too long).
var errLockTimeout = errors.New("timed out waiting for the session's refresh lock")

// errUndecryptable is, with authcode.ErrSessionNotFound, in Load's error
// for a value that cannot be opened with any configured key (tampered,
// truncated, copied from another key, or sealed with a key no longer in
// Config.Keys).
var errUndecryptable = errors.New("stored session cannot be decrypted (tampered, or sealed with a key no longer configured)")

// Config configures a Store. Client or Addr is required, and Keys.
type Config struct {
	// Client is the Redis client to use: anything implementing
	// redis.UniversalClient, e.g. a *redis.Client, a *redis.ClusterClient,
	// or a Sentinel client from redis.NewFailoverClient or
	// redis.NewUniversalClient. The Store does not close it. Set either
	// Client or Addr.
	Client redis.UniversalClient
	// Addr is a Redis address, "host:port" or a "redis://" / "rediss://"
	// URL (with user, password and database). The Store makes its own client
	// with short timeouts (dial 2s, read/write 2s, one retry) and closes it
	// in Close.
	Addr string
	// Keys are AES keys of 16, 24 or 32 bytes that seal the stored values
	// (as authcode.Config.Keys seal the cookies): the first seals, all
	// open, so keys can be rotated by adding the new key at the front,
	// keeping the old one until every session sealed with it has been
	// re-saved or has expired, then dropping it. Required.
	Keys [][]byte
	// Prefix is prepended to every Redis key the Store writes; empty means
	// "erpnet:authcode:".
	Prefix string
	// LockTTL is how long a refresh lock outlives its holder's last sign of
	// life; zero means 10 s. A live holder renews it (see LockMaxHold); a
	// holder that dies leaves it to expire within LockTTL, and the next
	// replica carries on.
	LockTTL time.Duration
	// LockWait is how long LockRefresh waits for a lock held by someone
	// else; default LockTTL + 2s, so a lock left by a dead holder expires
	// and is taken before the waiter gives up.
	LockWait time.Duration
	// LockMaxHold is how long a holder that is alive but has not yet
	// unlocked keeps its lock: while held, the lock is renewed every
	// LockTTL/3 (compare-and-PEXPIRE), so a slow refresh (a token endpoint
	// answering 503 with Retry-After, say) never loses its lock to another
	// replica, while a holder that dies stops renewing and its lock expires
	// within LockTTL. Zero means 3 minutes (a little more than the authcode
	// Client's longest refresh, retries included); negative disables
	// renewal (the lock then lives exactly LockTTL).
	LockMaxHold time.Duration
	// MaxTTL caps the expiry of a saved session and replaces a ttl of zero
	// or less; zero means 30 days (the lifetime of a confidential client's
	// refresh token on ERP.net).
	MaxTTL time.Duration
	// Logger receives warnings (undecryptable values, failed or late lock
	// releases). It never receives a value, a token or a session key, only
	// a short fingerprint of the key. Nil discards.
	Logger *slog.Logger
}

// Store is an authcode.Store and authcode.RefreshLocker backed by Redis. It
// is safe for concurrent use. Make one with New.
type Store struct {
	rdb      redis.UniversalClient
	owned    bool
	sealer   *seal.Sealer
	prefix   string
	lockTTL  time.Duration
	lockWait time.Duration
	maxHold  time.Duration // 0: no renewal
	maxTTL   time.Duration
	log      *slog.Logger
	gates    gates

	// Lock renewals in flight; Close stops and waits for them.
	renewCtx    context.Context
	renewCancel context.CancelFunc
	renewers    sync.WaitGroup
}

var (
	_ authcode.Store         = (*Store)(nil)
	_ authcode.RefreshLocker = (*Store)(nil)
)

// New checks cfg and returns a Store. It does no network I/O: an unreachable
// Redis shows up on first use (or call Ping). Configuration errors are
// *auth.ConfigError values (matching auth.ErrMisconfigured) that name the
// Config field at fault and never contain key bytes or passwords.
func New(cfg Config) (*Store, error) {
	if cfg.Client != nil && cfg.Addr != "" {
		return nil, cfgErr("Addr", "must be empty when Client is set (set only one)")
	}
	if cfg.Client == nil && cfg.Addr == "" {
		return nil, cfgErr("Client", "or Addr is required")
	}
	if err := config.Keys("Keys", cfg.Keys, true); err != nil {
		return nil, err
	}
	sealer, err := seal.New(cfg.Keys...)
	if err != nil { // unreachable after the checks above; seal's errors hold no key bytes
		return nil, cfgErr("Keys", "cannot be used: "+err.Error())
	}
	s := &Store{
		sealer:   sealer,
		prefix:   cfg.Prefix,
		lockTTL:  cfg.LockTTL,
		lockWait: cfg.LockWait,
		maxHold:  cfg.LockMaxHold,
		maxTTL:   cfg.MaxTTL,
		log:      cfg.Logger,
	}
	if s.prefix == "" {
		s.prefix = defaultPrefix
	}
	switch {
	case s.lockTTL < 0:
		return nil, cfgErr("LockTTL", "must not be negative")
	case s.lockTTL == 0:
		s.lockTTL = defaultLockTTL
	case s.lockTTL < time.Millisecond:
		return nil, cfgErr("LockTTL", "must be at least 1ms")
	}
	switch {
	case s.lockWait < 0:
		return nil, cfgErr("LockWait", "must not be negative")
	case s.lockWait == 0:
		s.lockWait = s.lockTTL + 2*time.Second
	}
	switch {
	case s.maxHold < 0:
		s.maxHold = 0
	case s.maxHold == 0:
		s.maxHold = defaultLockMaxHold
	}
	switch {
	case s.maxTTL < 0:
		return nil, cfgErr("MaxTTL", "must not be negative")
	case s.maxTTL == 0:
		s.maxTTL = defaultMaxTTL
	case s.maxTTL < time.Millisecond:
		return nil, cfgErr("MaxTTL", "must be at least 1ms")
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.renewCtx, s.renewCancel = context.WithCancel(context.Background())
	if cfg.Client != nil {
		s.rdb = cfg.Client
		return s, nil
	}
	opt, err := clientOptions(cfg.Addr)
	if err != nil {
		return nil, err
	}
	s.rdb = redis.NewClient(opt)
	s.owned = true
	return s, nil
}

// cfgErr reports an invalid Config field; it matches the SDK's
// ErrMisconfigured and never contains the field's value.
func cfgErr(field, reason string) error { return config.Err(field, reason) }

// clientOptions builds the options of the Store's own client for Addr.
func clientOptions(addr string) (*redis.Options, error) {
	opt := &redis.Options{Addr: addr}
	if strings.Contains(addr, "://") {
		var err error
		opt, err = redis.ParseURL(addr)
		if err != nil {
			// The URL may carry a password: never echo it.
			msg := strings.ReplaceAll(err.Error(), addr, "<Config.Addr>")
			return nil, cfgErr("Addr", "is not a valid Redis URL: "+msg)
		}
	}
	if opt.DialTimeout == 0 {
		opt.DialTimeout = 2 * time.Second
	}
	if opt.ReadTimeout == 0 {
		opt.ReadTimeout = 2 * time.Second
	}
	if opt.WriteTimeout == 0 {
		opt.WriteTimeout = 2 * time.Second
	}
	if opt.PoolTimeout == 0 {
		opt.PoolTimeout = 3 * time.Second
	}
	if opt.MaxRetries == 0 {
		opt.MaxRetries = 1
	}
	opt.DialerRetries = 1
	opt.ContextTimeoutEnabled = true
	opt.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	return opt, nil
}

// Close stops renewing the refresh locks still held (they then expire
// within LockTTL) and closes the Redis client if the Store made it
// (Config.Addr); a Config.Client is left to its owner. Close on a nil
// *Store does nothing.
func (s *Store) Close() error {
	if s == nil {
		return nil
	}
	s.renewCancel()
	s.renewers.Wait()
	if !s.owned {
		return nil
	}
	return s.rdb.Close()
}

// Ping checks that Redis answers, for readiness probes.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.rdb.Ping(ctx).Err(); err != nil {
		return s.fail(ctx, "ping", err)
	}
	return nil
}

// Load implements authcode.Store. It makes one Redis round trip (GET).
func (s *Store) Load(ctx context.Context, key string) ([]byte, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	rk := s.prefix + key
	b, err := s.rdb.Get(ctx, rk).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, authcode.ErrSessionNotFound
	}
	if err != nil {
		return nil, s.fail(ctx, "load session", err)
	}
	pt, err := s.sealer.Open(b, aad(rk))
	if err != nil {
		s.log.LogAttrs(ctx, slog.LevelWarn, "redisstore: stored session cannot be decrypted; treating it as signed out",
			slog.String("key_fingerprint", fingerprint(rk)))
		return nil, fmt.Errorf("redisstore: load session: %w: %w", authcode.ErrSessionNotFound, errUndecryptable)
	}
	return pt, nil
}

// Save implements authcode.Store: one SET with PX, so the value and its
// expiry are written together or not at all. A ttl of zero or less, or above
// Config.MaxTTL, becomes MaxTTL; a ttl under a millisecond becomes one.
func (s *Store) Save(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	rk, sealed, ttl, err := s.prepare(key, value, ttl)
	if err != nil {
		return err
	}
	if err := s.rdb.Set(ctx, rk, sealed, ttl).Err(); err != nil {
		return s.fail(ctx, "save session", err)
	}
	return nil
}

// Add implements authcode.Store with one SET NX PX: of several replicas
// adding the same key at once, exactly one succeeds.
func (s *Store) Add(ctx context.Context, key string, value []byte, ttl time.Duration) (bool, error) {
	rk, sealed, ttl, err := s.prepare(key, value, ttl)
	if err != nil {
		return false, err
	}
	ok, err := s.rdb.SetNX(ctx, rk, sealed, ttl).Result()
	if err != nil {
		return false, s.fail(ctx, "add key", err)
	}
	return ok, nil
}

// prepare checks key, clamps ttl and seals value bound to its Redis key.
func (s *Store) prepare(key string, value []byte, ttl time.Duration) (string, []byte, time.Duration, error) {
	if err := checkKey(key); err != nil {
		return "", nil, 0, err
	}
	if ttl <= 0 || ttl > s.maxTTL {
		ttl = s.maxTTL
	}
	ttl = max(ttl.Round(time.Millisecond), time.Millisecond)
	rk := s.prefix + key
	return rk, s.sealer.Seal(value, aad(rk)), ttl, nil
}

// Delete implements authcode.Store.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := checkKey(key); err != nil {
		return err
	}
	if err := s.rdb.Del(ctx, s.prefix+key).Err(); err != nil {
		return s.fail(ctx, "delete session", err)
	}
	return nil
}

// releaseScript deletes the lock only if it still holds the caller's owner
// token, so a holder whose lock expired never releases its successor's.
var releaseScript = redis.NewScript(`if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) end return 0`)

// LockRefresh implements authcode.RefreshLocker. It takes key's refresh lock
// with SET NX PX (Config.LockTTL) and a random owner token, polling with
// short jittered sleeps while someone else holds it, until it succeeds, ctx
// ends (ctx's error is returned) or Config.LockWait passes (an error
// matching auth.ErrTemporary). A Redis failure returns an error matching
// auth.ErrTemporary at once.
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
	lk := s.prefix + lockInfix + key
	wctx, cancel := context.WithTimeoutCause(ctx, s.lockWait, errLockTimeout)
	defer cancel()

	// Queue behind this process's other waiters for the key, so that only
	// one goroutine per process polls Redis. The gate only spares Redis:
	// Redis alone decides who holds the lock, and a gate held for longer
	// than LockMaxHold+LockTTL (an unlock func that was dropped) is retired,
	// just as its Redis lock expires.
	leave, err := s.gates.enter(wctx, lk, s.maxHold+s.lockTTL, func() {
		s.log.LogAttrs(ctx, slog.LevelWarn, "redisstore: a refresh lock of this process was not released within LockMaxHold+LockTTL; was an unlock func dropped?",
			slog.String("key_fingerprint", fingerprint(lk)))
	})
	if err != nil {
		return nil, s.lockWaitErr(ctx, wctx)
	}
	token := ownerToken()
	backoff := pollMin
	var timer *time.Timer
	for {
		ok, err := s.rdb.SetNX(wctx, lk, token, s.lockTTL).Result()
		if err == nil && ok {
			return s.unlocker(lk, token, leave), nil
		}
		if err != nil {
			leave()
			s.abandon(lk, token)
			if wctx.Err() != nil {
				return nil, s.lockWaitErr(ctx, wctx)
			}
			return nil, s.fail(ctx, "take refresh lock", err)
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
			leave()
			return nil, s.lockWaitErr(ctx, wctx)
		}
	}
}

// lockWaitErr explains why waiting for a lock ended: the caller's context,
// or LockWait.
func (s *Store) lockWaitErr(ctx, wctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("redisstore: take refresh lock: %w", err)
	}
	return &auth.Error{Op: "redis take refresh lock", Kind: auth.ErrTemporary,
		Err: fmt.Errorf("%w (after %v)", errLockTimeout, s.lockWait)}
}

// abandon removes the lock if a SET whose reply was lost did take it for
// token, so that others need not wait for it to expire. Best effort, with a
// short deadline of its own.
func (s *Store) abandon(lk, token string) {
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	_ = releaseScript.Run(ctx, s.rdb, []string{lk}, token).Err()
}

// extendScript renews the lock only if it still holds the caller's token.
var extendScript = redis.NewScript(`if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("PEXPIRE", KEYS[1], ARGV[2]) end return 0`)

// unlocker starts renewing a held lock and returns its idempotent release
// function.
func (s *Store) unlocker(lk, token string, leave func()) func() {
	stop := make(chan struct{})
	if s.maxHold > 0 {
		s.renewers.Add(1)
		go s.renew(lk, token, stop)
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			close(stop)
			defer leave()
			ctx, cancel := context.WithTimeout(context.Background(), releaseTimeout)
			defer cancel()
			n, err := releaseScript.Run(ctx, s.rdb, []string{lk}, token).Int()
			switch {
			case err != nil:
				s.log.LogAttrs(ctx, slog.LevelWarn, "redisstore: refresh lock release failed; it will expire by itself",
					slog.String("key_fingerprint", fingerprint(lk)), slog.Duration("lock_ttl", s.lockTTL), slog.String("error", err.Error()))
			case n == 0:
				s.log.LogAttrs(ctx, slog.LevelWarn, "redisstore: refresh lock was lost before release (held past LockMaxHold, or not renewed while Redis was unreachable)",
					slog.String("key_fingerprint", fingerprint(lk)), slog.Duration("lock_ttl", s.lockTTL))
			}
		})
	}
}

// renew keeps the lock alive every LockTTL/3 until stop closes, the lock is
// lost, LockMaxHold passes, renewals have failed for a whole LockTTL (the
// lock is gone anyway), or the Store closes.
func (s *Store) renew(lk, token string, stop <-chan struct{}) {
	defer s.renewers.Done()
	every := max(s.lockTTL/3, time.Millisecond)
	t := time.NewTicker(every)
	defer t.Stop()
	start, lastOK := time.Now(), time.Now()
	ttl := s.lockTTL.Milliseconds()
	for {
		select {
		case <-stop:
			return
		case <-s.renewCtx.Done():
			return
		case now := <-t.C:
			if now.Sub(start) >= s.maxHold {
				s.log.LogAttrs(s.renewCtx, slog.LevelWarn, "redisstore: refresh lock held past LockMaxHold; no longer renewed",
					slog.String("key_fingerprint", fingerprint(lk)), slog.Duration("lock_max_hold", s.maxHold))
				return
			}
			ctx, cancel := context.WithTimeout(s.renewCtx, every)
			n, err := extendScript.Run(ctx, s.rdb, []string{lk}, token, ttl).Int()
			cancel()
			switch {
			case err == nil && n == 0:
				return // released, or lost
			case err == nil:
				lastOK = now
			case now.Sub(lastOK) >= s.lockTTL:
				return
			}
		}
	}
}

// fail wraps a Redis error for op. When the caller's context has ended, its
// error is returned (wrapped); anything else is an *auth.Error of Kind
// auth.ErrTemporary.
func (s *Store) fail(ctx context.Context, op string, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		// The caller's context ended: that is the cause, not an outage.
		if errors.Is(err, cerr) {
			return fmt.Errorf("redisstore: %s: %w", op, cerr)
		}
		return fmt.Errorf("redisstore: %s: %w (%v)", op, cerr, err)
	}
	return &auth.Error{Op: "redis " + op, Kind: auth.ErrTemporary, Err: err}
}

// checkKey refuses keys that could collide with lock keys.
func checkKey(key string) error {
	if key == "" {
		return errors.New("redisstore: empty session key")
	}
	if strings.HasPrefix(key, lockInfix) {
		return errors.New(`redisstore: session keys must not begin with "lock:"`)
	}
	return nil
}

// aad is the associated data binding a sealed value to its Redis key.
func aad(redisKey string) []byte {
	b := make([]byte, 0, len(aadLabel)+len(redisKey))
	return append(append(b, aadLabel...), redisKey...)
}

// fingerprint identifies a key in logs without revealing it (session keys
// may contain session ids).
func fingerprint(k string) string {
	sum := sha256.Sum256([]byte(k))
	return hex.EncodeToString(sum[:6])
}

// ownerToken returns a random lock owner token.
func ownerToken() string {
	return rand.Text()
}

// gates is an in-process lock per Redis lock key, so that goroutines of one
// process wait in memory and only one of them polls Redis.
type gates struct {
	mu sync.Mutex
	m  map[string]*gate
}

type gate struct {
	ch   chan struct{}
	refs int
}

// enter waits for key's gate; leave must be called exactly once after. A
// gate this caller has waited stale for is retired (onStale is called) and
// the caller moves on to a fresh one.
func (g *gates) enter(ctx context.Context, key string, stale time.Duration, onStale func()) (leave func(), err error) {
	for {
		gt := g.get(key)
		t := time.NewTimer(stale)
		select {
		case gt.ch <- struct{}{}:
			t.Stop()
			return func() { <-gt.ch; g.put(key, gt) }, nil
		case <-ctx.Done():
			t.Stop()
			g.put(key, gt)
			return nil, ctx.Err()
		case <-t.C:
			g.mu.Lock()
			if g.m[key] == gt {
				delete(g.m, key)
			}
			g.mu.Unlock()
			g.put(key, gt)
			onStale()
		}
	}
}

// get returns key's current gate, counting the caller in.
func (g *gates) get(key string) *gate {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.m == nil {
		g.m = map[string]*gate{}
	}
	gt := g.m[key]
	if gt == nil {
		gt = &gate{ch: make(chan struct{}, 1)}
		g.m[key] = gt
	}
	gt.refs++
	return gt
}

// put counts a caller out of gt, dropping it from the map when unused.
func (g *gates) put(key string, gt *gate) {
	g.mu.Lock()
	if gt.refs--; gt.refs == 0 && g.m[key] == gt {
		delete(g.m, key)
	}
	g.mu.Unlock()
}
