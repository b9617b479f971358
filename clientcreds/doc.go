// Package clientcreds gets service tokens for background workers and
// integrations that act as an ERP.net Trusted Application's System User,
// using the OAuth 2.0 Client Credentials grant.
//
// A Source caches one token. While it is fresh, Token returns it with one
// atomic load: no lock, no allocation, no request. In the token's last part
// of life (by default its last 5 minutes, or its last 20% if it lives less
// than 25 minutes) exactly one background refresh runs while callers keep
// receiving the still-valid token, so no caller waits on a refresh it did not
// need. A cold or expired cache makes exactly one token request however many
// goroutines ask; each caller can give up through its own context without
// cancelling the shared request for the others.
//
// # Why the cache is per process
//
// ERP.net's license terms forbid sharing one token across users, machines or
// processes: every service process must authenticate on its own. And every
// new token opens a new ERP.net API session (taking a license slot) on its first
// use, so fetching a token per request, or per short-lived worker, burns
// sessions until the server answers MaximumLicenseCountExceeded. A Source is
// therefore deliberately an in-memory, per-process cache with no shared
// store: create one per process, at start-up, and keep it for the life of
// the process. A second Source for the same instance and client in one
// process logs a warning, once. When every license is taken, API calls
// through Client fail, after one delayed retry, with an error matching
// auth.ErrLicenseExhausted.
//
// # Rotating the secret
//
// With Config.ClientSecretFile the secret is read from a file, and read
// again when the identity server refuses it (invalid_client): store the new
// secret in ERP.net, then in the file, and the running Source switches to it
// with one refused request, without a restart.
//
// # Errors
//
// Token-endpoint failures are *Error values; branch on them with errors.Is:
// ErrMisconfigured (invalid_client, unauthorized_client, invalid_scope, a bad
// authority or discovery document: never retried), ErrTemporary (5xx, 429,
// network: already retried with capped exponential backoff and jitter,
// honouring Retry-After). errors.As gives the RFC 6749 code, description and
// HTTP status.
//
// The grant is RFC 6749 section 4.4,
// https://www.rfc-editor.org/rfc/rfc6749#section-4.4; its errors are
// those of section 5.2, https://www.rfc-editor.org/rfc/rfc6749#section-5.2.
package clientcreds
