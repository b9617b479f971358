// Package auth is the vocabulary shared by every package of this SDK for
// ERP.net identity servers: the errors callers branch on, and the retry
// settings every flow accepts.
//
// The flows live in sub-packages:
//
//   - [github.com/erpnetgo/auth/clientcreds]: service tokens for background
//     work, acting as the Trusted Application's System User.
//   - [github.com/erpnetgo/auth/authcode]: users signing in (Authorization
//     Code with PKCE), per-user sessions, refresh with rotation, sign-out;
//     loopback sign-in for command-line tools.
//   - [github.com/erpnetgo/auth/hybrid]: one app doing both, with user and
//     service tokens kept apart.
//   - [github.com/erpnetgo/auth/reftoken]: reference tokens (PAT/SAT,
//     "enrt_..."), sent as Bearer or X-Api-Key.
//   - [github.com/erpnetgo/auth/erpnettest]: an ERP.net-shaped identity
//     server for an app's own tests.
//
// Every failure a flow returns can be told apart with [errors.Is]:
// [ErrMisconfigured] (fix the configuration; never retried),
// [ErrTemporary] (the server, the network or a store failed in a way that
// may pass; already retried with backoff), [ErrReauthRequired] (the user
// must sign in again), [ErrLicenseExhausted] (all ERP.net licenses of the
// instance are in use: try again in a few minutes) and [ErrClosed].
// [errors.As] gives an [*Error] with
// the RFC 6749 code, description and HTTP status, or an [*ConfigError]
// naming the Config field at fault. Token-endpoint failures can also be read
// into a [*golang.org/x/oauth2.RetrieveError], so existing x/oauth2 error
// handling keeps working.
//
// Two words mean one thing each, in code, events and docs: a session is a
// user's sign-in (package authcode keeps it in a Store); an API session is
// what ERP.net opens, taking a license slot, when a token is first used at
// its API (the api.session_opened event of [Hooks]).
//
// No error message of this SDK ever contains a secret: client secrets,
// access, refresh, ID and reference tokens, authorization codes and PKCE
// verifiers are never part of an error, a log record or fmt output.
package auth
