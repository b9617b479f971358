package reftoken

import (
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"

	"golang.org/x/oauth2"

	"github.com/erpnetgo/auth/internal/autherr"
)

// Prefix starts every ERP.net reference token.
const Prefix = "enrt_"

// Lengths of the part after [Prefix].
const (
	// BodyLen is the published length: 64 hexadecimal digits.
	BodyLen = 64
	// MinBodyLen is the shortest body [ParseOptions.AnyLength] accepts.
	MinBodyLen = 16
	// MaxBodyLen is the longest body [ParseOptions.AnyLength] accepts.
	MaxBodyLen = 1024
)

// Redacted is what a Token prints instead of its value.
const Redacted = Prefix + "…(redacted)"

// redactedEmpty is what the zero Token prints.
const redactedEmpty = Prefix + "(empty)"

// Errors callers branch on with errors.Is.
var (
	// ErrMalformed matches every [*ParseError]: the text is not a reference token.
	ErrMalformed = errors.New("malformed reference token")
	// ErrNoToken means no token was configured: the environment variable is unset or empty,
	// or the file does not exist.
	ErrNoToken = errors.New("no reference token configured")
	// ErrInsecureFile means a token file may be read or written by group or others.
	ErrInsecureFile = errors.New("token file is accessible to group or others")
	// ErrTokenRejected means the server answered 401: the token is expired, revoked or
	// unknown. A reference token cannot be refreshed: issue a new one.
	ErrTokenRejected = errors.New("reference token rejected (expired, revoked or unknown)")
	// ErrNotPermitted means the server answered 403: the token is valid but its user or
	// scopes may not do this. Retrying will not help.
	ErrNotPermitted = errors.New("not permitted")
	// ErrForeignHost means a request was refused because it is not for the instance the
	// token is bound to.
	ErrForeignHost = errors.New("request is not for the token's instance")
	// ErrTemporary is the SDK-wide sentinel for failures that may pass (429 after the
	// retries, 502, 503, 504): try again later.
	ErrTemporary = autherr.ErrTemporary
	// ErrMisconfigured is the SDK-wide sentinel for a configuration that can never work;
	// [*ParseError], [*LoadError] and configuration errors of Transport match it.
	ErrMisconfigured = autherr.ErrMisconfigured
)

// Token is a parsed reference token. Its value never appears in fmt output, logs, JSON or
// errors; [Token.RevealSecret] is the only way to read it. The zero Token is empty: it prints
// as "enrt_(empty)", and a Transport or TokenSource built from it refuses to send anything.
//
// A Token is small and immutable; copy it freely. Two Tokens compare equal with == only if one
// is a copy of the other; use [Token.Equal] to compare values.
type Token struct {
	// Reflection-based printers cannot call methods on unexported fields, so a Token in an
	// unexported struct field is printed by walking its fields (fmt's %v shows the pointer, but
	// %s shows what it points to; spew-like dumpers go all the way). The value therefore lives
	// inside a closure, which every reflection walker prints as a bare code address.
	s *secret
}

type secret struct{ reveal func() string }

func newToken(v string) Token { return Token{s: &secret{reveal: func() string { return v }}} }

// Parse parses a reference token in the published format: "enrt_" followed by exactly 64
// upper-case hexadecimal digits. Surrounding whitespace and a leading byte order mark are
// trimmed. Any other input gives a [*ParseError] (matching [ErrMalformed]) whose message says
// what is wrong and never contains the input.
func Parse(s string) (Token, error) {
	return ParseWith(s, ParseOptions{})
}

// ParseOptions relaxes [ParseWith] for a future token format. The prefix "enrt_" is always
// required, and the characters are always restricted to a set that is safe in an HTTP header.
type ParseOptions struct {
	// AnyLength accepts a body (the part after "enrt_") of MinBodyLen to MaxBodyLen
	// characters instead of exactly BodyLen.
	AnyLength bool
	// B64Token accepts the RFC 6750 b64token alphabet in the body (A-Z a-z 0-9 - . _ ~ + /,
	// with trailing '=' padding) instead of upper-case hexadecimal digits only.
	B64Token bool
}

// ParseWith is [Parse] with options.
func ParseWith(s string, opts ParseOptions) (Token, error) {
	v, reason := check(s, opts)
	if reason != "" {
		return Token{}, &ParseError{Reason: reason}
	}
	return newToken(v), nil
}

// MustParse is like [Parse] but panics on error; for tests and examples with constant tokens.
// The panic value is the *ParseError, which does not contain the input.
func MustParse(s string) Token {
	t, err := Parse(s)
	if err != nil {
		panic(err)
	}
	return t
}

// ParseError reports text that is not a reference token. It never contains the text.
type ParseError struct {
	// Source says where the text came from, e.g. `environment variable "ERPNET_TOKEN"`;
	// empty for Parse and ParseWith.
	Source string
	// Reason says what is wrong, e.g. "has 63 characters after \"enrt_\", want 64".
	Reason string
}

// Error implements error.
func (e *ParseError) Error() string {
	msg := "reftoken: " + ErrMalformed.Error()
	if e.Source != "" {
		msg += " in " + e.Source
	}
	return msg + ": " + e.Reason
}

// Is makes a ParseError match [ErrMalformed] and [ErrMisconfigured].
func (e *ParseError) Is(target error) bool {
	return target == ErrMalformed || target == ErrMisconfigured
}

// Reasons given by ParseError. They contain no input; %d stands for a length or an offset.
// The fuzz test checks every message against this list.
const (
	reasonEmpty      = "is empty"
	reasonBlank      = "contains only whitespace"
	reasonScheme     = "starts with an authorization scheme (\"Bearer \"): give the token alone"
	reasonHeaderName = "starts with a header name (\"X-Api-Key:\"): give the token alone"
	reasonQuoted     = "is enclosed in quotes: remove them"
	reasonPrefixCase = "prefix must be lower-case \"enrt_\""
	reasonNoPrefix   = "does not start with \"enrt_\""
	reasonWhitespace = "contains whitespace at offset %d"
	reasonControl    = "contains a control character at offset %d"
	reasonNonASCII   = "contains a non-ASCII character at offset %d"
	reasonNotHex     = "contains a character that is not a hexadecimal digit at offset %d"
	reasonLowerHex   = "contains a lower-case hexadecimal digit at offset %d: the digits must be upper-case"
	reasonNotB64     = "contains a character outside the RFC 6750 b64token alphabet at offset %d"
	reasonPadding    = "has a character after '=' padding at offset %d"
	reasonLength     = "has %d characters after \"enrt_\", want 64"
	reasonTooShort   = "has %d characters after \"enrt_\", want at least %d"
	reasonTooLong    = "has %d characters after \"enrt_\", want at most %d"
	reasonNoBody     = "has no characters after \"enrt_\""
)

// parseReasons lists every reason format, for tests.
var parseReasons = []string{reasonEmpty, reasonBlank, reasonScheme, reasonHeaderName, reasonQuoted,
	reasonPrefixCase, reasonNoPrefix, reasonWhitespace, reasonControl, reasonNonASCII, reasonNotHex,
	reasonLowerHex, reasonNotB64, reasonPadding, reasonLength, reasonTooShort, reasonTooLong,
	reasonNoBody}

// trim removes a leading UTF-8 byte order mark and surrounding ASCII/Unicode whitespace.
func trim(s string) string {
	s = strings.TrimSpace(s)
	s = strings.TrimPrefix(s, "\uFEFF")
	return strings.TrimSpace(s)
}

// check returns the trimmed token, or a reason why s is not one.
func check(s string, opts ParseOptions) (string, string) {
	if s == "" {
		return "", reasonEmpty
	}
	s = trim(s)
	if s == "" {
		return "", reasonBlank
	}
	if len(s) < len(Prefix) || s[:len(Prefix)] != Prefix {
		return "", prefixReason(s)
	}
	body := s[len(Prefix):]
	if body == "" {
		return "", reasonNoBody
	}
	padding := false
	for i := 0; i < len(body); i++ {
		c := body[i]
		off := len(Prefix) + i
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f':
			return "", fmt.Sprintf(reasonWhitespace, off)
		case c < 0x20 || c == 0x7f:
			return "", fmt.Sprintf(reasonControl, off)
		case c >= 0x80:
			return "", fmt.Sprintf(reasonNonASCII, off)
		}
		if opts.B64Token {
			if padding && c != '=' {
				return "", fmt.Sprintf(reasonPadding, off)
			}
			switch {
			case c == '=':
				if i == 0 {
					return "", fmt.Sprintf(reasonNotB64, off)
				}
				padding = true
			case !isB64TokenChar(c):
				return "", fmt.Sprintf(reasonNotB64, off)
			}
			continue
		}
		switch {
		case c >= '0' && c <= '9', c >= 'A' && c <= 'F':
		case c >= 'a' && c <= 'f':
			return "", fmt.Sprintf(reasonLowerHex, off)
		default:
			return "", fmt.Sprintf(reasonNotHex, off)
		}
	}
	n := len(body)
	switch {
	case !opts.AnyLength && n != BodyLen:
		return "", fmt.Sprintf(reasonLength, n)
	case opts.AnyLength && n < MinBodyLen:
		return "", fmt.Sprintf(reasonTooShort, n, MinBodyLen)
	case opts.AnyLength && n > MaxBodyLen:
		return "", fmt.Sprintf(reasonTooLong, n, MaxBodyLen)
	}
	return s, ""
}

// prefixReason explains why s (trimmed, non-empty) does not start with Prefix.
func prefixReason(s string) string {
	switch {
	case len(s) >= 7 && strings.EqualFold(s[:7], "bearer "):
		return reasonScheme
	case len(s) >= 10 && strings.EqualFold(s[:10], "x-api-key:"):
		return reasonHeaderName
	case s[0] == '"' || s[0] == '\'' || s[0] == '`':
		return reasonQuoted
	case len(s) >= len(Prefix) && strings.EqualFold(s[:len(Prefix)], Prefix):
		return reasonPrefixCase
	}
	return reasonNoPrefix
}

func isB64TokenChar(c byte) bool {
	return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/'
}

// RevealSecret returns the token's value, "" for the zero Token. It is the only way to read the
// value: call it only where the token must leave the program (a header, a secret store), never
// to log or print.
func (t Token) RevealSecret() string {
	if t.s == nil {
		return ""
	}
	return t.s.reveal()
}

// IsZero reports whether t is the zero (empty) Token.
func (t Token) IsZero() bool { return t.s == nil }

// Equal reports whether t and u hold the same value. The comparison takes time independent of
// where the values differ.
func (t Token) Equal(u Token) bool {
	a, b := t.RevealSecret(), u.RevealSecret()
	if len(a) != len(b) {
		return false
	}
	var d byte
	for i := 0; i < len(a); i++ {
		d |= a[i] ^ b[i]
	}
	return d == 0
}

// String returns "enrt_…(redacted)", or "enrt_(empty)" for the zero Token.
func (t Token) String() string {
	if t.s == nil {
		return redactedEmpty
	}
	return Redacted
}

// GoString returns `reftoken.Token("enrt_…(redacted)")`, for %#v.
func (t Token) GoString() string {
	return "reftoken.Token(" + strconv.Quote(t.String()) + ")"
}

// Format implements fmt.Formatter so that every verb (%v %+v %s %q %x %X %d ...) prints the
// redacted form: %#v prints GoString, %q a quoted String, the others String.
func (t Token) Format(f fmt.State, verb rune) {
	var out string
	switch {
	case verb == 'v' && f.Flag('#'):
		out = t.GoString()
	case verb == 'q':
		out = strconv.Quote(t.String())
	default:
		out = t.String()
	}
	if w, ok := f.Width(); ok && w > len([]rune(out)) {
		pad := strings.Repeat(" ", w-len([]rune(out)))
		if f.Flag('-') {
			out += pad
		} else {
			out = pad + out
		}
	}
	_, _ = f.Write([]byte(out))
}

// LogValue implements slog.LogValuer: a Token logs as "enrt_…(redacted)".
func (t Token) LogValue() slog.Value { return slog.StringValue(t.String()) }

// MarshalText implements encoding.TextMarshaler with the redacted form, so that a Token in a
// configuration struct can be dumped safely. It does not round-trip: UnmarshalText refuses the
// redacted form.
func (t Token) MarshalText() ([]byte, error) { return []byte(t.String()), nil }

// MarshalJSON implements json.Marshaler with the redacted form as a JSON string.
func (t Token) MarshalJSON() ([]byte, error) { return []byte(strconv.Quote(t.String())), nil }

// UnmarshalText implements encoding.TextUnmarshaler with [Parse], so that configuration
// loaders (JSON, environment decoders) can fill a Token field. An error is a [*ParseError].
func (t *Token) UnmarshalText(b []byte) error {
	v, err := Parse(string(b))
	if err != nil {
		return err
	}
	*t = v
	return nil
}

// TokenSource returns an oauth2.TokenSource that yields t as a Bearer access token without
// expiry, for code built on golang.org/x/oauth2. Each call returns a fresh *oauth2.Token,
// which holds the value in clear: do not print it. The source of the zero Token returns an
// error matching [ErrMisconfigured]. Prefer [Token.Transport], which also binds the token to
// its instance and removes other credentials.
func (t Token) TokenSource() oauth2.TokenSource { return staticSource{t} }

type staticSource struct{ t Token }

func (s staticSource) Token() (*oauth2.Token, error) {
	if s.t.IsZero() {
		return nil, errZeroToken
	}
	return &oauth2.Token{AccessToken: s.t.RevealSecret(), TokenType: "Bearer"}, nil
}

var errZeroToken = &autherr.ConfigError{Field: "reftoken.Token", Reason: "is empty (the zero Token)"}
