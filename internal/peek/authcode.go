package peek

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/erpnetgo/auth/internal/hook"
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

// BFFClient is what bff needs of an authcode.Client (read-only: bff signs
// users in and out through the Client's own handlers and calls APIs through
// its UserClient).
type BFFClient struct {
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

// BFFOf returns what bff needs of c, an *authcode.Client; ok is false for
// anything else (a nil Client among them). Package authcode sets it.
var BFFOf func(c any) (cl *BFFClient, ok bool)
