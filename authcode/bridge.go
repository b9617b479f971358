package authcode

import (
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/erpnetgo/auth/authcode/internal/sessions"
	"github.com/erpnetgo/auth/internal/clock"
	"github.com/erpnetgo/auth/internal/hook"
	"github.com/erpnetgo/auth/internal/peek"
)

// Packages instances and bff reach the parts of a Client they need through
// internal/peek; nothing here is exported.

// binding makes a Client one of package instances' per-instance clients
// (see internal/peek): its tag ends each attempt's state and starts
// the session cookie's value, after tagSep.
type binding struct {
	tag string
}

const tagSep = "."

func init() {
	peek.Bind = func(client any, tag string) { client.(*Client).inst = &binding{tag: tag} }
	peek.CookieTag = func(client any, r *http.Request) (string, bool) {
		v, ok := cookieValue(r.Header, client.(*Client).cookie)
		if !ok {
			return "", false
		}
		tag, _, ok := strings.Cut(v, tagSep)
		return tag, ok && tag != ""
	}
	peek.ClientOf = func(session any) any {
		if s, _ := session.(*Session); s != nil && s.sn != nil {
			return s.sn.Owner()
		}
		return nil
	}
	peek.Fail = func(client any, w http.ResponseWriter, r *http.Request, status int, err error) {
		client.(*Client).fail(w, r, status, err)
	}
	peek.Challenge = func(client any, w http.ResponseWriter, r *http.Request) {
		client.(*Client).challenge(w, r)
	}
	peek.NewMemoryStore = func(now func() time.Time) any { return sessions.NewMemoryStore(clock.From(now)) }

	peek.BFFOf = func(v any) (*peek.BFFClient, bool) {
		c, ok := v.(*Client)
		if !ok || c == nil {
			return nil, false
		}
		signedOut := c.cfg.PostLogoutRedirectURL
		if signedOut == "" {
			signedOut = c.cfg.DefaultReturnPath
		}
		return &peek.BFFClient{
			Web:        c.cfg.RedirectURL != "",
			SessionTTL: c.cfg.SessionTTL,
			Now:        c.now,
			Logger:     c.log,
			Report:     &hook.Reporter{Hooks: c.cfg.Hooks, Flow: "bff", ClientID: c.cfg.ClientID, Authority: c.cfg.Authority},
			SignedOut:  signedOut,
			SessionID:  c.sessionID,
			Page: func(w http.ResponseWriter, status int, title, msg, extraHTML string) {
				noCache(w)
				page(w, status, title, msg, extraHTML, "")
			},
		}, true
	}
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

// explainProblem is explain and errorCode for an *peek.Problem.
func explainProblem(err error) (code, title, msg string, ok bool) {
	var p *peek.Problem
	if errors.As(err, &p) {
		return p.Code, p.Title, p.Message, true
	}
	return "", "", "", false
}
