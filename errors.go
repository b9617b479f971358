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
	// connection). The SDK has already retried with backoff; Error.RetryAfter
	// says when to try again if the server said so.
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
	// Code is the RFC 6749 error code, e.g. "invalid_grant"; empty when the
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
	// Kind is ErrReauthRequired, ErrTemporary, ErrMisconfigured, ErrClosed,
	// ErrLicenseExhausted, or nil when the failure fits none of them;
	// errors.Is matches it.
	Kind error
	// Err is the underlying cause, if any (a network error, a context
	// error); errors.Is and errors.As see it too.
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
	if e.RetryAfter > 0 {
		fmt.Fprintf(&b, ", retry after %s", e.RetryAfter)
	}
	if e.Kind != nil {
		b.WriteString(" [")
		b.WriteString(e.Kind.Error())
		b.WriteString("]")
	}
	return b.String()
}

// Unwrap returns Kind and Err, so errors.Is and errors.As see both.
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

// ConfigError reports an invalid Config field. Field is the Go name of the
// field as the caller wrote it ("ClientID", "Scopes[2]", "Keys[0]"); Reason
// says what is wrong and never contains the field's value. Every
// ConfigError matches ErrMisconfigured.
type ConfigError struct {
	// Field is the Config field at fault, e.g. "RedirectURL".
	Field string
	// Reason says what is wrong, e.g. "is required".
	Reason string
}

// Error implements error: "erpnet auth: config: <Field> <Reason>".
func (e *ConfigError) Error() string {
	return "erpnet auth: config: " + e.Field + " " + e.Reason
}

// Is makes every ConfigError match ErrMisconfigured.
func (e *ConfigError) Is(target error) bool { return target == ErrMisconfigured }
