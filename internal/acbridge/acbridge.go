// Package acbridge lets package instances use the few parts of authcode it
// needs to serve many ERP.net instances through one callback and one cookie
// name, without exporting them from authcode. authcode fills in the
// functions below when it is initialised (authcode/bridge.go); the values
// passed as any are *authcode.Client and *authcode.Session.
package acbridge

import (
	"net/http"
	"time"
)

// Functions authcode registers.
var (
	// Bind makes client, just built by authcode.New and not yet used or
	// shared, one instance's client: tag (URL- and cookie-safe, without
	// '.') then ends the state of each of its sign-in attempts and starts
	// the value of its session cookie, so that one callback and one cookie
	// name serve every instance, and the instance an attempt or a cookie
	// belongs to can be read without opening it. A Client's attempt
	// cookies are bound to its Authority whether bound or not.
	Bind func(client any, tag string)
	// CookieTag returns the tag at the start of the session cookie of r,
	// as client names and reads that cookie; ok is false without one.
	CookieTag func(client any, r *http.Request) (tag string, ok bool)
	// ClientOf returns the Client that handed out session, or nil.
	ClientOf func(session any) any
	// Fail renders a handler error as client's handlers do: its
	// ErrorHandler, or the built-in page (JSON for API callers), with the
	// cause logged under a reference.
	Fail func(client any, w http.ResponseWriter, r *http.Request, status int, err error)
	// Challenge asks the caller to sign in as client's RequireUser does: a
	// redirect to its SignInPath for browsers, 401 JSON for API callers.
	Challenge func(client any, w http.ResponseWriter, r *http.Request)
	// NewMemoryStore returns authcode's in-memory Store (an authcode.Store
	// and RefreshLocker), so that an instance's sessions outlive a rebuilt
	// Client (a new secret) and are dropped with the instance.
	NewMemoryStore func(now func() time.Time) any
)

// Problem is an error whose plain-words explanation the caller chose:
// authcode's error pages show Title and Message and report Code, where
// they would otherwise explain Err themselves.
type Problem struct {
	Code, Title, Message string
	Err                  error
}

func (p *Problem) Error() string {
	if p.Err != nil {
		return p.Err.Error()
	}
	return p.Message
}

func (p *Problem) Unwrap() error { return p.Err }
