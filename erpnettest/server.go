package erpnettest

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/erpnetgo/auth/internal/devserver"
)

// Config adds Trusted Applications and users to a Server and tunes it. The zero value gives
// a server with the demo applications and users only.
type Config struct {
	// Apps are Trusted Applications registered besides the demo ones; one with a demo
	// application's ID replaces it.
	Apps []App
	// Users are users registered besides the demo ones; one with a demo user's name
	// replaces it.
	Users []User
	// Addr is the host:port to listen on; empty means 127.0.0.1 on a free port.
	Addr string
	// AccessTokenLifetime is the lifetime of access tokens; zero means 1 hour (as ERP.net).
	AccessTokenLifetime time.Duration
	// IDTokenLifetime is the lifetime of ID tokens; zero means 5 minutes (as ERP.net).
	IDTokenLifetime time.Duration
	// RefreshTokenLifetime is the absolute lifetime of a sign-in's refresh tokens, counted
	// from the sign-in; zero means 30 days for confidential and 24 hours for public
	// applications (as ERP.net).
	RefreshTokenLifetime time.Duration
	// LicenseCount caps the ERP.net API sessions open at once on the Domain API; when all are
	// taken it answers 403 MaximumLicenseCountExceeded. Zero means unlimited.
	LicenseCount int
	// Logger receives the server's diagnostics (sign-ins, token issues, faults, sessions);
	// nil discards them. Secrets are never logged.
	Logger *slog.Logger
	// OmitIss leaves the RFC 9207 iss parameter out of authorization responses (and its
	// advertisement out of discovery), as ERP.net versions that predate it do. By default the
	// server sends it, so an app can refuse another instance's code before redeeming it.
	OmitIss bool
}

// App is a Trusted Application: an OAuth client registration.
type App struct {
	// ID is the client_id, the application's ApplicationUri, e.g. "com.example/app".
	ID string
	// Name is the display name shown on the sign-in page; empty means ID.
	Name string
	// Secret is the client secret of a confidential application; empty makes the
	// application public (it must not send a secret, and PKCE protects it).
	Secret string
	// RedirectURIs are the sign-in redirect URIs, matched exactly and case-sensitively,
	// except that http://127.0.0.1/<path> or http://[::1]/<path> (no port) matches any port.
	RedirectURIs []string
	// PostLogoutURIs are the post-logout redirect URIs, matched like RedirectURIs.
	PostLogoutURIs []string
	// SystemUser, when set, allows the System User: client credentials tokens and SATs of
	// this application act as this user.
	SystemUser string
	// Scopes are the allowed scopes, from openid, profile, read, update, offline_access and
	// DomainApi; empty allows them all.
	Scopes []string
	// AccessTokenLifetime overrides Config.AccessTokenLifetime for this application.
	AccessTokenLifetime time.Duration
	// RefreshTokenLifetime overrides Config.RefreshTokenLifetime for this application.
	RefreshTokenLifetime time.Duration
	// Disabled makes the identity server refuse the application (ERP.net's IsEnabled off).
	Disabled bool
}

// User is an ERP.net user who signs in with a password.
type User struct {
	// Username is the sign-in name and the sub claim of the user's tokens.
	Username string
	// Password is what the sign-in form accepts.
	Password string
	// Name is the display name (the name claim).
	Name string
	// Email is the e-mail address (the email claim).
	Email string
	// Administrator marks an ERP.net administrator.
	Administrator bool
}

// Demo names the demo Trusted Applications and users every Server has (see the package
// documentation for what each may do). Treat it as read-only: changing it changes nothing
// on any Server.
var Demo = struct {
	// WebAppID and WebAppSecret are a confidential web application with a System User.
	WebAppID, WebAppSecret string
	// WorkerID and WorkerSecret are a confidential background service (client credentials).
	WorkerID, WorkerSecret string
	// CLIID is a public native application (loopback redirect, no secret).
	CLIID string
	// Alice is an administrator; AlicePassword is her password.
	Alice, AlicePassword string
	// Bob is an ordinary user; BobPassword is his password.
	Bob, BobPassword string
}{
	WebAppID: "com.example/webapp", WebAppSecret: "webapp-secret",
	WorkerID: "com.example/worker", WorkerSecret: "w0rker:s3cret%+/=",
	CLIID: "com.example/cli",
	Alice: "alice", AlicePassword: "alice-password",
	Bob: "bob", BobPassword: "bob-password",
}

// Server is a running ERP.net-shaped identity server and Domain API. Its methods are safe
// for concurrent use.
type Server struct {
	ds        *devserver.Server
	tb        testing.TB // nil for a Server made by Start
	passwords map[string]string
	tr        *http.Transport // shared by the clients SignIn returns
	closeOnce sync.Once
	closeErr  error
}

// NewServer starts a Server for a test on 127.0.0.1 and closes it with tb.Cleanup. At most
// one Config may be given; none means the demo applications and users only. A bad Config
// or a failure to listen ends the test with tb.Fatal. Programs and Example functions use
// Start instead.
func NewServer(tb testing.TB, cfg ...Config) *Server {
	if tb == nil {
		panic("erpnettest: NewServer needs a testing.TB; without one use Start and Close")
	}
	tb.Helper()
	if len(cfg) > 1 {
		tb.Fatalf("erpnettest: NewServer takes at most one Config, got %d", len(cfg))
	}
	var c Config
	if len(cfg) == 1 {
		c = cfg[0]
	}
	s, err := Start(c)
	if err != nil {
		tb.Fatal(err)
	}
	s.tb = tb
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Errorf("erpnettest: close: %v", err)
		}
	})
	return s
}

// Start starts a Server that runs until Close, for programs and Example functions; tests
// use NewServer. Methods of a Server made by Start panic where those of one made by
// NewServer would fail the test.
func Start(cfg Config) (*Server, error) {
	dcfg, passwords, err := devConfig(cfg)
	if err != nil {
		return nil, err
	}
	ds, err := devserver.Start(dcfg)
	if err != nil {
		return nil, errors.New("erpnettest: " + strings.TrimPrefix(err.Error(), "devserver: "))
	}
	return &Server{ds: ds, passwords: passwords, tr: &http.Transport{MaxIdleConnsPerHost: 8}}, nil
}

// URL returns the instance root, e.g. "http://127.0.0.1:41234", without a trailing slash:
// what an app is given as its ERP.net instance (its Authority). ERP.net auto-discovery is
// at URL()+"/sys/auto-discovery".
func (s *Server) URL() string { return s.ds.URL() }

// Authority returns the identity server's URL, URL()+"/id": the issuer of its tokens, with
// OpenID Connect discovery at Authority()+"/.well-known/openid-configuration".
func (s *Server) Authority() string { return s.ds.Issuer() }

// DomainAPI returns the Domain API (OData) service root, URL()+"/api/domain/odata/", with a
// trailing slash: append an entity set name such as "Crm_Sales_Customers".
func (s *Server) DomainAPI() string { return s.ds.URL() + "/api/domain/odata/" }

// Close stops the server, waits for the requests in flight and closes the idle connections
// of the clients SignIn returned. It is idempotent, and does nothing on a nil *Server;
// NewServer's cleanup calls it.
func (s *Server) Close() error {
	if s == nil {
		return nil
	}
	s.closeOnce.Do(func() {
		s.closeErr = s.ds.Close()
		s.tr.CloseIdleConnections()
	})
	return s.closeErr
}

// Advance moves the server's clock forward by d: tokens, codes, sessions and reference
// tokens expire by this clock. It does not move the app's clock: an app that caches tokens
// by its own (its Config.Now) keeps using one it believes fresh until the server refuses
// it. Give the app and the server one clock: a func the app's Config.Now reads, moved
// together with Advance (README, "Testing your app").
func (s *Server) Advance(d time.Duration) { s.ds.Advance(d) }

// RotateKeys makes a new signing key current. The old key stays in the JWKS, and tokens
// signed with it stay valid, for one hour of server time.
func (s *Server) RotateKeys() { s.ds.RotateKeys() }

// RevokeUser does what an ERP.net password change does: every sign-in of the user ends, and
// with it their refresh tokens (the next refresh gets invalid_grant), the access tokens
// issued in those sign-ins and their ERP.net API sessions. Reference tokens are not affected.
func (s *Server) RevokeUser(username string) { s.ds.RevokeUser(username) }

// SessionsOpened returns how many ERP.net API sessions the Domain API has opened since the
// server started. The first call with a token opens one; further calls with the same token
// reuse it until it has been idle for 20 minutes (a client credentials session ends after
// an hour). An app that fetches a token per request opens an API session per request.
func (s *Server) SessionsOpened() int { return s.ds.SessionsOpened() }

// LicensesInUse returns how many ERP.net API sessions are open now, by the server's clock: the
// license slots taken (see Config.LicenseCount).
func (s *Server) LicensesInUse() int { return s.ds.OpenSessions() }

// Requests returns how many requests reached the named endpoint (see the package
// documentation for the names), faulted ones included.
func (s *Server) Requests(endpoint string) int {
	ep, ok := s.endpoint(endpoint)
	if !ok {
		return 0
	}
	return s.ds.Count(ep)
}

// fail reports a misuse of the Server: through the test's tb, or by panicking.
func (s *Server) fail(format string, args ...any) {
	msg := fmt.Sprintf("erpnettest: "+format, args...)
	if s.tb != nil {
		s.tb.Helper()
		s.tb.Fatal(msg)
		return
	}
	panic(msg)
}

// endpointNames maps a normalized endpoint name to the server's endpoint.
var endpointNames = map[string]devserver.Endpoint{
	"discovery": devserver.Discovery, "jwks": devserver.JWKS, "authorize": devserver.Authorize,
	"signin": devserver.SignIn, "token": devserver.Token, "userinfo": devserver.Userinfo,
	"revocation": devserver.Revocation, "introspect": devserver.Introspect,
	"endsession": devserver.EndSession, "autodiscovery": devserver.AutoDiscovery,
	"domainapi": devserver.DomainAPI,
}

func (s *Server) endpoint(name string) (devserver.Endpoint, bool) {
	norm := strings.NewReplacer("-", "", "_", "").Replace(strings.ToLower(strings.TrimSpace(name)))
	ep, ok := endpointNames[norm]
	if !ok {
		if s.tb != nil {
			s.tb.Helper()
		}
		s.fail("unknown endpoint %q (want discovery, jwks, authorize, signin, token, userinfo, revocation, introspect, endsession, autodiscovery or domainapi)", name)
	}
	return ep, ok
}

// Demo registrations for loopback apps on any port.
const (
	loopbackCallback   = "http://127.0.0.1/callback"
	loopbackPostLogout = "http://127.0.0.1/"
	loopbackSignedOut  = "http://127.0.0.1/signed-out"
)

// devConfig turns cfg into the internal server's configuration: the demo registrations, then
// cfg's, which replace demo ones of the same name. It also returns every user's password.
func devConfig(cfg Config) (devserver.Config, map[string]string, error) {
	d := devserver.Demo()
	for i := range d.Apps {
		if d.Apps[i].ApplicationURI == devserver.DemoWebAppID {
			d.Apps[i].RedirectURIs = append(d.Apps[i].RedirectURIs, loopbackCallback)
			d.Apps[i].PostLogoutRedirectURIs = append(d.Apps[i].PostLogoutRedirectURIs, loopbackPostLogout, loopbackSignedOut)
		}
	}
	var errs []error
	for i, a := range cfg.Apps {
		if a.ID == "" {
			errs = append(errs, fmt.Errorf("config: Apps[%d]: ID is required", i))
			continue
		}
		da := devserver.App{
			ApplicationURI:         a.ID,
			Name:                   a.Name,
			ClientType:             devserver.Public,
			RedirectURIs:           a.RedirectURIs,
			PostLogoutRedirectURIs: a.PostLogoutURIs,
			SystemUserAllowed:      a.SystemUser != "",
			SystemUser:             a.SystemUser,
			Scopes:                 a.Scopes,
			AccessTokens:           devserver.AccessTokensAuthenticatedUsers,
			Disabled:               a.Disabled,
			AccessTokenLifetime:    a.AccessTokenLifetime,
			RefreshTokenLifetime:   a.RefreshTokenLifetime,
		}
		if a.Secret != "" {
			da.ClientType = devserver.Confidential
			da.SecretHash = devserver.HashSecret(a.Secret)
		}
		replaced := false
		for j := range d.Apps {
			if d.Apps[j].ApplicationURI == a.ID {
				d.Apps[j], replaced = da, true
			}
		}
		if !replaced {
			d.Apps = append(d.Apps, da)
		}
	}
	for _, u := range cfg.Users {
		du := devserver.User{Username: u.Username, Password: u.Password, Name: u.Name, Email: u.Email, Administrator: u.Administrator}
		replaced := false
		for j := range d.Users {
			if d.Users[j].Username == u.Username {
				d.Users[j], replaced = du, true
			}
		}
		if !replaced {
			d.Users = append(d.Users, du)
		}
	}
	if cfg.Addr != "" {
		d.BaseURL = "http://" + cfg.Addr
	}
	if cfg.AccessTokenLifetime < 0 || cfg.IDTokenLifetime < 0 {
		errs = append(errs, errors.New("token lifetimes must not be negative"))
	}
	d.AccessTokenLifetime = cfg.AccessTokenLifetime
	d.IDTokenLifetime = cfg.IDTokenLifetime
	d.RefreshTokenLifetime = cfg.RefreshTokenLifetime
	d.LicenseCount = cfg.LicenseCount
	d.Logger = cfg.Logger
	d.AuthorizationResponseIss = !cfg.OmitIss
	if err := errors.Join(errs...); err != nil {
		return d, nil, fmt.Errorf("erpnettest: invalid config: %w", err)
	}
	passwords := make(map[string]string, len(d.Users))
	for _, u := range d.Users {
		passwords[u.Username] = u.Password
	}
	return d, passwords, nil
}
