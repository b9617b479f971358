package redisstore

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/erpnetgo/auth"
)

// The Store's own client (Config.Addr): short timeouts, one retry.
const (
	ownDialTimeout  = 2 * time.Second
	ownReadTimeout  = 2 * time.Second
	ownWriteTimeout = 2 * time.Second
	ownPoolTimeout  = 3 * time.Second
)

// newClient makes the Store's own client for Config.Addr: one server, a
// Redis Cluster ("redis+cluster://") or a Sentinel-managed master
// ("redis+sentinel://"), each with the SDK's timeouts and retries.
func newClient(addr string) (redis.UniversalClient, error) {
	if !strings.Contains(addr, "://") {
		return redis.NewClient(tune(&redis.Options{Addr: addr})), nil
	}
	u, err := url.Parse(addr)
	if err != nil {
		// url's error quotes the URL, password included: never echo it.
		return nil, cfgErr("Addr", "is not a valid URL")
	}
	given := u.Scheme
	scheme, kind, _ := strings.Cut(given, "+")
	if scheme != "redis" && scheme != "rediss" || kind != "" && kind != "cluster" && kind != "sentinel" {
		return nil, cfgErr("Addr", fmt.Sprintf("has scheme %q; use redis://, rediss://, redis+cluster:// or redis+sentinel:// (rediss+... for TLS)", given))
	}
	u.Scheme = scheme
	switch kind {
	case "":
		opt, err := redis.ParseURL(u.String())
		if err != nil {
			return nil, urlErr(err, addr, u)
		}
		return redis.NewClient(tune(opt)), nil
	case "cluster":
		opt, err := redis.ParseClusterURL(u.String())
		if err != nil {
			return nil, urlErr(err, addr, u)
		}
		return redis.NewClusterClient(tuneCluster(opt)), nil
	default: // "sentinel"
		opt, err := failoverOptions(addr, u)
		if err != nil {
			return nil, err
		}
		return redis.NewFailoverClient(tuneFailover(opt)), nil
	}
}

// failoverOptions reads a "redis+sentinel://" URL: the URL's user and
// password are the master's (as in every other form), the Sentinels'
// own credentials, if any, are the sentinel_username and
// sentinel_password parameters.
func failoverOptions(addr string, u *url.URL) (*redis.FailoverOptions, error) {
	q := u.Query()
	if q.Has("username") || q.Has("password") {
		return nil, cfgErr("Addr", "sets username= or password=: give the master's as the URL's user:password@, the Sentinels' as sentinel_username= and sentinel_password=")
	}
	if q.Get("master_name") == "" {
		return nil, cfgErr("Addr", "is a redis+sentinel:// URL without master_name=: name the master the Sentinels watch")
	}
	sentUser, sentPass := q.Get("sentinel_username"), q.Get("sentinel_password")
	q.Del("sentinel_username")
	q.Del("sentinel_password")
	user := u.User
	v := *u
	v.User, v.RawQuery = nil, q.Encode()
	opt, err := redis.ParseFailoverURL(v.String())
	if err != nil {
		return nil, urlErr(err, addr, &v)
	}
	opt.SentinelUsername, opt.SentinelPassword = sentUser, sentPass
	if user != nil {
		opt.Username = user.Username()
		opt.Password, _ = user.Password()
	}
	return opt, nil
}

// urlErr reports a URL go-redis refused, without the URL (it may hold a
// password).
func urlErr(err error, addr string, u *url.URL) error {
	msg := strings.ReplaceAll(err.Error(), addr, "<Config.Addr>")
	msg = strings.ReplaceAll(msg, u.String(), "<Config.Addr>")
	if p, ok := u.User.Password(); ok && len(p) >= 4 {
		msg = strings.ReplaceAll(msg, p, "<password>")
	}
	return cfgErr("Addr", "is not a valid Redis URL: "+msg)
}

func tune(opt *redis.Options) *redis.Options {
	tuneCommon(&opt.DialTimeout, &opt.ReadTimeout, &opt.WriteTimeout, &opt.PoolTimeout, &opt.MaxRetries, &opt.DialerRetries, &opt.ContextTimeoutEnabled)
	opt.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	return opt
}

func tuneCluster(opt *redis.ClusterOptions) *redis.ClusterOptions {
	tuneCommon(&opt.DialTimeout, &opt.ReadTimeout, &opt.WriteTimeout, &opt.PoolTimeout, &opt.MaxRetries, &opt.DialerRetries, &opt.ContextTimeoutEnabled)
	// Every command of the Store names its key: routing policies would
	// only add a COMMAND round trip (with a deadline of its own) on first
	// use.
	opt.DisableRoutingPolicies = true
	opt.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	return opt
}

func tuneFailover(opt *redis.FailoverOptions) *redis.FailoverOptions {
	tuneCommon(&opt.DialTimeout, &opt.ReadTimeout, &opt.WriteTimeout, &opt.PoolTimeout, &opt.MaxRetries, &opt.DialerRetries, &opt.ContextTimeoutEnabled)
	return opt
}

// tuneCommon gives the options every go-redis client type has the
// Store's values where the URL left them unset, and makes the client end
// its calls at the context's deadline.
func tuneCommon(dial, read, write, pool *time.Duration, retries, dialRetries *int, deadlines *bool) {
	*dial = orDefault(*dial, ownDialTimeout)
	*read = orDefault(*read, ownReadTimeout)
	*write = orDefault(*write, ownWriteTimeout)
	*pool = orDefault(*pool, ownPoolTimeout)
	*retries = orDefault(*retries, 1)
	*dialRetries = orDefault(*dialRetries, 1)
	*deadlines = true
}

func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// honoursDeadlines reports whether every blocking step of c ends with the
// context's deadline, so that the Store can bound an operation by its
// context alone. Otherwise (go-redis' default, ContextTimeoutEnabled
// false: a read waits for ReadTimeout whatever the context says) the
// Store leaves an operation that outlives Config.Timeout running behind
// it (see call).
func honoursDeadlines(c redis.UniversalClient) bool {
	switch c := c.(type) {
	case *redis.Client:
		return c.Options().ContextTimeoutEnabled
	case *redis.ClusterClient:
		// With routing policies the first use of a command fetches
		// COMMAND information under a deadline of its own.
		o := c.Options()
		return o.ContextTimeoutEnabled && o.DisableRoutingPolicies
	}
	return false
}

// errNoAnswer is the cause of an operation that outlived Config.Timeout.
type errNoAnswer time.Duration

func (e errNoAnswer) Error() string {
	return fmt.Sprintf("Redis did not answer within %v (Config.Timeout)", time.Duration(e))
}

// call runs f with a context that ends after timeout, and returns by then
// whatever the client does: if the client does not honour deadlines, f
// runs on a goroutine of its own, which the Store leaves behind when
// timeout passes (it ends by the client's own ReadTimeout; Close waits for
// it). A timeout gives an errNoAnswer error; otherwise f's error is
// returned as is.
func call[T any](s *Store, ctx context.Context, timeout time.Duration, f func(context.Context) (T, error)) (T, error) {
	octx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var v T
	var err error
	if s.deadlines {
		v, err = f(octx)
	} else {
		type result struct {
			v   T
			err error
		}
		done := make(chan result, 1)
		if !s.life.Go(func() {
			v, err := f(octx)
			done <- result{v, err}
		}) {
			var zero T
			return zero, auth.ErrClosed
		}
		select {
		case r := <-done:
			v, err = r.v, r.err
		case <-octx.Done():
			err = octx.Err()
		}
	}
	if err != nil && !errors.Is(err, redis.Nil) && octx.Err() != nil && ctx.Err() == nil {
		var zero T
		return zero, errNoAnswer(timeout)
	}
	return v, err
}

// reloader is what a Redis Cluster client can do to re-read the slot map:
// *redis.ClusterClient's ReloadState (asynchronous, coalesced).
type reloader interface {
	ReloadState(ctx context.Context)
}

// failed tells the client a Redis operation failed. A Cluster client
// re-reads its slot map, because go-redis does so only on MOVED, ASK and
// READONLY replies and once a minute, and a master that died or hangs
// sends none of them: without this, requests would keep going to a dead
// master for up to a minute after its replica took over.
func (s *Store) failed() {
	if r, ok := s.rdb.(reloader); ok {
		r.ReloadState(context.Background())
	}
}

// Writes that wait for a replica (Config.ReplicaWait). WAIT must run on the
// connection that wrote, to the master that holds the key.

// waiting reports whether writes wait for a replica, and checks that the
// client lets the Store pin a connection to a key's master.
func waitable(c redis.UniversalClient) bool {
	switch c.(type) {
	case *redis.Client, *redis.ClusterClient:
		return true
	}
	return false
}

// pinned runs write on one connection to the master holding key and, if
// write reports that it wrote, waits (WAIT 1) for a replica to
// acknowledge it, for at most Config.ReplicaWait. If no replica does, the
// write stands (it is on the master) and a warning is logged. On a Cluster
// whose slot map is stale (MOVED, READONLY, or the master unreachable) the
// map is re-read and the write tried once more.
func (s *Store) pinned(ctx context.Context, key string, write func(context.Context, redis.Cmdable) (bool, error)) (bool, error) {
	var lastErr error
	for attempt := 0; attempt < 2; attempt++ {
		node, err := s.nodeFor(ctx, key, attempt > 0)
		if err != nil {
			return false, err
		}
		conn := node.Conn()
		wrote, err := write(ctx, conn)
		if err != nil {
			_ = conn.Close()
			if _, cluster := s.rdb.(*redis.ClusterClient); cluster && ctx.Err() == nil && redirected(err) {
				lastErr = err
				continue
			}
			return false, err
		}
		if wrote {
			n, err := conn.Wait(ctx, 1, s.replicaWait).Result()
			switch {
			case err != nil:
				s.log.WarnContext(ctx, "redisstore: waiting for a replica failed; the write stands on the master",
					"key_fingerprint", fingerprint(key), "error", err.Error())
			case n < 1:
				s.log.WarnContext(ctx, "redisstore: no replica acknowledged a write within ReplicaWait; it stands on the master only",
					"key_fingerprint", fingerprint(key), "replica_wait", s.replicaWait)
			}
		}
		_ = conn.Close()
		return wrote, nil
	}
	return false, lastErr
}

// nodeFor returns the client of the master holding key; reload first
// re-reads a Cluster's slot map.
func (s *Store) nodeFor(ctx context.Context, key string, reload bool) (*redis.Client, error) {
	switch c := s.rdb.(type) {
	case *redis.Client:
		return c, nil
	case *redis.ClusterClient:
		if reload {
			// ForEachMaster re-reads the slot map before it starts.
			if err := c.ForEachMaster(ctx, func(context.Context, *redis.Client) error { return nil }); err != nil {
				return nil, err
			}
		}
		return c.MasterForKey(ctx, key)
	}
	return nil, errors.New("redisstore: ReplicaWait needs a *redis.Client or *redis.ClusterClient") // refused by New
}

// redirected reports a reply saying that the key's slot is served
// elsewhere now, or a connection that failed (a master that died).
func redirected(err error) bool {
	var rerr redis.Error
	if errors.As(err, &rerr) {
		msg := rerr.Error()
		return strings.HasPrefix(msg, "MOVED ") || strings.HasPrefix(msg, "ASK ") ||
			strings.HasPrefix(msg, "READONLY ") || strings.HasPrefix(msg, "CLUSTERDOWN ")
	}
	return !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled)
}
