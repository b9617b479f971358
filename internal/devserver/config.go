package devserver

import (
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"
)

// ClientType is the type of a Trusted Application: Confidential (has a secret) or Public.
type ClientType int

const (
	// Confidential is a Trusted Application that authenticates with a client secret.
	Confidential ClientType = iota
	// Public is a Trusted Application without a secret (native apps, CLIs, SPAs).
	Public
)

// String returns "Confidential" or "Public".
func (t ClientType) String() string {
	switch t {
	case Confidential:
		return "Confidential"
	case Public:
		return "Public"
	default:
		return fmt.Sprintf("ClientType(%d)", int(t))
	}
}

// AccessTokensPolicy says who may issue reference tokens (PAT/SAT) through a Trusted Application.
type AccessTokensPolicy int

const (
	// AccessTokensNone means no reference tokens may be issued through the application.
	AccessTokensNone AccessTokensPolicy = iota
	// AccessTokensAuthenticatedUsers lets any authenticated user issue reference tokens.
	AccessTokensAuthenticatedUsers
	// AccessTokensAdministratorsOnly lets only administrators issue reference tokens.
	AccessTokensAdministratorsOnly
)

// String returns the ERP.net name of the policy.
func (p AccessTokensPolicy) String() string {
	switch p {
	case AccessTokensNone:
		return "None"
	case AccessTokensAuthenticatedUsers:
		return "AuthenticatedUsers"
	case AccessTokensAdministratorsOnly:
		return "AdministratorsOnly"
	default:
		return fmt.Sprintf("AccessTokensPolicy(%d)", int(p))
	}
}

// App is a Trusted Application (an OAuth client registration).
type App struct {
	// ApplicationURI is the client_id, in reverse-host form; it may contain '/'.
	ApplicationURI string
	// Name is the display name shown on the sign-in page.
	Name string
	// ClientType is Confidential (zero value) or Public.
	ClientType ClientType
	// SecretHash is base64(sha256(secret)) as produced by HashSecret; required for
	// confidential applications, ignored for public ones. It is compared in constant time.
	SecretHash string
	// RedirectURIs are matched exactly and case-sensitively, trailing slash included.
	// Exception (RFC 8252 §7.3): a registered http://127.0.0.1/<path> or http://[::1]/<path>
	// (no port) matches the same URI with any port.
	RedirectURIs []string
	// PostLogoutRedirectURIs are matched like RedirectURIs (loopback exception included).
	PostLogoutRedirectURIs []string
	// SystemUserAllowed enables the client_credentials grant and service access tokens (SAT).
	SystemUserAllowed bool
	// SystemUser is the user name a client_credentials token or a SAT acts as.
	SystemUser string
	// Scopes are the allowed scopes; empty means all of:
	// openid profile read update offline_access DomainApi.
	Scopes []string
	// AccessTokens says who may issue reference tokens through this application.
	AccessTokens AccessTokensPolicy
	// Disabled is the negation of ERP.net's IsEnabled (zero value = enabled).
	Disabled bool
	// AccessTokenLifetime, when set, overrides Config.AccessTokenLifetime for this application.
	AccessTokenLifetime time.Duration
	// RefreshTokenLifetime, when set, overrides Config.RefreshTokenLifetime and the
	// confidential/public defaults for this application.
	RefreshTokenLifetime time.Duration
}

// User is a demo ERP.net user who can sign in with a password.
type User struct {
	// Username is the sign-in name and the sub claim.
	Username string
	// Password is the plain password accepted by the sign-in form.
	Password string
	// Name is the display name (name claim).
	Name string
	// Email is the e-mail address (email claim).
	Email string
	// Administrator marks an ERP.net administrator (matters for AccessTokensAdministratorsOnly).
	Administrator bool
}

// Config configures a Server. The zero value is valid but has no applications or users.
type Config struct {
	// Apps are the Trusted Applications.
	Apps []App
	// Users are the users who can sign in.
	Users []User
	// BaseURL is the instance root URL, for example "http://127.0.0.1:1234", without a path.
	// Empty: Start fills it in; a Server made by New derives it from each request's Host (http).
	BaseURL string
	// AccessTokenLifetime defaults to 1 hour.
	AccessTokenLifetime time.Duration
	// IDTokenLifetime defaults to 5 minutes.
	IDTokenLifetime time.Duration
	// CodeLifetime is the lifetime of an authorization code; default 1 minute.
	CodeLifetime time.Duration
	// RefreshTokenLifetime is the absolute lifetime of a refresh token family, counted from the
	// code exchange. Default 30 days for confidential and 24 hours for public clients; if set it
	// applies to both.
	RefreshTokenLifetime time.Duration
	// KeyGracePeriod is how long a rotated-out signing key stays in the JWKS and keeps
	// verifying; default 1 hour.
	KeyGracePeriod time.Duration
	// LicenseCount caps concurrently open ERP.net sessions on the Domain API; 0 = unlimited.
	LicenseCount int
	// Now is the clock; nil means time.Now. Server.Advance adds to it.
	Now func() time.Time
	// TokenEndpointAuthMethods is advertised in discovery; default
	// ["client_secret_basic","client_secret_post"]. Both are always accepted.
	TokenEndpointAuthMethods []string
	// DisableRevocation omits revocation_endpoint from discovery and answers 404 there.
	DisableRevocation bool
	// AuthorizationResponseIss adds iss= to authorization responses (RFC 9207) and advertises
	// authorization_response_iss_parameter_supported.
	AuthorizationResponseIss bool
	// OmitTokenType omits token_type from token responses (as ERP.net sometimes does).
	OmitTokenType bool
	// Logger receives diagnostic logs; nil discards them. No secret is ever logged.
	Logger *slog.Logger
}

// Scope names known to the server.
const (
	// ScopeOpenID requests an ID token.
	ScopeOpenID = "openid"
	// ScopeProfile adds name, preferred_username and email to ID tokens and userinfo.
	ScopeProfile = "profile"
	// ScopeRead allows reading through the Domain API.
	ScopeRead = "read"
	// ScopeUpdate allows writing through the Domain API.
	ScopeUpdate = "update"
	// ScopeOfflineAccess requests a refresh token.
	ScopeOfflineAccess = "offline_access"
	// ScopeDomainAPI is the obsolete scope old servers (v20.1) still need.
	ScopeDomainAPI = "DomainApi"
)

// allScopes is the canonical order of every supported scope.
var allScopes = []string{ScopeOpenID, ScopeProfile, ScopeRead, ScopeUpdate, ScopeOfflineAccess, ScopeDomainAPI}

// apiScopes are the scopes that make sense without a user (client credentials, reference tokens).
var apiScopes = []string{ScopeRead, ScopeUpdate, ScopeDomainAPI}

func isKnownScope(sc string) bool { return contains(allScopes, sc) }

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// HashSecret returns base64 (standard encoding) of sha256(secret), the form App.SecretHash takes.
func HashSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return base64.StdEncoding.EncodeToString(sum[:])
}

// Values used by Demo.
const (
	// DemoWebAppID is the client_id of the confidential demo web application.
	DemoWebAppID = "com.example/webapp"
	// DemoWebAppName is the display name of the demo web application.
	DemoWebAppName = "Example Web App"
	// DemoWebAppSecret is the client secret of the demo web application.
	DemoWebAppSecret = "webapp-secret"
	// DemoWebAppRedirectURI is the demo web application's 127.0.0.1 redirect URI.
	DemoWebAppRedirectURI = "http://127.0.0.1:8080/callback"
	// DemoWebAppRedirectURILocalhost is the demo web application's localhost redirect URI.
	DemoWebAppRedirectURILocalhost = "http://localhost:8080/callback"
	// DemoWebAppPostLogoutURI is the demo web application's 127.0.0.1 post-logout redirect URI.
	DemoWebAppPostLogoutURI = "http://127.0.0.1:8080/"
	// DemoWebAppPostLogoutURILocalhost is the demo web application's localhost post-logout URI.
	DemoWebAppPostLogoutURILocalhost = "http://localhost:8080/"
	// DemoWebAppSystemUser is the System User of the demo web application.
	DemoWebAppSystemUser = "portal-system"

	// DemoWorkerID is the client_id of the confidential demo background worker.
	DemoWorkerID = "com.example/worker"
	// DemoWorkerName is the display name of the demo worker.
	DemoWorkerName = "Example Worker"
	// DemoWorkerSecret is the demo worker's secret; it contains special characters on purpose
	// (':', '%', '+', '/', '=') to exercise RFC 6749 §2.3.1 form-encoding in HTTP Basic.
	DemoWorkerSecret = "w0rker:s3cret%+/="
	// DemoWorkerSystemUser is the System User of the demo worker.
	DemoWorkerSystemUser = "worker-system"

	// DemoCLIID is the client_id of the public demo command-line application.
	DemoCLIID = "com.example/cli"
	// DemoCLIName is the display name of the demo CLI.
	DemoCLIName = "Example CLI"
	// DemoCLIRedirectURI is the demo CLI's loopback redirect URI (any port matches).
	DemoCLIRedirectURI = "http://127.0.0.1/callback"

	// DemoAlice is the user name of the demo administrator.
	DemoAlice = "alice"
	// DemoAlicePassword is alice's password.
	DemoAlicePassword = "alice-password"
	// DemoAliceName is alice's display name.
	DemoAliceName = "Alice Anderson"
	// DemoAliceEmail is alice's e-mail address.
	DemoAliceEmail = "alice@example.com"
	// DemoBob is the user name of the demo non-administrator.
	DemoBob = "bob"
	// DemoBobPassword is bob's password.
	DemoBobPassword = "bob-password"
	// DemoBobName is bob's display name.
	DemoBobName = "Bob Brown"
	// DemoBobEmail is bob's e-mail address.
	DemoBobEmail = "bob@example.com"
)

// Demo returns a Config with the demo Trusted Applications (DemoWebAppID, DemoWorkerID,
// DemoCLIID) and users (DemoAlice, DemoBob). Every call returns fresh slices.
func Demo() Config {
	return Config{
		Apps: []App{
			{
				ApplicationURI:         DemoWebAppID,
				Name:                   DemoWebAppName,
				ClientType:             Confidential,
				SecretHash:             HashSecret(DemoWebAppSecret),
				RedirectURIs:           []string{DemoWebAppRedirectURI, DemoWebAppRedirectURILocalhost},
				PostLogoutRedirectURIs: []string{DemoWebAppPostLogoutURI, DemoWebAppPostLogoutURILocalhost},
				SystemUserAllowed:      true,
				SystemUser:             DemoWebAppSystemUser,
				AccessTokens:           AccessTokensAuthenticatedUsers,
			},
			{
				ApplicationURI:    DemoWorkerID,
				Name:              DemoWorkerName,
				ClientType:        Confidential,
				SecretHash:        HashSecret(DemoWorkerSecret),
				SystemUserAllowed: true,
				SystemUser:        DemoWorkerSystemUser,
				Scopes:            []string{ScopeRead, ScopeUpdate},
			},
			{
				ApplicationURI: DemoCLIID,
				Name:           DemoCLIName,
				ClientType:     Public,
				RedirectURIs:   []string{DemoCLIRedirectURI},
				Scopes:         []string{ScopeOpenID, ScopeProfile, ScopeRead, ScopeUpdate, ScopeOfflineAccess},
			},
		},
		Users: []User{
			{Username: DemoAlice, Password: DemoAlicePassword, Name: DemoAliceName, Email: DemoAliceEmail, Administrator: true},
			{Username: DemoBob, Password: DemoBobPassword, Name: DemoBobName, Email: DemoBobEmail},
		},
	}
}

// Defaults.
const (
	defaultAccessTokenLifetime      = time.Hour
	defaultIDTokenLifetime          = 5 * time.Minute
	defaultCodeLifetime             = time.Minute
	defaultRefreshConfidential      = 30 * 24 * time.Hour
	defaultRefreshPublic            = 24 * time.Hour
	defaultKeyGracePeriod           = time.Hour
	sessionIdleTimeout              = 20 * time.Minute
	systemSessionMaxAge             = time.Hour
	defaultReferenceTokenLifetimeYr = 1
)

// normalize validates cfg and fills in defaults. It copies every slice it keeps.
func normalize(cfg Config) (Config, map[string]*App, map[string]*User, error) {
	var errs []error
	if cfg.AccessTokenLifetime <= 0 {
		cfg.AccessTokenLifetime = defaultAccessTokenLifetime
	}
	if cfg.IDTokenLifetime <= 0 {
		cfg.IDTokenLifetime = defaultIDTokenLifetime
	}
	if cfg.CodeLifetime <= 0 {
		cfg.CodeLifetime = defaultCodeLifetime
	}
	if cfg.KeyGracePeriod <= 0 {
		cfg.KeyGracePeriod = defaultKeyGracePeriod
	}
	if cfg.LicenseCount < 0 {
		errs = append(errs, errors.New("LicenseCount must not be negative"))
	}
	if cfg.RefreshTokenLifetime < 0 {
		errs = append(errs, errors.New("RefreshTokenLifetime must not be negative"))
	}
	if len(cfg.TokenEndpointAuthMethods) == 0 {
		cfg.TokenEndpointAuthMethods = []string{"client_secret_basic", "client_secret_post"}
	} else {
		cfg.TokenEndpointAuthMethods = append([]string(nil), cfg.TokenEndpointAuthMethods...)
	}
	if cfg.BaseURL != "" {
		b, err := normalizeBaseURL(cfg.BaseURL)
		if err != nil {
			errs = append(errs, err)
		}
		cfg.BaseURL = b
	}

	apps := make(map[string]*App, len(cfg.Apps))
	appsCopy := make([]App, 0, len(cfg.Apps))
	for i, a := range cfg.Apps {
		a.RedirectURIs = append([]string(nil), a.RedirectURIs...)
		a.PostLogoutRedirectURIs = append([]string(nil), a.PostLogoutRedirectURIs...)
		a.Scopes = append([]string(nil), a.Scopes...)
		if err := validateApp(&a); err != nil {
			errs = append(errs, fmt.Errorf("config: Apps[%d]: %w", i, err))
			continue
		}
		if _, dup := apps[a.ApplicationURI]; dup {
			errs = append(errs, fmt.Errorf("config: Apps[%d]: duplicate ApplicationURI %q", i, a.ApplicationURI))
			continue
		}
		appsCopy = append(appsCopy, a)
		apps[a.ApplicationURI] = &appsCopy[len(appsCopy)-1]
	}
	// Re-point the map at the final slice (append may have moved it).
	for i := range appsCopy {
		apps[appsCopy[i].ApplicationURI] = &appsCopy[i]
	}
	cfg.Apps = appsCopy

	users := make(map[string]*User, len(cfg.Users))
	usersCopy := make([]User, 0, len(cfg.Users))
	for i, u := range cfg.Users {
		if u.Username == "" || strings.TrimSpace(u.Username) != u.Username {
			errs = append(errs, fmt.Errorf("config: Users[%d]: invalid Username %q", i, u.Username))
			continue
		}
		if _, dup := users[u.Username]; dup {
			errs = append(errs, fmt.Errorf("config: Users[%d]: duplicate Username %q", i, u.Username))
			continue
		}
		usersCopy = append(usersCopy, u)
		users[u.Username] = nil
	}
	for i := range usersCopy {
		users[usersCopy[i].Username] = &usersCopy[i]
	}
	cfg.Users = usersCopy
	return cfg, apps, users, errors.Join(errs...)
}

func normalizeBaseURL(raw string) (string, error) {
	u, err := url.Parse(strings.TrimRight(raw, "/"))
	if err != nil {
		return "", fmt.Errorf("BaseURL: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("BaseURL %q: want an absolute http or https URL", raw)
	}
	if u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "", fmt.Errorf("BaseURL %q: must be a root URL without path, query, fragment or user info", raw)
	}
	return u.Scheme + "://" + u.Host, nil
}

func validateApp(a *App) error {
	if a.ApplicationURI == "" || strings.ContainsAny(a.ApplicationURI, " \t\r\n") {
		return fmt.Errorf("invalid ApplicationURI %q", a.ApplicationURI)
	}
	switch a.ClientType {
	case Confidential:
		raw, err := base64.StdEncoding.DecodeString(a.SecretHash)
		if err != nil || len(raw) != sha256.Size {
			return fmt.Errorf("%s: a confidential application needs SecretHash = HashSecret(secret)", a.ApplicationURI)
		}
	case Public:
	default:
		return fmt.Errorf("%s: unknown ClientType %d", a.ApplicationURI, int(a.ClientType))
	}
	for _, uris := range [][]string{a.RedirectURIs, a.PostLogoutRedirectURIs} {
		for _, ru := range uris {
			u, err := url.Parse(ru)
			if err != nil || u.Scheme == "" || u.Fragment != "" || strings.Contains(ru, "#") {
				return fmt.Errorf("%s: invalid redirect URI %q (absolute URI without fragment required)", a.ApplicationURI, ru)
			}
		}
	}
	for _, sc := range a.Scopes {
		if !isKnownScope(sc) {
			return fmt.Errorf("%s: unknown scope %q", a.ApplicationURI, sc)
		}
	}
	if a.AccessTokenLifetime < 0 || a.RefreshTokenLifetime < 0 {
		return fmt.Errorf("%s: token lifetimes must not be negative", a.ApplicationURI)
	}
	if a.AccessTokens < AccessTokensNone || a.AccessTokens > AccessTokensAdministratorsOnly {
		return fmt.Errorf("%s: unknown AccessTokens policy %d", a.ApplicationURI, int(a.AccessTokens))
	}
	return nil
}

// allowedScopes returns the app's allowed scopes in canonical order.
func (a *App) allowedScopes() []string {
	if len(a.Scopes) == 0 {
		return append([]string(nil), allScopes...)
	}
	var out []string
	for _, sc := range allScopes {
		if contains(a.Scopes, sc) {
			out = append(out, sc)
		}
	}
	return out
}

func (s *Server) refreshLifetime(a *App) time.Duration {
	if a.RefreshTokenLifetime > 0 {
		return a.RefreshTokenLifetime
	}
	if s.cfg.RefreshTokenLifetime > 0 {
		return s.cfg.RefreshTokenLifetime
	}
	if a.ClientType == Public {
		return defaultRefreshPublic
	}
	return defaultRefreshConfidential
}

// accessLifetime is the access token lifetime for a.
func (s *Server) accessLifetime(a *App) time.Duration {
	if a.AccessTokenLifetime > 0 {
		return a.AccessTokenLifetime
	}
	return s.cfg.AccessTokenLifetime
}
