package hybrid

import (
	"cmp"
	"errors"
	"log/slog"
	"net/http"
	"strings"

	"github.com/erpnetgo/auth/authcode"
	"github.com/erpnetgo/auth/clientcreds"
	"github.com/erpnetgo/auth/internal/autherr"
)

// Config configures an App. The usual form names ONE Trusted Application
// that serves both flows (ERP.net's documented hybrid set-up: the same
// client_id signs users in and, with SystemUserAllowed, gets service tokens
// acting as its System User): Authority, ClientID, ClientSecret and
// RedirectURL are required, everything else has a useful zero value.
//
// For finer control, Users and Service give the complete configuration of
// each side; their zero fields are filled from the shared fields below, so
// what is set in Users or Service overrides the shared value. They may even
// name two different Trusted Applications (a web app for the users, a
// worker for the service side).
type Config struct {
	// Authority is the ERP.net instance root (https://demodb.my.erp.net) or
	// its identity server (https://demodb.my.erp.net/id).
	Authority string
	// ClientID is the Trusted Application's ApplicationUri, used by both
	// flows.
	ClientID string
	// ClientSecret is the Trusted Application's secret, used by both flows.
	// The service side needs it: Client Credentials require a confidential
	// Trusted Application with SystemUserAllowed.
	ClientSecret string
	// RedirectURL is the absolute URL of the Callback handler, as
	// registered with the Trusted Application.
	RedirectURL string
	// PostLogoutRedirectURL is where the identity server sends the browser
	// after SignOut; it must be registered with the Trusted Application.
	PostLogoutRedirectURL string
	// UserScopes are requested at sign-in; empty means
	// authcode.DefaultScopes (openid profile offline_access read update).
	UserScopes []string
	// ServiceScopes are requested for the service token, e.g. "read".
	// Empty asks for every API scope the Trusted Application allows.
	// openid, profile and offline_access need a user and are refused.
	ServiceScopes []string
	// Store keeps the users' sessions (and their tokens); nil means an
	// authcode.MemoryStore. Only the user side ever touches it: the
	// service token lives in this process's memory alone.
	Store authcode.Store
	// CookieKeys seal the session cookies (see authcode.Config.CookieKeys);
	// nil means a random key per process.
	CookieKeys [][]byte
	// HTTPClient sends the requests to the identity server (both flows);
	// its Transport is also the base transport of the API clients. Nil
	// means a client with a 30 s timeout over http.DefaultTransport.
	HTTPClient *http.Client
	// Logger receives diagnostics of both sides. Tokens, secrets and
	// cookie values are never logged. Nil discards them.
	Logger *slog.Logger
	// AuditLogger receives the audit records of RunAsService and
	// RunBackground; nil means Logger (and, if that is nil too,
	// slog.Default(), so that audit records are never silently lost).
	AuditLogger *slog.Logger

	// Users, if set, is the complete configuration of the user side; its
	// zero fields are filled from Authority, ClientID, ClientSecret,
	// RedirectURL, PostLogoutRedirectURL, UserScopes, Store, CookieKeys,
	// HTTPClient and Logger. (A public user side therefore needs the shared
	// ClientSecret left empty and Service.ClientSecret set.)
	Users *authcode.Config
	// Service, if set, is the complete configuration of the service side;
	// its zero fields are filled from Authority, ClientID, ClientSecret,
	// ServiceScopes, HTTPClient and Logger.
	Service *clientcreds.Config
}

// ConfigError reports an invalid Config field. It names the field (as
// written in Config, e.g. "ServiceScopes" or "Users.RedirectURL") and never
// echoes its value. Every ConfigError matches ErrMisconfigured.
type ConfigError = autherr.ConfigError

// userScopesOnly are scopes that need a signed-in user.
var userScopesOnly = []string{authcode.ScopeOpenID, authcode.ScopeProfile, authcode.ScopeOfflineAccess}

// userConfig builds the authcode.Config and the names of the fields it
// took from the shared Config (for error messages).
func (c Config) userConfig() (authcode.Config, map[string]bool) {
	var u authcode.Config
	explicit := map[string]bool{}
	if c.Users != nil {
		u = *c.Users
		explicit["Authority"] = u.Authority != ""
		explicit["ClientID"] = u.ClientID != ""
		explicit["ClientSecret"] = u.ClientSecret != ""
		explicit["RedirectURL"] = u.RedirectURL != ""
		explicit["PostLogoutRedirectURL"] = u.PostLogoutRedirectURL != ""
		explicit["Scopes"] = len(u.Scopes) > 0
		explicit["CookieKeys"] = len(u.CookieKeys) > 0
		for _, f := range []string{"SessionTTL", "CookieName", "SignInPath", "DefaultReturnPath",
			"RefreshWindow", "AuthStyle", "IDTokenSigningAlgs", "MaxLiveSessions"} {
			explicit[f] = true // only settable in Users
		}
	}
	u.Authority = cmp.Or(u.Authority, c.Authority)
	u.ClientID = cmp.Or(u.ClientID, c.ClientID)
	u.ClientSecret = cmp.Or(u.ClientSecret, c.ClientSecret)
	u.RedirectURL = cmp.Or(u.RedirectURL, c.RedirectURL)
	u.PostLogoutRedirectURL = cmp.Or(u.PostLogoutRedirectURL, c.PostLogoutRedirectURL)
	if len(u.Scopes) == 0 {
		u.Scopes = c.UserScopes
	}
	if u.Store == nil {
		u.Store = c.Store
	}
	if len(u.CookieKeys) == 0 {
		u.CookieKeys = c.CookieKeys
	}
	if u.HTTPClient == nil {
		u.HTTPClient = c.HTTPClient
	}
	if u.Logger == nil {
		u.Logger = c.Logger
	}
	return u, explicit
}

// serviceConfig builds the clientcreds.Config and the names of the fields
// set explicitly in Config.Service.
func (c Config) serviceConfig() (clientcreds.Config, map[string]bool) {
	var s clientcreds.Config
	explicit := map[string]bool{}
	if c.Service != nil {
		s = *c.Service
		explicit["Authority"] = s.Authority != ""
		explicit["ClientID"] = s.ClientID != ""
		explicit["ClientSecret"] = s.ClientSecret != ""
		explicit["Scopes"] = len(s.Scopes) > 0
		explicit["AuthStyle"] = true
		explicit["RefreshWindow"] = true
	}
	s.Authority = cmp.Or(s.Authority, c.Authority)
	s.ClientID = cmp.Or(s.ClientID, c.ClientID)
	s.ClientSecret = cmp.Or(s.ClientSecret, c.ClientSecret)
	if len(s.Scopes) == 0 {
		s.Scopes = c.ServiceScopes
	}
	if s.HTTPClient == nil {
		s.HTTPClient = c.HTTPClient
	}
	if s.Logger == nil {
		s.Logger = c.Logger
	}
	return s, explicit
}

// renameField rewrites a sub-package's ConfigError so that it names the
// hybrid.Config field the value came from. Other errors pass unchanged.
func renameField(err error, override string, explicit map[string]bool, scopes string) error {
	var ce *ConfigError
	if err == nil || !errors.As(err, &ce) {
		return err
	}
	field := ce.Field
	base, rest, _ := strings.Cut(field, "[")
	if rest != "" {
		rest = "[" + rest
	}
	switch {
	case explicit[base]:
		field = override + "." + field
	case base == "Scopes":
		field = scopes + rest
	}
	return &ConfigError{Field: field, Reason: ce.Reason}
}

// validateShared checks what the sub-packages do not: the App serves the
// sign-in handlers, and a service token has no user.
func validateShared(u authcode.Config, uExplicit map[string]bool, s clientcreds.Config, sExplicit map[string]bool) error {
	if u.RedirectURL == "" {
		field := "RedirectURL"
		if len(uExplicit) > 0 {
			field = "Users.RedirectURL" // Users is set; either field would do
		}
		return &ConfigError{Field: field, Reason: "is required: the App serves the sign-in Callback handler"}
	}
	for _, sc := range s.Scopes {
		for _, bad := range userScopesOnly {
			if sc == bad {
				field := "ServiceScopes"
				if sExplicit["Scopes"] {
					field = "Service.Scopes"
				}
				return &ConfigError{Field: field, Reason: "must not contain openid, profile or offline_access: a service token acts as the System User, not a user (ask for them in UserScopes)"}
			}
		}
	}
	return nil
}
