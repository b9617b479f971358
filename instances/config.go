package instances

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/erpnetgo/auth"
	"github.com/erpnetgo/auth/authcode"
	"github.com/erpnetgo/auth/internal/config"
)

// defaultMarketplaceURL is where Config.MarketplaceURL points when empty.
const defaultMarketplaceURL = "https://marketplace.erp.net"

// instanceParam is the query or form parameter that names the instance
// of a sign-in when Config.Resolve is nil.
const instanceParam = "instance"

// maxRoot bounds an instance root: it travels in cookies and in state.
const maxRoot = 255

// Config configures a Registry. Only ClientID is always required;
// RedirectURL is required to serve SignIn and Callback (and so to receive
// Marketplace events, which arrive at it). The fields shared with
// authcode and clientcreds mean the same there and apply to every
// instance's clients.
type Config struct {
	// ClientID is the Trusted Application's ApplicationUri, the same on
	// every instance, e.g. "com.example/vendor".
	ClientID string
	// RedirectURL is the absolute URL of the Callback handler, registered
	// with the Trusted Application on every instance (and the redirect URI
	// of the Marketplace listing, where lifecycle events are posted).
	RedirectURL string
	// PostLogoutRedirectURL is where the identity servers send the browser
	// after sign-out; it must be registered on every instance.
	PostLogoutRedirectURL string
	// Scopes are requested at sign-in; empty means openid, profile,
	// offline_access, read and update (see authcode.Config.Scopes).
	Scopes []string
	// ServiceScopes are requested for service tokens (Service), e.g.
	// "read"; empty asks for every scope the Trusted Application allows.
	ServiceScopes []string
	// Keys are AES keys (16, 24 or 32 bytes) that seal session cookies,
	// sign-in attempts and the secrets in Secrets: the first seals, all
	// open, so keys can be rotated by prepending a new one. Nil means one
	// random key per process (a warning is logged): cookies and secrets
	// then do not survive a restart, so Keys is required with Secrets.
	Keys [][]byte
	// Store keeps the sessions of every instance, each instance under a
	// namespace of its own (a shared store such as authcode/redisstore for
	// replicas; with a RefreshLocker it also orders changes to an
	// instance's record across processes). Nil means memory: one
	// in-memory store per instance, dropped by Remove.
	Store authcode.Store
	// Secrets keeps each instance's record (its client secret, sealed with
	// Keys, and the order of its Marketplace events). Nil means memory, in
	// this process only: instances must then be added again after a
	// restart.
	Secrets SecretStore
	// Resolve says which instance a request is for, as its root (e.g.
	// https://acme.my.erp.net): from the host, a path or a form field; the
	// application decides. SignIn signs the user in there; RequireUser
	// requires that the user signed in there (when Resolve names an
	// instance). Nil means the "instance" query or form parameter of the
	// sign-in request names the root.
	Resolve func(r *http.Request) (root string, err error)
	// MarketplaceURL is the ERP.net Marketplace, whose lifecycle events
	// Callback accepts: its public key is read from
	// <MarketplaceURL>/.well-known/marketplace.json, and only from its
	// host. Empty means https://marketplace.erp.net.
	MarketplaceURL string
	// OnEvent, if set, is called with each Marketplace lifecycle event
	// once the registry has applied it (the instance added or removed),
	// for the application to provision or drop its own data. An error
	// answers the Marketplace 500 and OnEvent sees the event again when
	// the Marketplace delivers it again, so make it idempotent.
	OnEvent func(ctx context.Context, e Event) error

	// SessionTTL is the lifetime of a session (see authcode.Config).
	SessionTTL time.Duration
	// CookieName names the one session cookie of every instance (see
	// authcode.Config).
	CookieName string
	// SignInPath is the path of the SignIn handler (see authcode.Config).
	SignInPath string
	// DefaultReturnPath is where the browser lands after sign-in (see
	// authcode.Config).
	DefaultReturnPath string
	// ErrorHandler renders the app's own page for errors of the handlers
	// (see authcode.Config).
	ErrorHandler func(w http.ResponseWriter, r *http.Request, status int, err *auth.Error)
	// LogUsers adds user names to log records (see authcode.Config).
	LogUsers bool

	// HTTPClient sends the requests to the identity servers and the
	// Marketplace; nil means a client with a 30 s timeout. It is not used
	// for API calls (see Transport).
	HTTPClient *http.Client
	// Transport is the base transport of API calls (UserClient and the
	// Sources' Client); nil means http.DefaultTransport.
	Transport http.RoundTripper
	// Retry tunes retries (see auth.Retry).
	Retry auth.Retry
	// Logger receives diagnostics; nil discards them. Secrets, tokens and
	// cookie values are never logged.
	Logger *slog.Logger
	// Hooks, if set, receive what every instance's clients do (see
	// auth.Hooks); each event's Authority is the instance root it is about
	// (otelauth.Config.IncludeAuthority makes it a metric attribute).
	Hooks *auth.Hooks
	// Now is the clock, for tests; nil means time.Now.
	Now func() time.Time
}

// normalizeRoot checks an instance root and returns the form the registry
// keys it by: scheme and host in lower case, no default port, no trailing
// slash. Roots must be https (http only on loopback hosts), without query,
// fragment or user info.
func normalizeRoot(raw string) (string, error) {
	if len(raw) > maxRoot {
		return "", &auth.ConfigError{Field: "root", Reason: "is longer than 255 characters"}
	}
	if err := config.Authority("root", strings.TrimSpace(raw)); err != nil {
		return "", err
	}
	u, _ := url.Parse(strings.TrimSpace(raw))
	if u.Opaque != "" || strings.ContainsAny(u.Path, "\\") || u.RawPath != "" && u.RawPath != u.EscapedPath() {
		return "", &auth.ConfigError{Field: "root", Reason: "must be a plain URL such as https://acme.my.erp.net"}
	}
	scheme, host := strings.ToLower(u.Scheme), strings.ToLower(u.Host)
	if p := u.Port(); (scheme == "https" && p == "443") || (scheme == "http" && p == "80") {
		host = strings.TrimSuffix(host, ":"+p)
	}
	return scheme + "://" + host + strings.TrimRight(u.EscapedPath(), "/"), nil
}

// errNoInstance is Resolve's default error: the sign-in request names no
// instance.
var errNoInstance = errors.New(`instances: the request names no instance (no "instance" parameter)`)

// ErrUnknownInstance means the registry serves no instance at that root:
// it was never added, or it was removed (Remove, or uninstalled through
// the Marketplace).
var ErrUnknownInstance = errors.New("instances: unknown ERP.net instance")
