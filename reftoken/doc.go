// Package reftoken handles ERP.net reference tokens: personal access tokens (PAT, acting as a
// user) and service access tokens (SAT, acting as a Trusted Application's System User). Both are
// opaque, long-lived API keys of the form "enrt_" followed by 64 upper-case hexadecimal digits.
// They are issued by hand, validated by the instance on every request, never exchanged for other
// tokens and never refreshed: treat them like passwords.
//
// # Loading and parsing
//
// [Parse], [FromEnv] and [FromFile] turn text into a [Token]. Surrounding whitespace (a trailing
// newline from a file, a pasted blank) and a leading UTF-8 byte order mark are trimmed; anything
// else that is not the published shape is refused with a [*ParseError] that says what is wrong
// without repeating the token. In particular:
//
//   - the prefix must be exactly "enrt_": "ENRT_" and other spellings are refused (the server
//     compares tokens exactly, so guessing a normalisation could only hide a damaged token);
//   - the 64 digits must be upper-case hex: lower-case digits are refused for the same reason;
//   - no whitespace, control or non-ASCII character may appear inside the token.
//
// [FromFile] refuses a file that group or others may read or write (fix it with chmod 600).
// Every [*ParseError] and [*LoadError] matches [auth.ErrMisconfigured].
//
// # Keeping the value secret
//
// A Token never shows its value: String, GoString and MarshalText give "enrt_…(redacted)", so
// every fmt verb, encoding/json and slog's text and JSON handlers print that, and the value is
// stored where reflection cannot reach it, so that even a Token in an unexported struct field
// (which fmt and dumpers print field by field, without calling methods) shows only an address.
// The value is reachable only through [Token.RevealSecret]. No error of this package contains a
// token.
//
// # Sending it
//
// [Token.Client] returns an *http.Client that sends the token as "Authorization: Bearer" or
// "X-Api-Key" ([Config.Header]), through the transport every flow of the SDK shares: it removes
// the credentials a request already carries (Authorization, X-Api-Key and Api-Key headers, user
// information in the URL) and adds exactly one, never modifying the caller's request. The token
// goes only to the origins (scheme, host and port) of [Config.Authority] and [Config.DomainAPI]:
// a request for any other origin is refused before anything is sent with an [*auth.Error]
// matching auth.ErrMisconfigured, and a redirect the server chooses to another origin is
// followed without the token.
//
// The client returns the server's answers as they are. A reference token cannot be renewed, so
// 401 is never retried; 403 neither. 429 and 503 are retried with backoff, honouring
// Retry-After ([Config.Retry]), for idempotent requests (GET, HEAD, OPTIONS, TRACE, PUT,
// DELETE, or any request with an Idempotency-Key header) whose body can be sent again. Turn
// answers into errors with [CheckResponse]: an *auth.Error whose Kind is [ErrTokenRejected]
// (401), [ErrNotPermitted] (403) or [auth.ErrTemporary] (429, 502, 503, 504). One answer is
// an error already: when every license of the instance is in use (MaximumLicenseCountExceeded)
// the client waits, tries once more, and then returns an error matching
// [auth.ErrLicenseExhausted].
//
// [Token.TokenSource] adapts a Token to golang.org/x/oauth2 (a static [Bearer] token without
// expiry). Prefer Client: oauth2.Transport neither binds the token to an instance nor strips
// other credentials.
package reftoken
