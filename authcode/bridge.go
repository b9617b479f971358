package authcode

import (
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/erpnetgo/auth/authcode/internal/sessions"
	"github.com/erpnetgo/auth/internal/acbridge"
	"github.com/erpnetgo/auth/internal/clock"
)

// binding makes a Client one of package instances' per-instance clients
// (see internal/acbridge): its tag ends each attempt's state and starts
// the session cookie's value, after tagSep.
type binding struct {
	tag string
}

const tagSep = "."

func init() {
	acbridge.Bind = func(client any, tag string) { client.(*Client).inst = &binding{tag: tag} }
	acbridge.CookieTag = func(client any, r *http.Request) (string, bool) {
		v, ok := cookieValue(r.Header, client.(*Client).cookie)
		if !ok {
			return "", false
		}
		tag, _, ok := strings.Cut(v, tagSep)
		return tag, ok && tag != ""
	}
	acbridge.ClientOf = func(session any) any {
		if s, _ := session.(*Session); s != nil && s.sn != nil {
			return s.sn.Owner()
		}
		return nil
	}
	acbridge.Fail = func(client any, w http.ResponseWriter, r *http.Request, status int, err error) {
		client.(*Client).fail(w, r, status, err)
	}
	acbridge.Challenge = func(client any, w http.ResponseWriter, r *http.Request) {
		client.(*Client).challenge(w, r)
	}
	acbridge.NewMemoryStore = func(now func() time.Time) any { return sessions.NewMemoryStore(clock.From(now)) }
}

// stateTag is what ends the state of c's sign-in attempts: nothing unless
// c is bound to an instance.
func (c *Client) stateTag() string {
	if c.inst == nil {
		return ""
	}
	return tagSep + c.inst.tag
}

// cookiePrefix is what starts c's session cookie value.
func (c *Client) cookiePrefix() string {
	if c.inst == nil {
		return ""
	}
	return c.inst.tag + tagSep
}

// sessionCookieValue returns the sealed part of the session cookie in h:
// the cookie's value, without the instance tag of a bound Client (a cookie
// of another instance is not this Client's).
func (c *Client) sessionCookieValue(h http.Header) (string, bool) {
	v, ok := cookieValue(h, c.cookie)
	if ok && c.inst != nil {
		v, ok = strings.CutPrefix(v, c.cookiePrefix())
	}
	return v, ok
}

// attemptAAD binds an attempt cookie to its name and to this Client's
// identity server and client_id: a Client never opens another's attempt,
// even when both share the cookie name and keys.
func (c *Client) attemptAAD(name string) []byte {
	return []byte("erpnetgo/authcode attempt cookie\x00" + name + "\x00" + c.cfg.Authority + "\x00" + c.cfg.ClientID)
}

// explainProblem is explain and errorCode for an *acbridge.Problem.
func explainProblem(err error) (code, title, msg string, ok bool) {
	var p *acbridge.Problem
	if errors.As(err, &p) {
		return p.Code, p.Title, p.Message, true
	}
	return "", "", "", false
}
