package auth

import (
	"context"
	"time"
)

// Hooks let an application see what the SDK does, in the spirit of
// [net/http/httptrace]: every package reports its work through the Hooks in
// its Config (field Hooks), and an adapter turns the reports into metrics,
// traces or logs (module github.com/erpnetgo/auth/otelauth does it for
// OpenTelemetry). A nil *Hooks, or a nil field, costs nothing.
//
// No secret ever reaches a hook: events carry no token, code, verifier or
// client secret. User identifiers reach it only when IncludeUser is set.
//
// Hook functions are called synchronously, from the goroutine doing the
// work (cache hits from the caller of Token), so they must be fast, safe
// for concurrent use, and must not call back into the SDK.
type Hooks struct {
	// Event receives each event of the table below. ctx is the context of
	// the call that caused it (for background refreshes, the client's own).
	//
	//	Name                  when                                         fields set
	//	token.issued          a token request (any grant) succeeded        Grant, Duration, Attempts
	//	token.failed          a token request failed                       Grant, Duration, Attempts, Err, StatusCode, RetryAfter
	//	token.cache_hit       Token returned a cached token                -
	//	token.wait            a caller waited for a token request          Duration, Err
	//	token.refresh_ahead   a background refresh started before expiry   Lead (life left)
	//	                      (once per refresh, before its token.issued
	//	                      or token.failed)
	//	api.retry_401         an API call got 401: fresh token, one retry  StatusCode
	//	api.backoff           an API call got 429/503 and is retried       StatusCode, RetryAfter, Attempts
	//	api.session_opened    the API first answered a token with 2xx:     -
	//	                      ERP.net opened an API session (a license
	//	                      slot); a refused request opens none
	//	api.license_exhausted the API refused a call: all licenses of the  StatusCode, RetryAfter, Attempts
	//	                      instance are in use (one per refusal; the
	//	                      call is retried once, then fails with
	//	                      ErrLicenseExhausted)
	//	reftoken.rejected     the API refused a reference token (401)      StatusCode
	//	signin.completed      a user signed in                             User
	//	signin.failed         a sign-in callback was refused               Err
	//	signout.completed     a user signed out (handler or SignOutSession) User
	//	reauth.required       a user's refresh token is dead               User, Err
	//	bff.refused           the BFF refused a request before sending     StatusCode
	//	                      anything (no X-CSRF: 1 header, a path off
	//	                      the Domain API root, a method off its list)
	Event func(ctx context.Context, e Event)
	// Call starts a call to the identity server: op is "discovery",
	// "jwks", "token", "revocation" or "end_session" (the browser redirect
	// the SignOut handler sends, which ends at once). It returns the context
	// to make the call with (carrying a span, say) and a function called
	// when the call ends, with its error. Both may be nil.
	Call func(ctx context.Context, op string) (context.Context, func(err error))
	// IncludeUser lets [Event.User] carry the user's subject (ERP.net user
	// name). Off by default: user identifiers are personal data.
	IncludeUser bool
}

// Event is one thing the SDK did; see [Hooks.Event] for which fields each
// event sets. It never holds a secret.
type Event struct {
	// Name says what happened, e.g. "token.issued"; see [Hooks.Event].
	Name string
	// Flow is the package that reports: "clientcreds", "authcode",
	// "reftoken" or "bff" (hybrid reports through the first two; the BFF's
	// proxied calls report as "authcode", their Client).
	Flow string
	// ClientID is the Trusted Application's client_id, where there is one.
	ClientID string
	// Authority is the Authority of the client that reports, as its Config
	// names it (trailing slash removed): the ERP.net instance the event is
	// about. One Hooks shared by many instances (package instances, where
	// it is the instance root) tells them apart by it.
	Authority string
	// Grant is the OAuth grant of a token request: "client_credentials",
	// "authorization_code" or "refresh_token".
	Grant string
	// Duration is how long the request or the wait took.
	Duration time.Duration
	// Lead is how long the token had left to live when a background
	// refresh started.
	Lead time.Duration
	// Attempts is how many requests a call made, retries included.
	Attempts int
	// StatusCode is the HTTP status that caused the event, if any.
	StatusCode int
	// RetryAfter is the server's Retry-After, if it sent one.
	RetryAfter time.Duration
	// Err is the failure, if any; classify it with errors.Is against
	// [ErrTemporary], [ErrMisconfigured], ErrReauthRequired.
	Err error
	// User is the user's subject; empty unless [Hooks.IncludeUser] is set.
	User string
}
