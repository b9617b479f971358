package reftoken

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/oauth2"

	"github.com/erpnetgo/auth"
)

// Prefix starts every ERP.net reference token.
const Prefix = "enrt_"

// bodyLen is the length of the part after [Prefix]: 64 hexadecimal digits.
const bodyLen = 64

// redacted is what a Token prints instead of its value.
const redacted = Prefix + "…(redacted)"

// redactedEmpty is what the zero Token prints.
const redactedEmpty = Prefix + "(empty)"

// Errors callers branch on with errors.Is, besides the SDK-wide [auth.ErrTemporary] and
// [auth.ErrMisconfigured].
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
)

// Token is a parsed reference token. Its value never appears in fmt output, logs, JSON or
// errors; [Token.RevealSecret] is the only way to read it. The zero Token is empty: it prints
// as "enrt_(empty)", and [Token.Client] and [Token.TokenSource] refuse it.
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
	v, reason := check(s)
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
	// empty for Parse.
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

// Is makes a ParseError match [ErrMalformed] and [auth.ErrMisconfigured].
func (e *ParseError) Is(target error) bool {
	return target == ErrMalformed || target == auth.ErrMisconfigured
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
	reasonLength     = "has %d characters after \"enrt_\", want 64"
	reasonNoBody     = "has no characters after \"enrt_\""
)

// parseReasons lists every reason format, for tests.
var parseReasons = []string{reasonEmpty, reasonBlank, reasonScheme, reasonHeaderName, reasonQuoted,
	reasonPrefixCase, reasonNoPrefix, reasonWhitespace, reasonControl, reasonNonASCII, reasonNotHex,
	reasonLowerHex, reasonLength, reasonNoBody}

// trim removes a leading UTF-8 byte order mark and surrounding ASCII/Unicode whitespace.
func trim(s string) string {
	s = strings.TrimSpace(s)
	s = strings.TrimPrefix(s, "\uFEFF")
	return strings.TrimSpace(s)
}

// check returns the trimmed token, or a reason why s is not one.
func check(s string) (string, string) {
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
	// Damage first (a token cut by a line break, pasted with a stray
	// character), then the length, then the digits: "enrt_abc" is too
	// short before it is lower-case.
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
	}
	if len(body) != bodyLen {
		return "", fmt.Sprintf(reasonLength, len(body))
	}
	for i := 0; i < len(body); i++ {
		c := body[i]
		off := len(Prefix) + i
		switch {
		case c >= '0' && c <= '9', c >= 'A' && c <= 'F':
		case c >= 'a' && c <= 'f':
			return "", fmt.Sprintf(reasonLowerHex, off)
		default:
			return "", fmt.Sprintf(reasonNotHex, off)
		}
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
	return redacted
}

// GoString returns `reftoken.Token("enrt_…(redacted)")`, for %#v.
func (t Token) GoString() string {
	return "reftoken.Token(" + strconv.Quote(t.String()) + ")"
}

// MarshalText implements encoding.TextMarshaler with the redacted form, so that a Token in a
// configuration struct can be dumped safely: encoding/json writes it as a JSON string, and
// slog's text and JSON handlers log it redacted. It does not round-trip: UnmarshalText refuses
// the redacted form.
func (t Token) MarshalText() ([]byte, error) { return []byte(t.String()), nil }

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

// TokenSource returns an oauth2.TokenSource that yields t as a [Bearer] access token without
// expiry, for code built on golang.org/x/oauth2. Each call returns a fresh *oauth2.Token,
// which holds the value in clear: do not print it. The source of the zero Token returns an
// error matching [auth.ErrMisconfigured]. Prefer [Token.Client], which also binds the token to
// its instance and removes other credentials.
func (t Token) TokenSource() oauth2.TokenSource { return staticSource{t} }

type staticSource struct{ t Token }

func (s staticSource) Token() (*oauth2.Token, error) {
	if s.t.IsZero() {
		return nil, errZeroToken
	}
	return &oauth2.Token{AccessToken: s.t.RevealSecret(), TokenType: "Bearer"}, nil
}

var errZeroToken = &auth.ConfigError{Field: "Token", Reason: "is empty (the zero Token)"}
