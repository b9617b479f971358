package auth

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"golang.org/x/oauth2"
)

// Errors callers branch on with errors.Is. Every error the SDK returns
// matches at most one of them.
var (
	// ErrReauthRequired means the user's refresh token is dead (expired,
	// revoked, rotated away, or the user signed out or changed password) or
	// the session is gone: the user must sign in again.
	ErrReauthRequired = errors.New("re-authentication required")
	// ErrTemporary means the identity server, the API, the network or a
	// session store failed in a way that may pass (5xx, 429, a dropped
	// connection, a token response that is malformed, empty or too large).
	// The SDK has already retried with backoff as Retry allows, with one
	// exception: a token request that redeems an authorization code or a
	// refresh token is not sent again after an answer it cannot use, since
	// the server may already have redeemed it (both are one-time); the
	// error then says "not retried" and why. [Error.RetryAfter] says when to
	// try again if the server said so.
	ErrTemporary = errors.New("temporary failure")
	// ErrMisconfigured means the call can never succeed as configured:
	// invalid_client, unauthorized_client, invalid_scope, a bad authority or
	// discovery document, a request for a host that is not the instance's,
	// or an invalid Config (then the error is a *ConfigError).
	ErrMisconfigured = errors.New("misconfigured")
	// ErrClosed means the client was closed and has no usable token.
	ErrClosed = errors.New("closed")
	// ErrLicenseExhausted means the ERP.net instance refused an API call
	// because all its licenses are in use (MaximumLicenseCountExceeded):
	// the call opened no ERP.net session and did nothing. The SDK has
	// already waited and tried once more (Error.RetryAfter says how long
	// the server asked to wait, if it did); slots free up as other API
	// sessions end, so try again in a few minutes, and tell people so:
	// "All ERP.net licenses of this instance are in use; try again in a
	// few minutes".
	ErrLicenseExhausted = errors.New("all ERP.net licenses in use")
)

// Error is a failed call to the identity server or the API, or an error
// response the identity server sent to a sign-in callback (Op
// "authorization"). Read it with errors.As. Its message never contains a
// secret.
type Error struct {
	// Op is what failed, e.g. "token request (client_credentials)",
	// "discovery", "token revocation", "API request".
	Op string
	// Code is the RFC 6749 error code, e.g. "invalid_grant"
	// (https://www.rfc-editor.org/rfc/rfc6749#section-5.2); empty when the
	// server sent none.
	Code string
	// Description is the server's error_description, shortened, with any
	// secret removed.
	Description string
	// URI is the server's error_uri.
	URI string
	// StatusCode is the HTTP status of the last response; 0 when none
	// arrived.
	StatusCode int
	// RetryAfter is how long the server asked to wait (Retry-After); 0 when
	// it did not say.
	RetryAfter time.Duration
	// Attempts is how many requests were sent, retries included.
	Attempts int
	// Kind is [ErrReauthRequired], [ErrTemporary], [ErrMisconfigured],
	// [ErrClosed], [ErrLicenseExhausted], or nil when the failure fits none
	// of them; errors.Is matches it. When Err already has a kind (it is or
	// wraps an *Error with one, a *ConfigError, or one of these errors),
	// that kind is the error's and Kind is not used: every error matches at
	// most one kind.
	Kind error
	// Err is the underlying cause, if any (a network error, a context
	// error); errors.Is and errors.As see it too.
	Err error
}

// prefix starts every message of the SDK's errors, once.
const prefix = "erpnet auth: "

// Error implements error. The message reads once however deeply errors of
// the SDK wrap each other: one "erpnet auth: " prefix, each operation once,
// and one kind tag at the end ("[temporary failure]").
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(prefix)
	e.write(&b)
	if k := e.kind(); k != nil {
		b.WriteString(" [")
		b.WriteString(k.Error())
		b.WriteString("]")
	}
	return b.String()
}

// write writes e's message without the prefix and the kind tag.
func (e *Error) write(b *strings.Builder) {
	b.WriteString(e.Op)
	b.WriteString(" failed")
	if e.StatusCode != 0 {
		fmt.Fprintf(b, ": HTTP %d", e.StatusCode)
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
		b.WriteString(bare(e.Err))
	}
	if e.Attempts > 1 {
		fmt.Fprintf(b, " after %d attempts", e.Attempts)
	}
	if e.RetryAfter > 0 {
		fmt.Fprintf(b, ", retry after %s", e.RetryAfter)
	}
}

// bare is err's message with the prefix and kind tags of the SDK's errors
// inside it removed, so that a wrapping Error states them once.
func bare(err error) string {
	msg := err.Error()
	var ae *Error
	if errors.As(err, &ae) {
		var b strings.Builder
		ae.write(&b)
		msg = strings.Replace(msg, ae.Error(), b.String(), 1)
	}
	var ce *ConfigError
	if errors.As(err, &ce) {
		msg = strings.Replace(msg, ce.Error(), strings.TrimPrefix(ce.Error(), prefix), 1)
	}
	return msg
}

// kinds are the kinds of package auth, for kind.
var kinds = [...]error{ErrReauthRequired, ErrTemporary, ErrMisconfigured, ErrClosed, ErrLicenseExhausted}

// kind is the kind e matches: the kind its cause already has (an *Error
// with a kind, a *ConfigError, or one of the kinds of package auth),
// else Kind. A cause knows best what went wrong: a store that refuses a
// file's mode is misconfigured even where every store failure is first
// taken for a temporary one.
func (e *Error) kind() error {
	if k := kindOf(e.Err); k != nil {
		return k
	}
	return e.Kind
}

// kindOf is the kind err already has, or nil.
func kindOf(err error) error {
	if err == nil {
		return nil
	}
	var ae *Error
	if errors.As(err, &ae) {
		if k := ae.kind(); k != nil {
			return k
		}
	}
	for _, k := range kinds {
		if errors.Is(err, k) {
			return k
		}
	}
	return nil
}

// Unwrap returns Kind and Err, so errors.Is and errors.As see both; when
// Err already has a kind, only Err (see Kind).
func (e *Error) Unwrap() []error {
	var out []error
	if e.Kind != nil && kindOf(e.Err) == nil {
		out = append(out, e.Kind)
	}
	if e.Err != nil {
		out = append(out, e.Err)
	}
	return out
}

// As lets errors.As read a token-endpoint failure into an
// *oauth2.RetrieveError (code, description, URI and a response carrying the
// status and headers), as golang.org/x/oauth2 reports it. Its Body is
// empty: the SDK does not keep response bodies.
func (e *Error) As(target any) bool {
	t, ok := target.(**oauth2.RetrieveError)
	if !ok || e.StatusCode == 0 || !strings.HasPrefix(e.Op, "token ") {
		return false
	}
	resp := &http.Response{StatusCode: e.StatusCode, Status: fmt.Sprintf("%d %s", e.StatusCode, http.StatusText(e.StatusCode)), Header: http.Header{}}
	if e.RetryAfter > 0 {
		resp.Header.Set("Retry-After", fmt.Sprint(int64((e.RetryAfter+time.Second-1)/time.Second)))
	}
	*t = &oauth2.RetrieveError{Response: resp, ErrorCode: e.Code, ErrorDescription: e.Description, ErrorURI: e.URI}
	return true
}

// ConfigError reports an invalid Config field. Field is the field as the
// caller wrote it, a Go expression without a package prefix ("ClientID",
// "Scopes[2]", "Keys[0]", "LoopbackOptions.Path", "FileStore.Path"), in
// every package; Reason says what is wrong and never contains the field's
// value. A field shared by several packages' Configs is checked by the same
// rule, with the same Reason, in each. Every ConfigError matches
// [ErrMisconfigured].
type ConfigError struct {
	// Field is the field at fault, e.g. "RedirectURL" or "Keys[0]".
	Field string
	// Reason says what is wrong, e.g. "is required".
	Reason string
}

// Error implements error: "erpnet auth: config: <Field> <Reason>".
func (e *ConfigError) Error() string {
	return prefix + "config: " + e.Field + " " + e.Reason
}

// Is makes every ConfigError match ErrMisconfigured.
func (e *ConfigError) Is(target error) bool { return target == ErrMisconfigured }
