package authcode

import (
	"errors"

	"github.com/erpnetgo/auth/internal/autherr"
)

// Errors shared by every package of the SDK, re-exported so callers can
// branch with errors.Is without importing an internal package.
var (
	// ErrReauthRequired means the user's refresh token is dead (expired,
	// revoked, rotated away, or the user signed out or changed password):
	// the user must sign in again.
	ErrReauthRequired = autherr.ErrReauthRequired
	// ErrTemporary means the identity server, the network or the session
	// Store failed in a way that may pass. The SDK has already retried.
	ErrTemporary = autherr.ErrTemporary
	// ErrMisconfigured means the request can never succeed as configured
	// (invalid_client, unauthorized_client, invalid_scope, a bad discovery
	// document, an invalid Config).
	ErrMisconfigured = autherr.ErrMisconfigured
	// ErrClosed is returned after Client.Close.
	ErrClosed = autherr.ErrClosed
)

// Error is a failed call to the identity server, or an error response the
// identity server sent to the callback (Op "authorization"). Use errors.As
// to read the RFC 6749 code, description and HTTP status. Its message never
// contains a secret.
type Error = autherr.Error

// ConfigError reports an invalid Config field. It names the field and never
// echoes the field's value. Every ConfigError matches ErrMisconfigured.
type ConfigError = autherr.ConfigError

// Errors of this package.
var (
	// ErrNoSession means the request carries no valid session: no session
	// cookie, a cookie that cannot be opened (tampered, or sealed under a key
	// no longer configured), or a session the Store no longer holds (signed
	// out, expired).
	ErrNoSession = errors.New("authcode: not signed in")
	// ErrInvalidState means a callback did not match a sign-in attempt of
	// this browser: the state parameter is missing, unknown or mismatched,
	// the attempt cookie is missing or tampered, or the callback was replayed.
	ErrInvalidState = errors.New("authcode: invalid sign-in state")
	// ErrAttemptExpired means the sign-in attempt is older than AttemptTTL.
	ErrAttemptExpired = errors.New("authcode: sign-in attempt expired; please sign in again")
	// ErrIssuerMismatch means the callback's RFC 9207 "iss" parameter is
	// missing (when the server promises it) or names another issuer: a
	// mix-up attack or a misconfiguration.
	ErrIssuerMismatch = errors.New("authcode: authorization response issuer (iss) does not match the configured identity server")
	// ErrInvalidIDToken means the ID token failed verification (signature,
	// algorithm, issuer, audience, expiry, nonce or at_hash), or is missing.
	ErrInvalidIDToken = errors.New("authcode: ID token rejected")
	// ErrTokenFileInsecure means LoopbackOptions.RefreshTokenFile is
	// readable or writable by group or others; it is not read.
	ErrTokenFileInsecure = errors.New("authcode: refresh token file is accessible by group or others (want mode 0600)")
)
