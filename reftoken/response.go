package reftoken

import (
	"errors"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/erpnetgo/auth"
	"github.com/erpnetgo/auth/internal/redact"
	"github.com/erpnetgo/auth/internal/retry"
)

// CheckResponse returns nil for a response with a status below 400, and otherwise an
// [*auth.Error] with Op "API request", the StatusCode, the Code and Description of the
// WWW-Authenticate [Bearer] challenge (e.g. "invalid_token"; RFC 6750 section 3,
// https://www.rfc-editor.org/rfc/rfc6750#section-3), the server's RetryAfter,
// and a Kind: [ErrTokenRejected] for 401, [ErrNotPermitted] for 403, [auth.ErrTemporary] for
// 429, 502, 503 and 504 (429 and 503 come back only after the client's retries), nil for any
// other status. Its Err names the request's method and URL (without user information, query or
// fragment). Nothing in it can contain a token. CheckResponse reads only the status line and
// headers: the body is left for the caller (a Domain API business error comes as HTTP 500 with
// a JSON body), who must still close it.
func CheckResponse(resp *http.Response) error {
	if resp == nil || resp.StatusCode < 400 {
		return nil
	}
	e := &auth.Error{
		Op:         "API request",
		StatusCode: resp.StatusCode,
		RetryAfter: retry.ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now()),
	}
	if r := resp.Request; r != nil && r.URL != nil {
		u := *r.URL
		u.User, u.RawQuery, u.ForceQuery, u.Fragment, u.RawFragment = nil, "", false, "", ""
		method := r.Method
		if method == "" {
			method = http.MethodGet
		}
		e.Err = errors.New(scrub(method + " " + u.String()))
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
		e.Kind = auth.ErrTemporary
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

// bearerError finds the error and error_description parameters of a [Bearer] challenge such as
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
