package hybrid

import (
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/erpnetgo/auth"
	"github.com/erpnetgo/auth/authcode"
	"github.com/erpnetgo/auth/clientcreds"
)

// Config configures an App. The usual form names ONE Trusted Application
// that serves both flows (ERP.net's documented hybrid set-up: the same
// client_id signs users in and, with SystemUserAllowed, gets service tokens
// acting as its System User): Authority, ClientID, ClientSecret and
// RedirectURL are required, everything else has a useful zero value. The
// App builds an authcode.Client (the user side) and a clientcreds.Source
// (the service side) from these fields; the field names mean what they
// mean in authcode.Config and clientcreds.Config.
//
// For a split set-up (two Trusted Applications, a Store or cookie settings
// only authcode.Config offers, a Source shared with other code), build
// either side yourself and pass it as UserClient or ServiceSource: the App
// then uses it as it is, and the shared fields configure only the side the
// App builds.
type Config struct {
	// Authority is the ERP.net instance root (https://demodb.my.erp.net) or
	// its identity server (https://demodb.my.erp.net/id).
	Authority string
	// ClientID is the Trusted Application's ApplicationUri, used by both
	// flows. With ServiceSource it must be that Source's client_id: the App
	// names it in audit records and ServiceAPI.ClientID.
	ClientID string
	// ClientSecret is the Trusted Application's secret, used by both flows.
	// The service side needs it: Client Credentials require a confidential
	// Trusted Application with SystemUserAllowed. (With ServiceSource set,
	// an empty ClientSecret makes the user side a public client.)
	ClientSecret string
	// ClientSecretFile is the path of a file holding the secret instead,
	// for rotation without a restart (see clientcreds.Config.ClientSecretFile
	// and authcode.Config.ClientSecretFile): both sides read it, and each
	// reads it again when the identity server refuses the secret.
	// Exclusive with ClientSecret.
	ClientSecretFile string
	// RedirectURL is the absolute URL of the Callback handler, as
	// registered with the Trusted Application.
	RedirectURL string
	// PostLogoutRedirectURL is where the identity server sends the browser
	// after SignOut; it must be registered with the Trusted Application.
	PostLogoutRedirectURL string
	// UserScopes are requested at sign-in; empty means openid, profile,
	// offline_access, read and update.
	UserScopes []string
	// ServiceScopes are requested for the service token, e.g. "read".
	// Empty asks for every API scope the Trusted Application allows.
	// openid, profile and offline_access need a user and are refused.
	ServiceScopes []string
	// DomainAPI is the Domain API root, e.g.
	// https://demodb.my.erp.net/api/domain/odata/; empty means the one
	// ERP.net auto-discovery names. Tokens of either side are sent only to
	// the origins of the Authority, the identity server and this root.
	DomainAPI string
	// Store keeps the users' sessions (and their tokens); nil keeps them in
	// this process's memory. Only the user side ever touches it: the
	// service token lives in this process's memory alone.
	Store authcode.Store
	// Keys seal the session cookies (see authcode.Config.Keys): the first
	// seals, all open. Nil means a random key per process.
	Keys [][]byte
	// HTTPClient sends the requests to the identity server (both flows);
	// nil means a client with a 30 s timeout. It is not used for API calls
	// (see Transport).
	HTTPClient *http.Client
	// Transport is the base transport of the API clients of both sides
	// (UserAPI.UserClient, ServiceAPI.ServiceClient); nil means
	// http.DefaultTransport.
	Transport http.RoundTripper
	// AuthStyle is how the client secret is sent to the token endpoint;
	// the zero value, oauth2.AuthStyleAutoDetect, uses HTTP Basic unless
	// discovery lists only client_secret_post.
	AuthStyle oauth2.AuthStyle
	// Retry tunes retries of the token endpoint and of idempotent API
	// calls answered 429 or 503; the zero value is sensible.
	Retry auth.Retry
	// Logger receives diagnostics of both sides and of GuardResponses.
	// Tokens, secrets and cookie values are never logged. Nil discards
	// them.
	Logger *slog.Logger
	// AuditLogger receives the audit records of RunAsService and
	// RunBackground (they name the user who triggered a job); nil means
	// Logger, and with neither set the records are dropped. The SDK never
	// writes to slog.Default().
	AuditLogger *slog.Logger
	// LogUsers adds user names to the diagnostics in Logger (never to
	// AuditLogger, whose records always name the user); off by default.
	LogUsers bool
	// Hooks, if set, receive what both sides do (see auth.Hooks): events
	// of the user side have Flow "authcode", of the service side
	// "clientcreds".
	Hooks *auth.Hooks
	// Now is the clock of both sides, for tests; nil means time.Now.
	Now func() time.Time

	// UserClient, if set, is the user side, used as it is: RedirectURL,
	// PostLogoutRedirectURL, UserScopes, Store and Keys must then be empty
	// (they configure the client it replaces). App.Close does not close
	// it: close it yourself after the App.
	UserClient *authcode.Client
	// ServiceSource, if set, is the service side, used as it is:
	// ServiceScopes must then be empty, and ClientID must name the Source's
	// client_id. App.Close does not close it: close it yourself after the
	// App. With both UserClient and ServiceSource set, only ClientID,
	// Logger and AuditLogger apply.
	ServiceSource *clientcreds.Source
}

// userScopesOnly are scopes that need a signed-in user.
var userScopesOnly = []string{"openid", "profile", "offline_access"}

func (c Config) userConfig() authcode.Config {
	return authcode.Config{
		Authority:             c.Authority,
		ClientID:              c.ClientID,
		ClientSecret:          c.ClientSecret,
		ClientSecretFile:      c.ClientSecretFile,
		RedirectURL:           c.RedirectURL,
		PostLogoutRedirectURL: c.PostLogoutRedirectURL,
		Scopes:                c.UserScopes,
		DomainAPI:             c.DomainAPI,
		Store:                 c.Store,
		Keys:                  c.Keys,
		AuthStyle:             c.AuthStyle,
		HTTPClient:            c.HTTPClient,
		Transport:             c.Transport,
		Retry:                 c.Retry,
		Logger:                c.Logger,
		LogUsers:              c.LogUsers,
		Hooks:                 c.Hooks,
		Now:                   c.Now,
	}
}

func (c Config) serviceConfig() clientcreds.Config {
	sc := clientcreds.Config{
		Authority:    c.Authority,
		ClientID:     c.ClientID,
		ClientSecret: c.ClientSecret,
		Scopes:       c.ServiceScopes,
		DomainAPI:    c.DomainAPI,
		HTTPClient:   c.HTTPClient,
		Transport:    c.Transport,
		AuthStyle:    c.AuthStyle,
		Retry:        c.Retry,
		Logger:       c.Logger,
		Hooks:        c.Hooks,
		Now:          c.Now,
	}
	sc.ClientSecretFile = c.ClientSecretFile
	return sc
}

// validate checks what the sub-packages do not: the App serves the
// sign-in handlers, a service token has no user, and no field is silently
// ignored next to UserClient or ServiceSource.
func (c Config) validate() error {
	unused := func(names []string, set []bool, because string) error {
		for i, s := range set {
			if s {
				return &auth.ConfigError{Field: names[i], Reason: "must be empty with " + because + ": it would configure a side the App does not build"}
			}
		}
		return nil
	}
	if c.UserClient != nil {
		if err := unused([]string{"RedirectURL", "PostLogoutRedirectURL", "UserScopes", "Store", "Keys"},
			[]bool{c.RedirectURL != "", c.PostLogoutRedirectURL != "", c.UserScopes != nil, c.Store != nil, c.Keys != nil},
			"UserClient"); err != nil {
			return err
		}
	} else if c.RedirectURL == "" {
		return &auth.ConfigError{Field: "RedirectURL", Reason: "is required: the App serves the sign-in Callback handler"}
	}
	if c.ServiceSource != nil {
		if c.ServiceScopes != nil {
			return &auth.ConfigError{Field: "ServiceScopes", Reason: "must be empty with ServiceSource: it would configure a side the App does not build"}
		}
		if c.ClientID == "" {
			return &auth.ConfigError{Field: "ClientID", Reason: "is required with ServiceSource: it names the System User in audit records"}
		}
		if strings.ContainsFunc(c.ClientID, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			return &auth.ConfigError{Field: "ClientID", Reason: "contains control characters"}
		}
	} else {
		for i, sc := range c.ServiceScopes {
			for _, bad := range userScopesOnly {
				if sc == bad {
					return &auth.ConfigError{Field: "ServiceScopes[" + strconv.Itoa(i) + "]", Reason: "must not be openid, profile or offline_access: a service token acts as the System User, not a user (ask for them in UserScopes)"}
				}
			}
		}
	}
	if c.UserClient != nil && c.ServiceSource != nil {
		if err := unused([]string{"Authority", "ClientSecret", "ClientSecretFile", "DomainAPI", "HTTPClient", "Transport", "AuthStyle", "Retry", "Now", "Hooks", "LogUsers"},
			[]bool{c.Authority != "", c.ClientSecret != "", c.ClientSecretFile != "", c.DomainAPI != "", c.HTTPClient != nil, c.Transport != nil,
				c.AuthStyle != oauth2.AuthStyleAutoDetect, c.Retry != (auth.Retry{}), c.Now != nil, c.Hooks != nil, c.LogUsers},
			"UserClient and ServiceSource"); err != nil {
			return err
		}
	}
	return nil
}

// fieldName rewrites a sub-package's ConfigError so that it names the
// hybrid Config field: only Scopes is spelled differently here.
func fieldName(err error, scopes string) error {
	var ce *auth.ConfigError
	if err == nil || !errors.As(err, &ce) {
		return err
	}
	if rest, ok := strings.CutPrefix(ce.Field, "Scopes"); ok {
		return &auth.ConfigError{Field: scopes + rest, Reason: ce.Reason}
	}
	return err
}
