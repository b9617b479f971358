package reftoken

import (
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/erpnetgo/auth/internal/redact"
	"github.com/erpnetgo/auth/internal/retry"
)

// ResponseError is an API answer that is not a success, as classified by [CheckResponse]. It
// carries what a caller needs to decide and report, and never a token.
type ResponseError struct {
	// Method and URL identify the request; URL has no query string and no user information.
	Method, URL string
	// StatusCode is the HTTP status.
	StatusCode int
	// Code is the "error" parameter of the WWW-Authenticate challenge (RFC 6750), e.g.
	// "invalid_token"; empty when the server sent none.
	Code string
	// Description is the challenge's "error_description", shortened, with anything shaped
	// like a reference token removed.
	Description string
	// RetryAfter is the server's Retry-After, 0 when absent.
	RetryAfter time.Duration
	// Kind is ErrTokenRejected (401), ErrNotPermitted (403), ErrTemporary (429, 502, 503,
	// 504) or nil (any other status of 400 or more).
	Kind error
}

// Error implements error.
func (e *ResponseError) Error() string {
	var b strings.Builder
	b.WriteString("reftoken: ")
	if e.Method != "" || e.URL != "" {
		b.WriteString(e.Method)
		b.WriteString(" ")
		b.WriteString(e.URL)
		b.WriteString(": ")
	}
	b.WriteString("HTTP ")
	b.WriteString(strconv.Itoa(e.StatusCode))
	if t := http.StatusText(e.StatusCode); t != "" {
		b.WriteString(" ")
		b.WriteString(t)
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
	if e.RetryAfter > 0 {
		b.WriteString(", retry after ")
		b.WriteString(e.RetryAfter.String())
	}
	switch e.Kind {
	case ErrTokenRejected:
		b.WriteString(" [" + ErrTokenRejected.Error() + ": issue a new token]")
	case nil:
	default:
		b.WriteString(" [" + e.Kind.Error() + "]")
	}
	return b.String()
}

// Unwrap returns Kind.
func (e *ResponseError) Unwrap() error { return e.Kind }

// CheckResponse returns nil for a response with a status below 400, and otherwise a
// [*ResponseError]: 401 matches [ErrTokenRejected], 403 matches [ErrNotPermitted], 429, 502,
// 503 and 504 match [ErrTemporary]. It reads only the status line and headers: the body is left
// for the caller (a Domain API business error comes as HTTP 500 with a JSON body), who must
// still close it.
func CheckResponse(resp *http.Response) error {
	if resp == nil || resp.StatusCode < 400 {
		return nil
	}
	e := &ResponseError{
		StatusCode: resp.StatusCode,
		RetryAfter: retry.ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now()),
	}
	if r := resp.Request; r != nil && r.URL != nil {
		u := *r.URL
		u.User, u.RawQuery, u.ForceQuery, u.Fragment, u.RawFragment = nil, "", false, "", ""
		e.Method, e.URL = r.Method, scrub(u.String())
		if e.Method == "" {
			e.Method = http.MethodGet
		}
	}
	for _, ch := range resp.Header.Values("WWW-Authenticate") {
		if code, desc, ok := bearerError(ch); ok {
			e.Code = scrub(redact.Truncate(code, 64))
			e.Description = scrub(redact.Truncate(desc, 200))
			break
		}
	}
	switch resp.StatusCode {
	case http.StatusUnauthorized:
		e.Kind = ErrTokenRejected
	case http.StatusForbidden:
		e.Kind = ErrNotPermitted
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		e.Kind = ErrTemporary
	}
	return e
}

// tokenShaped matches anything that looks like a reference token, or a long run of hex digits
// (a token's body without its prefix), so that a server echoing a token cannot put it into our
// errors.
var tokenShaped = regexp.MustCompile(`(?i)enrt_[A-Za-z0-9+/=._~-]*|[0-9A-Fa-f]{32,}`)

func scrub(s string) string {
	s = tokenShaped.ReplaceAllString(s, redact.Mask)
	// Control characters would let a hostile server forge log lines.
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}

// bearerError finds the error and error_description parameters of a Bearer challenge such as
// `Bearer realm="x", error="invalid_token", error_description="The token expired"`.
func bearerError(ch string) (code, desc string, ok bool) {
	i := strings.IndexFunc(ch, func(r rune) bool { return r == ' ' || r == '\t' })
	if i < 0 || !strings.EqualFold(ch[:i], "Bearer") {
		return "", "", false
	}
	for _, p := range splitParams(ch[i+1:]) {
		switch strings.ToLower(p[0]) {
		case "error":
			code = p[1]
		case "error_description":
			desc = p[1]
		}
	}
	return code, desc, code != "" || desc != ""
}

// splitParams parses a comma-separated auth-param list with optional quoted-string values.
func splitParams(s string) [][2]string {
	var out [][2]string
	for len(s) > 0 && len(out) < 32 {
		s = strings.TrimLeft(s, " \t,")
		eq := strings.IndexByte(s, '=')
		if eq <= 0 {
			break
		}
		name := strings.TrimSpace(s[:eq])
		s = strings.TrimLeft(s[eq+1:], " \t")
		var val string
		if strings.HasPrefix(s, `"`) {
			var b strings.Builder
			j := 1
			for ; j < len(s) && s[j] != '"'; j++ {
				if s[j] == '\\' && j+1 < len(s) {
					j++
				}
				b.WriteByte(s[j])
			}
			val = b.String()
			if j < len(s) {
				j++
			}
			s = s[j:]
		} else {
			end := strings.IndexByte(s, ',')
			if end < 0 {
				end = len(s)
			}
			val = strings.TrimSpace(s[:end])
			s = s[end:]
		}
		out = append(out, [2]string{name, val})
	}
	return out
}
