// Package reftoken handles ERP.net reference tokens: personal access tokens (PAT, acting as a
// user) and service access tokens (SAT, acting as a Trusted Application's System User). Both are
// opaque, long-lived API keys of the form "enrt_" followed by 64 upper-case hexadecimal digits.
// They are issued by hand, validated by the instance on every request, never exchanged for other
// tokens and never refreshed: treat them like passwords.
//
// # Loading and parsing
//
// [Parse], [ParseWith], [FromEnv] and [FromFile] turn text into a [Token]. Surrounding
// whitespace (a trailing newline from a file, a pasted blank) and a leading UTF-8 byte order mark
// are trimmed; anything else that is not the published shape is refused with a [*ParseError]
// that says what is wrong without repeating the token. In particular:
//
//   - the prefix must be exactly "enrt_": "ENRT_" and other spellings are refused (the server
//     compares tokens exactly, so guessing a normalisation could only hide a damaged token);
//   - the 64 digits must be upper-case hex: lower-case digits are refused for the same reason;
//   - no whitespace, control or non-ASCII character may appear inside the token.
//
// [ParseOptions] relaxes the length and the alphabet should ERP.net change the format, while still
// requiring the prefix and a character set that cannot break an HTTP header.
//
// [FromFile] refuses a file that group or others may read or write (fix it with chmod 600).
//
// # Keeping the value secret
//
// A Token never shows its value: String, GoString, Format (every verb), MarshalText,
// MarshalJSON and slog's LogValue all print "enrt_…(redacted)", and the value is stored where
// reflection cannot reach it, so that even a Token in an unexported struct field (which fmt and
// dumpers print field by field, without calling methods) shows only an address. The value is
// reachable only through [Token.RevealSecret]. No error of this package contains a token.
//
// # Sending it
//
// [Token.Transport] and [Token.Client] add the token to requests as "Authorization: Bearer" or
// "X-Api-Key" (see [Header]), never both, after removing every credential the request already
// carried (Authorization, X-Api-Key, Api-Key and Cookie headers in any spelling, and user
// information in the URL). The original request is never modified.
//
// The token is bound to one instance origin (scheme, host and port): the one given with
// [WithInstance] (Client requires it), or else the origin of the first request the Transport
// sends. A request for any other origin is refused with [ErrForeignHost] before anything is sent,
// except a redirect (which the server chose), which is followed without any credential, the way
// net/http itself drops Authorization on a redirect to another domain. The instance must use
// https, or http on a loopback address (development servers).
//
// A Transport answers like any [http.RoundTripper]: it returns the server's responses as they are
// and an error only when no response arrived. The one exception is 429 Too Many Requests, which
// it retries with backoff, honouring Retry-After, for requests it can replay (no body, or a body
// with GetBody), up to a bounded number of attempts ([WithMaxAttempts]). 401 is never retried: a
// reference token cannot be refreshed, so an expired or revoked one stays rejected. Turn
// responses into typed errors with [CheckResponse]: 401 gives [ErrTokenRejected], 403 gives
// [ErrNotPermitted], 429 (after the retries) and 502/503/504 give [ErrTemporary], all carried by
// a [*ResponseError].
//
// [Token.TokenSource] adapts a Token to golang.org/x/oauth2 (a static Bearer token without
// expiry). Prefer Transport: oauth2.Transport neither binds the token to an instance nor strips
// other credentials.
package reftoken
