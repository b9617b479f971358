package authcode

import (
	"net/url"
	"strings"
)

// maxReturnPath bounds the return path kept in a sign-in attempt.
const maxReturnPath = 2048

// safeReturnPath reports whether p is a local path this site may redirect
// to after sign-in, and returns it. It accepts only an absolute path
// ("/x?y") on this origin: no scheme, host or user info; it rejects
// protocol-relative "//host" and the "/\host" form browsers treat alike,
// backslashes and control characters anywhere (browsers drop tabs and
// newlines, turning "/\t/evil" into "//evil"), and the same tricks hidden
// behind one or more layers of percent-encoding.
func safeReturnPath(p string) (string, bool) {
	if p == "" || len(p) > maxReturnPath || p[0] != '/' {
		return "", false
	}
	s := p
	for i := 0; ; i++ {
		if !plainLocal(s) {
			return "", false
		}
		d, err := url.PathUnescape(s)
		if err != nil {
			// A malformed escape: refuse rather than guess how a browser
			// or the app would read it.
			return "", false
		}
		if d == s {
			break
		}
		if i == 3 {
			// Still encoded after several layers: refuse.
			return "", false
		}
		s = d
	}
	u, err := url.Parse(p)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" || !strings.HasPrefix(u.Path, "/") {
		return "", false
	}
	return p, true
}

// plainLocal checks one decoding layer of a candidate return path.
func plainLocal(s string) bool {
	if s == "" || s[0] != '/' {
		return false
	}
	if len(s) > 1 && (s[1] == '/' || s[1] == '\\') {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c == 0x7f || c == '\\' {
			return false
		}
	}
	// A fragment-free, scheme-free path: "/x:y" is fine, but "/https:/..."
	// is only a path too. Reject unicode look-alikes of '/' and '\' that
	// some browsers normalise (e.g. U+FF0F, U+FF3C, U+2215).
	for _, r := range s {
		switch r {
		case '\uff0f', '\uff3c', '\u2215', '\u2216', '\u29f5', '\ufe68', '\u3002':
			return false
		}
	}
	return true
}
