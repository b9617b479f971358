// Package autherr defines the errors every package of the SDK returns, so
// that callers can branch on them with errors.Is and errors.As whatever flow
// produced them. The public packages re-export these names.
package autherr

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Sentinel errors. Every *Error wraps at most one of them.
var (
	// ErrReauthRequired means the refresh token is dead (expired, revoked,
	// rotated away or the user changed password): the user must sign in again.
	ErrReauthRequired = errors.New("re-authentication required")
	// ErrTemporary means the identity server or the network failed in a way
	// that may pass (5xx, 429, dropped connection, timeout). The SDK has
	// already retried; the caller may try again later.
	ErrTemporary = errors.New("temporary failure")
	// ErrMisconfigured means the request can never succeed as configured:
	// invalid_client, unauthorized_client, invalid_scope,
	// unsupported_grant_type, or a discovery document that is missing or wrong.
	ErrMisconfigured = errors.New("misconfigured")
	// ErrClosed is returned by a token source used after Close.
	ErrClosed = errors.New("token source closed")
)

// Error is a failed call to the identity server: an RFC 6749 §5.2 error
// response, an unexpected HTTP status, or a transport failure. Its message
// never contains a secret.
type Error struct {
	// Op names what was attempted, e.g. "token request (client_credentials)"
	// or "discovery".
	Op string
	// Code is the RFC 6749 "error" code, e.g. "invalid_client"; empty when
	// the server did not send one.
	Code string
	// Description is the server's "error_description", with any configured
	// secret removed.
	Description string
	// URI is the server's "error_uri".
	URI string
	// StatusCode is the HTTP status, 0 when no response arrived.
	StatusCode int
	// RetryAfter is the server's Retry-After, when it sent one.
	RetryAfter time.Duration
	// Attempts is how many requests were made before giving up.
	Attempts int
	// Kind is ErrReauthRequired, ErrTemporary, ErrMisconfigured or nil.
	Kind error
	// Err is the underlying cause (a network error, a decoding error), if any.
	Err error
}

// Error implements error.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("erpnet auth: ")
	b.WriteString(e.Op)
	b.WriteString(" failed")
	if e.StatusCode != 0 {
		fmt.Fprintf(&b, ": HTTP %d", e.StatusCode)
	}
	if e.Code != "" {
		b.WriteString(": ")
		b.WriteString(e.Code)
	}
	if e.Description != "" {
		b.WriteString(" (")
		b.WriteString(e.Description)
		b.WriteString(")")
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	if e.Attempts > 1 {
		fmt.Fprintf(&b, " after %d attempts", e.Attempts)
	}
	if e.Kind != nil {
		b.WriteString(" [")
		b.WriteString(e.Kind.Error())
		b.WriteString("]")
	}
	return b.String()
}

// Unwrap lets errors.Is see both the classification and the cause.
func (e *Error) Unwrap() []error {
	var out []error
	if e.Kind != nil {
		out = append(out, e.Kind)
	}
	if e.Err != nil {
		out = append(out, e.Err)
	}
	return out
}

// Classify maps an RFC 6749 error code to a sentinel. invalid_grant means
// re-authentication only for a refresh; elsewhere (a bad or replayed code)
// it is left unclassified.
func Classify(code string, refresh bool) error {
	switch code {
	case "invalid_client", "unauthorized_client", "invalid_scope", "unsupported_grant_type":
		return ErrMisconfigured
	case "invalid_grant":
		if refresh {
			return ErrReauthRequired
		}
	case "temporarily_unavailable", "server_error":
		return ErrTemporary
	}
	return nil
}

// ConfigError reports an invalid configuration field. It never includes the
// field's value, which may be a secret.
type ConfigError struct {
	Field  string // e.g. "ClientID"
	Reason string // e.g. "is required"
}

// Error implements error.
func (e *ConfigError) Error() string {
	return "erpnet auth: config: " + e.Field + " " + e.Reason
}

// Is makes every ConfigError match ErrMisconfigured.
func (e *ConfigError) Is(target error) bool { return target == ErrMisconfigured }
