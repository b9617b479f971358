package authcode

import (
	"encoding/base64"
	"net/http"
	"net/textproto"
	"strings"
	"sync"
)

// setSessionCookie sets the cookie holding the sealed session id.
func (c *Client) setSessionCookie(w http.ResponseWriter, id string) {
	http.SetCookie(w, &http.Cookie{
		Name:     c.cookie,
		Value:    c.cookiePrefix() + base64.RawURLEncoding.EncodeToString(c.sealer.Seal([]byte(id), c.cookieAAD)),
		Path:     "/",
		MaxAge:   int(c.cfg.SessionTTL.Seconds()),
		HttpOnly: true,
		Secure:   c.secure,
		SameSite: http.SameSiteLaxMode,
	})
}

// sessionID opens the session cookie of r.
func (c *Client) sessionID(r *http.Request) (string, bool) {
	buf := cookieBufs.Get().(*[512]byte)
	defer cookieBufs.Put(buf)
	id, ok := c.openSessionCookie(r, buf)
	return string(id), ok
}

// openSessionCookie opens the session cookie of r in buf, without
// allocating: the id it returns is in buf.
func (c *Client) openSessionCookie(r *http.Request, buf *[512]byte) ([]byte, bool) {
	v, ok := c.sessionCookieValue(r.Header)
	if !ok || v == "" || len(v) > len(buf) {
		return nil, false
	}
	var src [512]byte // on the stack
	n, err := base64.RawURLEncoding.Decode(buf[:], src[:copy(src[:], v)])
	if err != nil {
		return nil, false
	}
	id, err := c.sealer.OpenInPlace(buf[:n], c.cookieAAD)
	if err != nil || len(id) == 0 {
		c.log.Debug("authcode: session cookie cannot be opened (tampered, or sealed with a retired key)")
		return nil, false
	}
	return id, true
}

// cookieBufs hold session cookies while they are opened (the AEAD's input
// escapes, so a stack buffer would not stay on the stack).
var cookieBufs = sync.Pool{New: func() any { return new([512]byte) }}

// cookieValue returns the value of the first cookie named name in h's
// Cookie lines that net/http accepts, as http.Request.Cookie does
// (surrounding double quotes removed), without allocating.
func cookieValue(h http.Header, name string) (string, bool) {
	for _, line := range h["Cookie"] {
		for line != "" {
			var part string
			part, line, _ = strings.Cut(line, ";")
			k, v, _ := strings.Cut(textproto.TrimString(part), "=")
			if textproto.TrimString(k) != name {
				continue
			}
			if len(v) > 1 && v[0] == '"' && v[len(v)-1] == '"' {
				v = v[1 : len(v)-1]
			}
			if validCookieValue(v) {
				return v, true
			}
		}
	}
	return "", false
}

// validCookieValue reports whether net/http accepts v as a cookie value.
func validCookieValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if b := v[i]; b < 0x20 || b >= 0x7f || b == '"' || b == ';' || b == '\\' {
			return false
		}
	}
	return true
}
