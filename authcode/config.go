package authcode

import (
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/erpnetgo/auth"
	"github.com/erpnetgo/auth/internal/config"
)

// Scopes understood by ERP.net.
const (
	scopeOpenID        = "openid"
	scopeProfile       = "profile"
	scopeOfflineAccess = "offline_access"
	scopeDomainAPI     = "DomainApi" // obsolete; ERP.net v20.1 servers still need it
)

// defaultScopes are requested when [Config.Scopes] is empty.
var defaultScopes = []string{scopeOpenID, scopeProfile, scopeOfflineAccess, "read", "update"}

// Defaults for Config.
const (
	defaultSessionTTL      = 14 * 24 * time.Hour
	attemptTTL             = 10 * time.Minute // how long a sign-in attempt is accepted
	defaultCookieName      = "erpnet_session"
	defaultSignInPath      = "/signin"
	defaultMaxLiveSessions = 10000
)

// Config configures a Client. Only Authority and ClientID are always
// required; RedirectURL is required to serve the web handlers.
type Config struct {
	// Authority is the ERP.net instance root (https://demodb.my.erp.net) or
	// its identity server (https://demodb.my.erp.net/id). Any OpenID
	// provider's issuer works too. http is accepted only for loopback hosts.
	Authority string
	// ClientID is the Trusted Application's ApplicationUri, e.g.
	// "com.example/webapp".
	ClientID string
	// ClientSecret is the confidential client's secret; leave it empty for
	// a public client, which then never sends a secret (PKCE protects it).
	ClientSecret string
	// ClientSecretFile is the path of a file holding the secret instead
	// (a mounted Kubernetes Secret, say), for rotation without a restart:
	// the file is read when the first secret is needed and read again when
	// the identity server refuses the secret (invalid_client) in a code
	// exchange, refresh or revocation; if it then holds another secret the
	// request is sent once more with it, else the call fails at once with
	// auth.ErrMisconfigured. A trailing newline is trimmed; a file readable
	// by others than its owner (mode wider than 0600) gets a warning.
	// Exclusive with ClientSecret.
	ClientSecretFile string
	// RedirectURL is the absolute URL of the Callback handler as registered
	// with the Trusted Application, e.g. https://app.example.com/callback.
	// Required for SignIn and Callback; LoopbackSignIn does not use it, so
	// [New] checks its form when it is set but cannot require it: without
	// it, building SignIn or Callback logs the configuration error, and
	// they answer with a "not set up correctly" page (status 501). https is
	// required except on loopback hosts. ERP.net compares it byte for byte
	// with the registered one: a trailing slash or upper-case letters get a
	// warning at New naming the exact string to register.
	RedirectURL string
	// PostLogoutRedirectURL is where the identity server sends the browser
	// after sign-out; it must be registered with the Trusted Application,
	// byte for byte (checked and warned about as RedirectURL is).
	// Empty: the identity server shows its own page (and, without an
	// end-session endpoint, SignOut redirects to "/").
	PostLogoutRedirectURL string
	// Scopes to request; empty means openid, profile, offline_access, read
	// and update. "openid" is added when missing: this package always
	// verifies an ID token.
	Scopes []string
	// DomainAPI is the Domain API root, e.g.
	// https://demodb.my.erp.net/api/domain/odata/. Empty means the one
	// ERP.net auto-discovery names, else <instance root>/api/domain/odata/.
	// User tokens are sent only to the origins of the Authority, the
	// identity server and this root.
	DomainAPI string
	// LegacyDomainAPIScope adds the obsolete "DomainApi" scope, needed by
	// ERP.net v20.1 servers.
	LegacyDomainAPIScope bool
	// PromptLogin sends prompt=login so the identity server always shows
	// its sign-in screen, even when the user has a session there.
	PromptLogin bool
	// AuthParams are extra authorization request parameters, e.g.
	// login_hint, ui_locales, or prompt=consent (which some OpenID
	// providers require before they issue a refresh token). The parameters
	// this package sets itself (response_type, client_id, redirect_uri,
	// scope, state, nonce, code_challenge, code_challenge_method) cannot be
	// overridden; a prompt given here is combined with PromptLogin.
	AuthParams url.Values

	// Store keeps sessions (with their tokens). Nil means an in-memory
	// store, fine for one process; use a shared store (authcode/redisstore) when
	// several replicas serve the same users.
	Store Store
	// SessionTTL is the lifetime of a session in the Store and of its
	// cookie; zero means 14 days. Every token refresh extends the Store
	// entry; the cookie's lifetime is fixed at sign-in.
	SessionTTL time.Duration
	// Keys are AES keys (16, 24 or 32 bytes) that seal the cookies: the
	// first seals, all open, so keys can be rotated by prepending a new
	// one. Nil means one random key per process: sessions then do not
	// survive a restart and cannot span replicas (a warning is logged).
	Keys [][]byte
	// CookieName is the session cookie's name; empty means
	// "erpnet_session", with the "__Host-" prefix over https. Sign-in
	// attempt cookies are named after it.
	CookieName string
	// SignInPath is the path of the SignIn handler, where RequireUser sends
	// browsers that are not signed in; empty means "/signin".
	SignInPath string
	// DefaultReturnPath is where the browser lands after sign-in when the
	// sign-in request named no (valid) return path; empty means "/".
	DefaultReturnPath string

	// RefreshWindow is how long before expiry an access token is refreshed
	// in the background; zero means the token cache's default (5 minutes,
	// or the last 20% of a short token's life).
	RefreshWindow time.Duration
	// AuthStyle is how the client secret is sent to the token endpoint;
	// the zero value, oauth2.AuthStyleAutoDetect, uses HTTP Basic unless
	// discovery lists only client_secret_post. Public clients (no
	// ClientSecret) never send a secret.
	AuthStyle oauth2.AuthStyle
	// IDTokenSigningAlgs are the accepted ID token signature algorithms;
	// empty means RS256 only (what ERP.net uses). "none" and HMAC
	// algorithms are never accepted.
	IDTokenSigningAlgs []string
	// MaxLiveSessions bounds the sessions this process holds in memory
	// with their token caches (about 1.5 KiB each, beyond the Store's copy);
	// zero means 10,000. Those not used for longest go first; an evicted
	// session is simply reloaded from the Store when next used, which
	// costs a few microseconds. Set it to the number of users signed in at
	// once if memory allows.
	MaxLiveSessions int

	// HTTPClient sends the requests to the identity server (discovery,
	// JWKS, token, revocation); nil means a client with a 30 s timeout. It
	// is not used for API calls (see Transport).
	HTTPClient *http.Client
	// Transport is the base transport of API calls made through
	// UserClient; nil means http.DefaultTransport.
	Transport http.RoundTripper
	// Retry tunes retries of the token endpoint and of idempotent API
	// calls answered 429 or 503; the zero value is sensible.
	Retry auth.Retry
	// Logger receives sign-in, refresh and store diagnostics. Nil discards
	// them. Tokens, codes, verifiers, secrets and cookie values are never
	// logged.
	Logger *slog.Logger
	// ErrorHandler renders the app's own page for errors of the SignIn,
	// Callback and SignOut handlers; nil means a small built-in page (or
	// JSON for API callers) that says in plain words what happened and what
	// to do. status is the HTTP status to answer with. err is typed: Code
	// is a short machine code ("access_denied", "invalid_state",
	// "temporarily_unavailable", "server_misconfigured", ...), Description
	// is the plain-words explanation the built-in page shows, ending with
	// the reference under which the technical cause was logged, and
	// errors.Is matches this package's errors ([ErrInvalidState], ...) and the
	// kinds of package auth. err never contains a secret; show people its
	// Description, not err.Error().
	ErrorHandler func(w http.ResponseWriter, r *http.Request, status int, err *auth.Error)
	// LogUsers adds the user's subject (ERP.net user name) to log records
	// about sign-in, sign-out and refresh. Off by default: user names are
	// personal data, and sign-in counts need none.
	LogUsers bool
	// Hooks, if set, receive what the Client does (sign-ins, sign-outs,
	// token requests, cache hits, API retries, ERP.net API sessions opened,
	// re-authentication required); see [auth.Hooks].
	Hooks *auth.Hooks
	// Now is the clock, for tests; nil means time.Now.
	Now func() time.Time
}

// normalize checks cfg, then fills in its defaults. Errors are
// [*auth.ConfigError] values naming the field and never its value.
func (cfg Config) normalize() (Config, error) {
	if err := cfg.check(); err != nil {
		return cfg, err
	}
	return cfg.withDefaults(), nil
}

// check reports the first field at fault, in the order of the Config's
// fields; the rules shared with the other packages are in internal/config.
func (cfg Config) check() error {
	return config.First(
		config.Authority("Authority", cfg.Authority),
		config.ClientID("ClientID", cfg.ClientID),
		config.ClientSecret("ClientSecret", cfg.ClientSecret, false, ""),
		config.ClientSecretFile("ClientSecretFile", cfg.ClientSecretFile, cfg.ClientSecret),
		config.RedirectURL("RedirectURL", cfg.RedirectURL),
		config.RedirectURL("PostLogoutRedirectURL", cfg.PostLogoutRedirectURL),
		config.Scopes("Scopes", cfg.Scopes),
		config.DomainAPI("DomainAPI", cfg.DomainAPI),
		checkAuthParams(cfg.AuthParams),
		config.NotNegative("SessionTTL", cfg.SessionTTL),
		config.Keys("Keys", cfg.Keys, false),
		checkCookieName(cfg.CookieName),
		checkPath("SignInPath", cfg.SignInPath, "/signin", true),
		checkPath("DefaultReturnPath", cfg.DefaultReturnPath, "/", false),
		config.NotNegative("RefreshWindow", cfg.RefreshWindow),
		config.AuthStyle("AuthStyle", cfg.AuthStyle),
		checkAlgs(cfg.IDTokenSigningAlgs),
		config.NotNegative("MaxLiveSessions", cfg.MaxLiveSessions),
	)
}

// withDefaults fills in the zero fields of a checked cfg, and the scopes
// this package always requests.
func (cfg Config) withDefaults() Config {
	cfg.Authority = strings.TrimRight(cfg.Authority, "/")
	scopes := cfg.Scopes
	if len(scopes) == 0 {
		scopes = defaultScopes
	}
	out := make([]string, 0, len(scopes)+2)
	out = append(out, scopeOpenID) // this package always verifies an ID token
	for _, s := range scopes {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	if cfg.LegacyDomainAPIScope && !slices.Contains(out, scopeDomainAPI) {
		out = append(out, scopeDomainAPI)
	}
	cfg.Scopes = out
	if cfg.SessionTTL == 0 {
		cfg.SessionTTL = defaultSessionTTL
	}
	if cfg.MaxLiveSessions == 0 {
		cfg.MaxLiveSessions = defaultMaxLiveSessions
	}
	if cfg.CookieName == "" {
		cfg.CookieName = defaultCookieName
	}
	if cfg.SignInPath == "" {
		cfg.SignInPath = defaultSignInPath
	}
	if cfg.DefaultReturnPath == "" {
		cfg.DefaultReturnPath = "/"
	}
	if len(cfg.IDTokenSigningAlgs) == 0 {
		cfg.IDTokenSigningAlgs = []string{"RS256"}
	}
	return cfg
}

// checkAuthParams refuses the parameters the Client sets itself.
func checkAuthParams(p url.Values) error {
	for k := range p {
		switch k {
		case "response_type", "client_id", "redirect_uri", "scope", "state", "nonce", "code_challenge", "code_challenge_method", "response_mode", "request", "request_uri":
			return config.Err("AuthParams", "must not set "+k+" (the Client sets it)")
		}
	}
	return nil
}

// checkCookieName checks CookieName; empty means the default.
func checkCookieName(s string) error {
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return config.Err("CookieName", "must be a cookie name of letters, digits, '_' or '-'")
		}
	}
	return nil
}

// checkPath checks a local absolute path (empty means the default, e);
// plain paths allow no query.
func checkPath(field, p, e string, plain bool) error {
	if p == "" {
		return nil
	}
	if q, ok := safeReturnPath(p); !ok || (plain && (q != p || strings.Contains(p, "?"))) {
		return config.Err(field, "must be a local absolute path such as "+e)
	}
	return nil
}

// checkAlgs allows asymmetric JWS algorithms only.
func checkAlgs(algs []string) error {
	for _, a := range algs {
		switch a {
		case "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA":
		default:
			return config.Err("IDTokenSigningAlgs", "may list only asymmetric JWS algorithms (RS256, PS256, ES256, EdDSA, ...)")
		}
	}
	return nil
}
