package authcode

import (
	"errors"

	"github.com/erpnetgo/auth/authcode/internal/sessions"
)

// Errors of this package, to branch on with errors.Is. The SDK-wide kinds
// ([auth.ErrReauthRequired], [auth.ErrTemporary], [auth.ErrMisconfigured],
// [auth.ErrClosed]) are in package auth.
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
	// ErrAttemptExpired means the sign-in attempt is older than ten minutes.
	ErrAttemptExpired = errors.New("authcode: sign-in attempt expired; please sign in again")
	// ErrIssuerMismatch means the callback's RFC 9207 "iss" parameter
	// (https://www.rfc-editor.org/rfc/rfc9207#section-2) is
	// missing (when the server promises it) or names another issuer: a
	// mix-up attack or a misconfiguration.
	ErrIssuerMismatch = errors.New("authcode: authorization response issuer (iss) does not match the configured identity server")
	// ErrInvalidIDToken means the ID token failed verification (signature,
	// algorithm, issuer, audience, expiry, nonce or at_hash), or is missing.
	ErrInvalidIDToken = errors.New("authcode: ID token rejected")
)

// ErrSessionNotFound is returned by a Store for a key it does not hold (never
// saved, deleted, or expired).
var ErrSessionNotFound = errors.New("authcode: session not found")

func init() {
	// The session engine reports these errors as they are.
	sessions.ErrNotFound, sessions.ErrNoSession = ErrSessionNotFound, ErrNoSession
}
