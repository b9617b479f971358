package hybrid

import (
	"errors"
	"log/slog"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/erpnetgo/auth"
	"github.com/erpnetgo/auth/authcode"
	"github.com/erpnetgo/auth/clientcreds"
	"github.com/erpnetgo/auth/internal/config"
)

// Config configures an App, in one of two set-ups.
//
// The simple set-up names ONE Trusted Application that serves both flows
// (ERP.net's documented hybrid set-up: the same client_id signs users in
// and, with SystemUserAllowed, gets service tokens acting as its System
// User): Authority, ClientID, ClientSecret and RedirectURL are required,
// every other field has a useful zero value. The App builds an
// [authcode.Client] (the user side) and a [clientcreds.Source] (the service
// side) from these fields, which mean what they mean in [authcode.Config]
// and [clientcreds.Config].
//
// The split set-up passes the two sides already built, as Users and
// Service: two Trusted Applications, a Store or cookie settings only
// [authcode.Config] offers, a Source shared with other code. The App uses
// them as they are and leaves closing them to the caller; of the other
// fields only Logger and AuditLogger apply, and every field of the simple
// set-up must be empty (it would configure nothing).
type Config struct {
	// Authority (the ERP.net instance root or its identity server) and
	// ClientID (the Trusted Application's ApplicationUri) serve both flows,
	// as in [authcode.Config].
	Authority, ClientID string
	// ClientSecret is the Trusted Application's secret, for both flows.
	// Required: Client Credentials need a confidential Trusted Application
	// with SystemUserAllowed.
	ClientSecret string
	// ClientSecretFile holds the secret instead, for rotation without a
	// restart ([authcode.Config.ClientSecretFile]): both sides read it, and
	// each reads it again when the identity server refuses the secret.
	// Exclusive with ClientSecret.
	ClientSecretFile string
	// RedirectURL is the URL of the Callback handler
	// ([authcode.Config.RedirectURL]).
	RedirectURL string
	// PostLogoutRedirectURL is where the identity server sends the browser
	// after SignOut ([authcode.Config.PostLogoutRedirectURL]).
	PostLogoutRedirectURL string
	// UserScopes are requested at sign-in ([authcode.Config.Scopes]); empty
	// means openid, profile, offline_access, read and update.
	UserScopes []string
	// ServiceScopes are requested for the service token
	// ([clientcreds.Config.Scopes]), e.g. "read". Empty asks for every API
	// scope the Trusted Application allows. openid, profile and
	// offline_access need a user and are refused.
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
	// Keys seal the session cookies (see [authcode.Config.Keys]): the first
	// seals, all open. Nil means a random key per process.
	Keys [][]byte
	// HTTPClient sends the requests to the identity server (both flows);
	// nil means a client with a 30 s timeout. It is not used for API calls
	// (see Transport).
	HTTPClient *http.Client
	// Transport is the base transport of the API clients of both sides
	// ([UserAPI.UserClient], [ServiceAPI.ServiceClient]); nil means
	// http.DefaultTransport.
	Transport http.RoundTripper
	// AuthStyle is how the client secret is sent to the token endpoint;
	// the zero value, oauth2.AuthStyleAutoDetect, uses HTTP Basic unless
	// discovery lists only client_secret_post.
	AuthStyle oauth2.AuthStyle
	// Retry tunes retries of the token endpoint and of idempotent API
	// calls answered 429 or 503; the zero value is sensible.
	Retry auth.Retry
	// LogUsers adds user names to the diagnostics in Logger (never to
	// AuditLogger, whose records always name the user); off by default.
	LogUsers bool
	// Hooks, if set, receive what both sides do (see [auth.Hooks]): events
	// of the user side have Flow "authcode", of the service side
	// "clientcreds".
	Hooks *auth.Hooks
	// Now is the clock of both sides, for tests; nil means time.Now.
	Now func() time.Time

	// Users is the user side of a split set-up, used as it is; Service
	// must be set with it. [App.Close] does not close it: close it yourself
	// after the App.
	Users *authcode.Client
	// Service is the service side of a split set-up, used as it is; Users
	// must be set with it. Its client_id names the System User in audit
	// records and [ServiceAPI.ClientID]. [App.Close] does not close it: close
	// it yourself after the App.
	Service *clientcreds.Source

	// Logger receives diagnostics of the App (GuardResponses) and, in the
	// simple set-up, of both sides. Tokens, secrets and cookie values are
	// never logged. Nil discards them.
	Logger *slog.Logger
	// AuditLogger receives the audit records of RunAsService and
	// RunBackground (they name the user who triggered a job); nil means
	// Logger, and with neither set the records are dropped. The SDK never
	// writes to slog.Default().
	AuditLogger *slog.Logger
}

// userScopesOnly are scopes that need a signed-in user.
var userScopesOnly = []string{"openid", "profile", "offline_access"}

// split reports whether c is a split set-up, after checking it is one
// whole set-up or the other.
func (c Config) split() (bool, error) {
	switch {
	case c.Users == nil && c.Service == nil:
		return false, nil
	case c.Users == nil:
		return true, config.Err("Users", "is required with Service: pass both sides, or neither")
	case c.Service == nil:
		return true, config.Err("Service", "is required with Users: pass both sides, or neither")
	}
	// One rule for every field of the simple set-up: it would configure a
	// side the App does not build, so it must be empty.
	v := reflect.ValueOf(c)
	for i := range v.NumField() {
		switch f := v.Type().Field(i); f.Name {
		case "Users", "Service", "Logger", "AuditLogger":
		default:
			if !v.Field(i).IsZero() {
				return true, config.Err(f.Name, "must be empty with Users and Service: the clients you built are used as they are")
			}
		}
	}
	return true, nil
}

// check checks the simple set-up: the fields both sides share by the rules
// of every package, and what only the App needs (it serves the sign-in
// handlers, and a service token has no user). The sides check the rest.
func (c Config) check() error {
	return config.First(
		config.Authority("Authority", c.Authority),
		config.ClientID("ClientID", c.ClientID),
		config.ClientSecretFile("ClientSecretFile", c.ClientSecretFile, c.ClientSecret),
		config.ClientSecret("ClientSecret", c.ClientSecret, c.ClientSecretFile == "",
			"(or ClientSecretFile): the service side's Client Credentials need a confidential Trusted Application"),
		requiredRedirect(c.RedirectURL),
		checkServiceScopes(c.ServiceScopes),
	)
}

func requiredRedirect(v string) error {
	if v == "" {
		return config.Err("RedirectURL", "is required: the App serves the sign-in Callback handler")
	}
	return nil
}

func checkServiceScopes(scopes []string) error {
	for i, sc := range scopes {
		if slices.Contains(userScopesOnly, sc) {
			return config.Err(config.Index("ServiceScopes", i), "must not be openid, profile or offline_access: a service token acts as the System User, not a user (ask for them in UserScopes)")
		}
	}
	return nil
}

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
	return clientcreds.Config{
		Authority:        c.Authority,
		ClientID:         c.ClientID,
		ClientSecret:     c.ClientSecret,
		ClientSecretFile: c.ClientSecretFile,
		Scopes:           c.ServiceScopes,
		DomainAPI:        c.DomainAPI,
		HTTPClient:       c.HTTPClient,
		Transport:        c.Transport,
		AuthStyle:        c.AuthStyle,
		Retry:            c.Retry,
		Logger:           c.Logger,
		Hooks:            c.Hooks,
		Now:              c.Now,
	}
}

// fieldName rewrites a side's ConfigError so that it names the hybrid
// Config field: only Scopes is spelled differently here.
func fieldName(err error, scopes string) error {
	var ce *auth.ConfigError
	if err == nil || !errors.As(err, &ce) {
		return err
	}
	if rest, ok := strings.CutPrefix(ce.Field, "Scopes"); ok {
		return config.Err(scopes+rest, ce.Reason)
	}
	return err
}
