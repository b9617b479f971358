package redisstore

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/erpnetgo/auth"
	"github.com/erpnetgo/auth/authcode"
	"github.com/erpnetgo/auth/internal/config"
	"github.com/erpnetgo/auth/internal/keylock"
	"github.com/erpnetgo/auth/internal/lifetime"
	"github.com/erpnetgo/auth/internal/seal"
)

// Defaults applied by New to zero Config fields (documented there).
const (
	defaultPrefix      = "erpnet:authcode:"
	defaultLockTTL     = 10 * time.Second
	defaultMaxTTL      = 30 * 24 * time.Hour // a confidential client's refresh token lifetime on ERP.net
	defaultLockMaxHold = 3 * time.Minute     // a little more than the authcode Client's longest refresh
	defaultTimeout     = 2 * time.Second
)

// aadLabel starts the associated data that binds a sealed value to its key.
const aadLabel = "erpnetgo/redisstore/v1\x00"

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
	// Client or Addr. It needs no tuning: Config.Timeout bounds every call
	// whatever its own timeouts, and after a failed call a
	// *redis.ClusterClient is asked to re-read its slot map.
	Client redis.UniversalClient
	// Addr is where Redis is; the Store then makes its own client, with
	// short timeouts (dial, read and write 2s, one retry; query parameters
	// such as read_timeout=5s change them), and closes it in Close. Forms:
	//
	//   - one server: "host:port", or a URL
	//     "redis://user:password@host:port/db" ("rediss://" for TLS);
	//   - a Redis Cluster: "redis+cluster://user:password@host:port?addr=host2:port&addr=host3:port"
	//     (the URL's host and each addr are seed nodes; one suffices, the
	//     Store learns the others from it; "rediss+cluster://" for TLS);
	//   - a master watched by Sentinel:
	//     "redis+sentinel://user:password@host:port/db?master_name=mymaster&addr=host2:port"
	//     (the URL's host and each addr are Sentinels; user and password
	//     are the master's, sentinel_username= and sentinel_password= the
	//     Sentinels' own, if they have any; "rediss+sentinel://" for TLS).
	//
	// Other query parameters are go-redis' (redis.ParseURL,
	// redis.ParseClusterURL, redis.ParseFailoverURL).
	Addr string
	// Keys are AES keys of 16, 24 or 32 bytes that seal the stored values
	// (as authcode.Config.Keys seal the cookies): the first seals, all
	// open, so keys can be rotated by adding the new key at the front,
	// keeping the old one until every session sealed with it has been
	// re-saved or has expired, then dropping it. Required.
	Keys [][]byte
	// Prefix is prepended to every Redis key the Store writes; empty means
	// "erpnet:authcode:". On a Redis Cluster, a hash tag in Prefix
	// ("erpnet:{auth}:") puts every session on one master, in one slot:
	// that master then carries the whole load, and while it is down no
	// session works, but no request depends on any other master. A "{"
	// in Prefix must open such a tag.
	Prefix string
	// Timeout bounds each Redis operation of the Store, its retries
	// included: Load, Save, Add, Delete, Ping, and each attempt of
	// LockRefresh (whose waiting for another holder LockWait bounds). When
	// Redis does not answer in time (a master that hangs, a network that
	// drops packets) the operation returns an error matching
	// auth.ErrTemporary. The bound holds with any client: when
	// Config.Client does not end its reads at a context's deadline
	// (go-redis' default, ContextTimeoutEnabled false), the Store returns
	// at Timeout and leaves the call to end by the client's own
	// ReadTimeout. Zero means 2s.
	Timeout time.Duration
	// ReplicaWait, when positive, makes the writes whose loss would sign
	// a user out or let two replicas refresh at once (a saved session, a
	// deleted one, a refresh lock taken) wait until one replica of the
	// master has acknowledged them (WAIT 1), for at most ReplicaWait.
	// Redis replicates asynchronously: without it, a master that dies just
	// after acknowledging a rotated refresh token loses it, and when its
	// replica takes over the session holds a refresh token already
	// redeemed, which signs the user out. The cost: each such write takes
	// a replica's acknowledgement longer (a network round trip between
	// master and replica), and while a master has no working replica,
	// ReplicaWait longer; a write no replica acknowledged in time still
	// stands on the master (a warning is logged), since refusing it would
	// turn a replica's outage into one of the app. Zero (the default)
	// does not wait. Needs a *redis.Client (one server or Sentinel) or a
	// *redis.ClusterClient.
	ReplicaWait time.Duration
	// SlotLockOnly takes a session's refresh lock only in the session's
	// own hash slot. Without it the Store also takes the lock where
	// releases before this one took it (Prefix+"lock:"+key, in whatever
	// slot that hashes to), second, so that during a rolling deploy an
	// old replica and a new one never both redeem a refresh token. That
	// key may live on another Cluster master than the session, so while
	// that master is down the session cannot refresh. Set SlotLockOnly
	// once no replica of an older release runs, or from the start in a
	// new deployment.
	SlotLockOnly bool
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
	// releases, writes no replica acknowledged). It never receives a value,
	// a token or a session key, only a short fingerprint of the key. Nil
	// discards.
	Logger *slog.Logger
}

// Store is an authcode.Store and authcode.RefreshLocker backed by Redis. It
// is safe for concurrent use. Make one with New.
type Store struct {
	rdb          redis.UniversalClient
	owned        bool
	deadlines    bool // rdb ends its calls at the context's deadline
	sealer       *seal.Sealer
	prefix       string
	timeout      time.Duration
	replicaWait  time.Duration
	slotLockOnly bool
	lockTTL      time.Duration
	lockWait     time.Duration
	maxHold      time.Duration // 0: no renewal
	maxTTL       time.Duration
	log          *slog.Logger
	gates        keylock.Map // this process's waiters per lock, see LockRefresh

	// life holds the lock renewals and the calls left behind at Timeout
	// (see call): Close ends the renewals and waits for both, and nothing
	// starts after it.
	life *lifetime.Group
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
	if err := checkPrefixTag(cfg.Prefix); err != nil {
		return nil, err
	}
	s := &Store{
		life:         lifetime.New(),
		sealer:       sealer,
		prefix:       cfg.Prefix,
		timeout:      cfg.Timeout,
		replicaWait:  cfg.ReplicaWait,
		slotLockOnly: cfg.SlotLockOnly,
		lockTTL:      cfg.LockTTL,
		lockWait:     cfg.LockWait,
		maxHold:      cfg.LockMaxHold,
		maxTTL:       cfg.MaxTTL,
		log:          cfg.Logger,
	}
	if s.prefix == "" {
		s.prefix = defaultPrefix
	}
	if s.timeout, err = duration("Timeout", s.timeout, defaultTimeout); err != nil {
		return nil, err
	}
	switch {
	case s.replicaWait < 0:
		return nil, cfgErr("ReplicaWait", "must not be negative")
	case s.replicaWait > 0 && s.replicaWait < time.Millisecond:
		return nil, cfgErr("ReplicaWait", "must be at least 1ms (WAIT counts milliseconds)")
	}
	if s.lockTTL, err = duration("LockTTL", s.lockTTL, defaultLockTTL); err != nil {
		return nil, err
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
	if s.maxTTL, err = duration("MaxTTL", s.maxTTL, defaultMaxTTL); err != nil {
		return nil, err
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if cfg.Client != nil {
		s.rdb = cfg.Client
	} else {
		if s.rdb, err = newClient(cfg.Addr); err != nil {
			return nil, err
		}
		s.owned = true
	}
	if s.replicaWait > 0 && !waitable(s.rdb) {
		if s.owned {
			_ = s.rdb.Close()
		}
		return nil, cfgErr("ReplicaWait", fmt.Sprintf("needs a *redis.Client (one server or Sentinel) or a *redis.ClusterClient, not a %T", s.rdb))
	}
	s.deadlines = honoursDeadlines(s.rdb)
	return s, nil
}

// duration checks a Config duration that must be positive: zero means def,
// a negative value or one under a millisecond is refused.
func duration(field string, v, def time.Duration) (time.Duration, error) {
	switch {
	case v < 0:
		return 0, cfgErr(field, "must not be negative")
	case v == 0:
		return def, nil
	case v < time.Millisecond:
		return 0, cfgErr(field, "must be at least 1ms")
	}
	return v, nil
}

// cfgErr reports an invalid Config field; it matches the SDK's
// ErrMisconfigured and never contains the field's value.
func cfgErr(field, reason string) error { return config.Err(field, reason) }

// Close stops renewing the refresh locks still held (they then expire
// within LockTTL), waits for calls left behind at Config.Timeout to end,
// and closes the Redis client if the Store made it (Config.Addr); a
// Config.Client is left to its owner. Close on a nil *Store does nothing.
func (s *Store) Close() error {
	if s == nil {
		return nil
	}
	s.life.Close()
	if !s.owned {
		return nil
	}
	return s.rdb.Close()
}

// Ping checks that Redis answers, for readiness probes.
func (s *Store) Ping(ctx context.Context) error {
	_, err := call(s, ctx, s.timeout, func(ctx context.Context) (string, error) {
		return s.rdb.Ping(ctx).Result()
	})
	if err != nil {
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
	b, err := call(s, ctx, s.timeout, func(ctx context.Context) ([]byte, error) {
		return s.rdb.Get(ctx, rk).Bytes()
	})
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
// With Config.ReplicaWait it then waits for a replica.
func (s *Store) Save(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	rk, sealed, ttl, err := s.prepare(key, value, ttl)
	if err != nil {
		return err
	}
	return s.write(ctx, "save session", rk, func(ctx context.Context, c redis.Cmdable) error {
		return c.Set(ctx, rk, sealed, ttl).Err()
	})
}

// Add implements authcode.Store with one SET NX PX: of several replicas
// adding the same key at once, exactly one succeeds.
func (s *Store) Add(ctx context.Context, key string, value []byte, ttl time.Duration) (bool, error) {
	rk, sealed, ttl, err := s.prepare(key, value, ttl)
	if err != nil {
		return false, err
	}
	ok, err := call(s, ctx, s.timeout, func(ctx context.Context) (bool, error) {
		return s.rdb.SetNX(ctx, rk, sealed, ttl).Result()
	})
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

// Delete implements authcode.Store. With Config.ReplicaWait it then waits
// for a replica (a sign-out lost in a failover would bring the session
// back).
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := checkKey(key); err != nil {
		return err
	}
	rk := s.prefix + key
	return s.write(ctx, "delete session", rk, func(ctx context.Context, c redis.Cmdable) error {
		return c.Del(ctx, rk).Err()
	})
}

// write runs f, a write of the Redis key rk, through the client, or with
// Config.ReplicaWait on a connection to rk's master followed by a wait
// for a replica (see pinned).
func (s *Store) write(ctx context.Context, op, rk string, f func(context.Context, redis.Cmdable) error) error {
	_, err := call(s, ctx, s.timeout+s.replicaWait, func(ctx context.Context) (bool, error) {
		if s.replicaWait == 0 {
			return true, f(ctx, s.rdb)
		}
		return s.pinned(ctx, rk, func(ctx context.Context, c redis.Cmdable) (bool, error) {
			return true, f(ctx, c)
		})
	})
	if err != nil {
		return s.fail(ctx, op, err)
	}
	return nil
}

// fail wraps a Redis error for op. When the caller's context has ended, its
// error is returned (wrapped); anything else is an *auth.Error of Kind
// auth.ErrTemporary. A Cluster client is asked to re-read its slot map
// (see failed).
func (s *Store) fail(ctx context.Context, op string, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		// The caller's context ended: that is the cause, not an outage.
		if errors.Is(err, cerr) {
			return fmt.Errorf("redisstore: %s: %w", op, cerr)
		}
		return fmt.Errorf("redisstore: %s: %w (%v)", op, cerr, err)
	}
	s.failed()
	return &auth.Error{Op: "redis " + op, Kind: auth.ErrTemporary, Err: err}
}

// checkKey refuses keys that could collide with lock keys (see lockKeys).
func checkKey(key string) error {
	if key == "" {
		return errors.New("redisstore: empty session key")
	}
	if strings.HasPrefix(key, lockInfix) || strings.HasPrefix(key, "{") {
		return errors.New(`redisstore: session keys must not begin with "lock:" or "{"`)
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
