// Package credential is what the credential transport sends: one header
// value, built once per token, and the mark of the ERP.net API session it
// opens on first use. Token caches make one per token; reference tokens
// make one for their life.
package credential

import (
	"strings"
	"sync/atomic"
)

// Headers are the request headers that carry credentials to ERP.net: the
// SDK's transport removes every one of them before it adds its own, and
// hybrid's guard refuses a request that already carries one.
var Headers = []string{"Authorization", "X-Api-Key", "Api-Key", "Cookie"}

// IsHeader reports whether the header named k (in any case) carries a
// credential.
func IsHeader(k string) bool {
	for _, c := range Headers {
		if len(k) == len(c) && (k == c || strings.EqualFold(k, c)) {
			return true
		}
	}
	return false
}

// Credential is one credential header value. It is immutable but for its
// API-session mark; never change Value.
type Credential struct {
	// Value is the header's value ("Bearer <token>", or a reference token
	// for X-Api-Key), ready to put in a header map.
	Value []string
	// session is set once the API accepted a credential of this API
	// session.
	session *atomic.Bool
}

// New returns a Credential for value. Credentials that share session
// belong to one ERP.net API session (a user's sign-in: a refresh keeps
// it); nil gives the credential an API session of its own.
func New(value string, session *atomic.Bool) *Credential {
	c := new(Credential)
	c.Init(value, session)
	return c
}

// Init sets up c in place (a credential embedded in a larger struct) as New
// does.
func (c *Credential) Init(value string, session *atomic.Bool) {
	if session == nil {
		session = new(atomic.Bool)
	}
	c.Value, c.session = []string{value}, session
}

// Opened reports true once per API session: the first time the API accepts
// a credential of it (the transport calls it on a success answer, which on
// ERP.net means an API session, a license slot, was opened).
func (c *Credential) Opened() bool {
	return !c.session.Load() && c.session.CompareAndSwap(false, true)
}
