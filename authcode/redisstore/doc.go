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
//   - Redis failures, Redis not answering within Config.Timeout, and a
//     refresh lock not taken within Config.LockWait return *auth.Error
//     values matching auth.ErrTemporary, naming the operation, never the
//     value or the session key. authcode.ErrSessionNotFound is returned
//     only when Redis answers that the key does not exist (or holds a
//     value that does not open). Invalid configuration gives
//     *auth.ConfigError values, matching auth.ErrMisconfigured.
//   - No operation blocks its caller for longer than Config.Timeout (a few
//     seconds by default) whatever Redis does, also with a Config.Client
//     whose own timeouts are longer: see Config.Timeout.
//   - After a failed operation on a Redis Cluster, the Store asks the client
//     to re-read the cluster's slot map, so that requests follow a replica
//     promoted in place of a master that died or hangs within moments,
//     rather than at go-redis' next periodic reload (up to a minute).
//   - Within one process, waiters for the same session's lock queue on an
//     in-process gate first, so only one goroutine per process polls Redis.
//
// # Operating it
//
// A session lives at Prefix+key (key as the authcode Client gives it), its
// refresh lock in the same Redis Cluster hash slot, at
// Prefix+"lock:{tag}"+key (the tag is chosen to hash to the session's
// slot), so a session and its lock always live on the same master. Every
// command and script touches one key, so any redis.UniversalClient works:
// a *redis.Client, a Redis Cluster (*redis.ClusterClient) or Sentinel
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
// Replication is asynchronous: a master that dies before its replica has a
// write loses it, unless Config.ReplicaWait makes the writes that matter
// wait for a replica.
//
// go-redis writes its own diagnostics (such as failed dials while Redis is
// down) through redis.SetLogger; this package does not change that global.
package redisstore
