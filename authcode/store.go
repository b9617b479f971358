package authcode

import (
	"context"
	"time"
)

// Store keeps users' sessions. Values are opaque to the store: the Client
// serialises a session (its tokens included) to bytes, and the store keeps
// those bytes under key until ttl passes. Keys are namespaced by the Client
// with the issuer, client_id and session id, so one store may serve several
// apps and instances.
//
// Implementations must be safe for concurrent use. A Save, Add or Delete
// that fails must return an error: the Client then keeps the previous
// session and reports the failure instead of silently signing the user out.
type Store interface {
	// Load returns the value saved under key, or ErrSessionNotFound.
	Load(ctx context.Context, key string) ([]byte, error)
	// Save stores value under key, replacing any previous value, for ttl.
	Save(ctx context.Context, key string, value []byte, ttl time.Duration) error
	// Add saves value under key for ttl only if key is absent, atomically
	// (Redis SET NX), and reports whether it did. The Client uses it to
	// make each sign-in state usable once, even when a replayed callback
	// reaches two replicas at the same moment.
	Add(ctx context.Context, key string, value []byte, ttl time.Duration) (bool, error)
	// Delete removes key; deleting a missing key is not an error.
	Delete(ctx context.Context, key string) error
}

// RefreshLocker is implemented by stores shared between processes (see
// authcode/redisstore). Before redeeming a refresh token the Client takes
// the session's refresh lock, reloads the session, and redeems the refresh
// token only if no other process has already done so; so with one-time
// refresh tokens, replicas never redeem the same token twice. A sign-out
// takes the same lock, so no refresh in flight writes the session back.
//
// With a Store that does not implement it, refreshes are ordered within
// each process only, and a sign-out leaves a marker (a key beside the
// session's, with "ended/" where the session's has "session/", kept for
// SessionTTL) that a refresh checks after saving, deleting the session
// again if it finds one: a sign-out still wins over a refresh in flight in
// another process, at the cost of one more Load per refresh and one more
// Save per sign-out.
type RefreshLocker interface {
	// LockRefresh blocks until it holds key's refresh lock or ctx ends. The
	// lock expires by itself if its holder dies. unlock releases it only if
	// it is still held by this caller.
	LockRefresh(ctx context.Context, key string) (unlock func(), err error)
}
