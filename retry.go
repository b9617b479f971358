package auth

import "time"

// Retry tunes how requests that failed in a way that may pass (a network
// error, 5xx, 429, or a token response that is malformed, empty or too
// large) are sent again, with exponential backoff, full jitter
// on the upper half, and the server's Retry-After honoured. Every Config of
// the SDK has a Retry field; the zero value is the default described on
// each field. It applies to the identity server's token endpoint and, for
// API calls through the SDK's HTTP clients, to idempotent requests whose
// body can be sent again. A token request that redeems an authorization
// code or a refresh token is one-time: an answer the SDK cannot use is not
// followed by a second redemption (see [ErrTemporary]).
type Retry struct {
	// Attempts is the number of attempts including the first; 0 means 4.
	// 1 turns retries off.
	Attempts int
	// Base is the first backoff; 0 means 200 ms. Each retry doubles it.
	Base time.Duration
	// Cap is the longest backoff; 0 means 5 s.
	Cap time.Duration
	// MaxRetryAfter is the longest Retry-After the SDK waits for; 0 means
	// 30 s. A server asking for longer gets no retry: the call fails at once
	// with [ErrTemporary] and RetryAfter set, and later calls fail fast the
	// same way, without a request, until that time has passed.
	MaxRetryAfter time.Duration
}
