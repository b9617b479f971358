// Package bffhook lets package bff read the few parts of an
// authcode.Client that its public API does not show, without adding
// exported names to authcode: package authcode fills in Of (authcode/bff.go)
// when it is initialised, and bff calls it once per bff.New.
//
// Everything here is read-only: bff signs users in and out through the
// Client's own handlers and calls APIs through its UserClient.
package bffhook

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/erpnetgo/auth/internal/hook"
)

// Client is what bff needs of an authcode.Client.
type Client struct {
	// Web reports whether the Client has a RedirectURL (serves SignIn and
	// Callback).
	Web bool
	// SessionTTL is the lifetime of a session's cookie, counted from the
	// sign-in (Config.SessionTTL after defaults).
	SessionTTL time.Duration
	// Now is the Client's clock, never nil.
	Now func() time.Time
	// Logger is the Client's logger, never nil.
	Logger *slog.Logger
	// Report sends events to the Client's Hooks with the flow "bff".
	Report *hook.Reporter
	// SignedOut is where a browser goes after signing out when it has no
	// session to end: Config.PostLogoutRedirectURL, else
	// Config.DefaultReturnPath.
	SignedOut string
	// SessionID opens r's session cookie and returns the session id it
	// holds, without reading the Store.
	SessionID func(r *http.Request) (string, bool)
	// Page writes the Client's plain-words HTML page (no Go error text).
	Page func(w http.ResponseWriter, status int, title, msg, extraHTML string)
}

// Of returns what bff needs of c, an *authcode.Client; ok is false for
// anything else (a nil Client among them). Package authcode sets it.
var Of func(c any) (cl *Client, ok bool)
