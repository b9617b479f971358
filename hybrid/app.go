package hybrid

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync/atomic"

	"github.com/erpnetgo/auth/authcode"
	"github.com/erpnetgo/auth/clientcreds"
	"github.com/erpnetgo/auth/internal/autherr"
)

// Errors to branch on with errors.Is. They are shared with authcode and
// clientcreds (hybrid.ErrTemporary == authcode.ErrTemporary).
var (
	// ErrNoSession means the request carries no valid user session (see
	// authcode.ErrNoSession).
	ErrNoSession = authcode.ErrNoSession
	// ErrReauthRequired means the user's refresh token is dead: the user
	// must sign in again.
	ErrReauthRequired = autherr.ErrReauthRequired
	// ErrTemporary means the identity server, the network or the session
	// Store failed in a way that may pass; the SDK has already retried.
	ErrTemporary = autherr.ErrTemporary
	// ErrMisconfigured means a request can never succeed as configured
	// (invalid_client, unauthorized_client, invalid_scope, an invalid
	// Config).
	ErrMisconfigured = autherr.ErrMisconfigured
	// ErrClosed is returned after App.Close.
	ErrClosed = autherr.ErrClosed
)

// App is one application that signs users in and also works as its Trusted
// Application's System User, keeping the two identities apart. Create it
// with New; it is safe for concurrent use. Close it when done.
type App struct {
	users   *authcode.Client
	svc     *clientcreds.Source
	service ServiceAPI // what Service returns
	svcID   string     // the service side's client_id
	log     *slog.Logger
	audit   *slog.Logger
	seen    atomic.Pointer[seenTokens]
	closed  atomic.Bool
}

// New validates cfg and returns an App. It does no network I/O: the
// identity server is discovered, and the service token fetched, on first
// use. Errors name the Config field and never contain a secret.
func New(cfg Config) (*App, error) {
	ucfg, uExplicit := cfg.userConfig()
	scfg, sExplicit := cfg.serviceConfig()
	if err := validateShared(ucfg, uExplicit, scfg, sExplicit); err != nil {
		return nil, err
	}
	if err := scfg.Validate(); err != nil {
		return nil, renameField(err, "Service", sExplicit, "ServiceScopes")
	}
	users, err := authcode.New(ucfg)
	if err != nil {
		return nil, renameField(err, "Users", uExplicit, "UserScopes")
	}
	svc, err := clientcreds.New(scfg)
	if err != nil {
		_ = users.Close()
		return nil, renameField(err, "Service", sExplicit, "ServiceScopes")
	}
	a := &App{users: users, svc: svc, svcID: scfg.ClientID, log: cfg.Logger, audit: cfg.AuditLogger}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if a.audit == nil {
		a.audit = cfg.Logger
	}
	if a.audit == nil {
		a.audit = slog.Default()
	}
	base := http.DefaultTransport
	if scfg.HTTPClient != nil && scfg.HTTPClient.Transport != nil {
		base = scfg.HTTPClient.Transport
	}
	client := &http.Client{Transport: &guardTransport{app: a, side: sideService,
		next: svc.Transport(&observer{app: a, base: base})}}
	a.service = ServiceAPI{s: &serviceState{app: a, clientID: a.svcID, client: client, ctx: context.Background()}}
	return a, nil
}

// Close stops the background token refreshes of both sides and waits for
// them. Sessions stay in the Store. Requests through the App's clients
// after Close fail with ErrClosed.
func (a *App) Close() error {
	if a.closed.Swap(true) {
		return nil
	}
	return errors.Join(a.users.Close(), a.svc.Close())
}

// SignIn returns the handler that starts a user's sign-in (see
// authcode.Client.SignIn). Mount it at the sign-in path (default /signin).
func (a *App) SignIn() http.Handler { return a.users.SignIn() }

// Callback returns the handler for the RedirectURL (see
// authcode.Client.Callback).
func (a *App) Callback() http.Handler { return a.users.Callback() }

// SignOut returns the handler that signs the user out and ends the ERP.net
// session (see authcode.Client.SignOut). It touches only that user's
// session: the service token and other users' sessions are unaffected.
func (a *App) SignOut() http.Handler { return a.users.SignOut() }

// RequireUser is middleware that lets only signed-in users through, with
// their authcode.Session in the request context (authcode.RequireUser), and
// guards responses against service tokens (GuardResponses). Prefer WithUser,
// which also resolves the UserAPI.
func (a *App) RequireUser(next http.Handler) http.Handler {
	return a.users.RequireUser(a.markSession(a.GuardResponses(next)))
}

type sessionOwnerKey struct{}

// markSession records in the context that the session there was put by
// this App's RequireUser, so User and RunAsService may use it.
func (a *App) markSession(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), sessionOwnerKey{}, a)))
	})
}

// sessionFrom returns the session this App's RequireUser put in ctx.
func (a *App) sessionFrom(ctx context.Context) *authcode.Session {
	if owner, _ := ctx.Value(sessionOwnerKey{}).(*App); owner != a {
		return nil
	}
	return authcode.SessionFromContext(ctx)
}

// WithUser is middleware that resolves the signed-in user's UserAPI once
// per request and puts it in the request context, where UserFrom (and
// App.User) find it. Requests without a session are handled as by
// authcode's RequireUser: browsers are redirected to sign in, API callers
// get 401, a failing Store gives 503. Responses are guarded against service
// tokens (GuardResponses).
func (a *App) WithUser(next http.Handler) http.Handler {
	inner := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := authcode.SessionFromContext(r.Context())
		if s == nil { // cannot happen behind RequireUser; be safe
			http.Error(w, "not signed in", http.StatusUnauthorized)
			return
		}
		u := a.userAPI(r.Context(), s)
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), userCtxKey{}, u)))
	})
	return a.users.RequireUser(a.GuardResponses(inner))
}

type userCtxKey struct{}

// UserFrom returns the UserAPI that App.WithUser put in ctx.
func UserFrom(ctx context.Context) (UserAPI, bool) {
	u, ok := ctx.Value(userCtxKey{}).(UserAPI)
	return u, ok && u.u != nil
}

// User returns the UserAPI of the user who sent r: the one this App's
// WithUser put in r's context, else the session this App's RequireUser put
// there, else the session named by r's cookie (one Store round trip). Without a session it returns
// an error matching ErrNoSession. It neither checks nor refreshes the
// user's token: a dead refresh token shows up on the first API call as an
// error matching ErrReauthRequired (WithUser checks it up front).
//
// The UserAPI is bound to r's context; use it for this request only.
func (a *App) User(r *http.Request) (UserAPI, error) {
	if a.closed.Load() {
		return UserAPI{}, ErrClosed
	}
	if u, ok := UserFrom(r.Context()); ok && u.u.app == a {
		return u, nil
	}
	s := a.sessionFrom(r.Context())
	if s == nil {
		var err error
		if s, err = a.users.UserSession(r); err != nil {
			return UserAPI{}, err
		}
	}
	return a.userAPI(r.Context(), s), nil
}

// userAPI builds the UserAPI of session s, bound to ctx.
func (a *App) userAPI(ctx context.Context, s *authcode.Session) UserAPI {
	hc := a.users.UserClient(ctx, s)
	return UserAPI{u: &userState{
		app:     a,
		session: s,
		client:  &http.Client{Transport: &guardTransport{app: a, side: sideUser, next: hc.Transport}},
		ts:      a.users.TokenSource(ctx, s),
	}}
}

// Service returns the ServiceAPI, which acts as the Trusted Application's
// System User. Every call returns the same value, backed by one token cache
// per App; create one App per process and keep it.
func (a *App) Service() ServiceAPI { return a.service }
