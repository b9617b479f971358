package hybrid

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync/atomic"

	"github.com/erpnetgo/auth"
	"github.com/erpnetgo/auth/authcode"
	"github.com/erpnetgo/auth/clientcreds"
	"github.com/erpnetgo/auth/internal/peek"
)

// App is one application that signs users in and also works as its Trusted
// Application's System User, keeping the two identities apart. Create it
// with [New]; it is safe for concurrent use. Close it when done.
type App struct {
	users     *authcode.Client
	svc       *clientcreds.Source
	own       bool         // New built users and svc (the simple set-up): Close closes them
	svcClient *http.Client // the guarded service client
	service   ServiceAPI   // what Service returns
	svcID     string       // the service side's client_id
	log       *slog.Logger
	audit     *slog.Logger
	seen      atomic.Pointer[seenTokens]
	closed    atomic.Bool
}

// New validates cfg and returns an App. It does no network I/O: the
// identity server is discovered, and the service token fetched, on first
// use. Errors are [*auth.ConfigError] values naming the Config field (as
// spelled in this package's Config) and never contain a secret.
func New(cfg Config) (*App, error) {
	split, err := cfg.split()
	if err != nil {
		return nil, err
	}
	a := &App{log: cfg.Logger, audit: cfg.AuditLogger}
	if split {
		a.users, a.svc, a.svcID = cfg.Users, cfg.Service, peek.SourceClientID(cfg.Service)
	} else {
		if err := cfg.check(); err != nil {
			return nil, err
		}
		users, err := authcode.New(cfg.userConfig())
		if err != nil {
			return nil, fieldName(err, "UserScopes")
		}
		svc, err := clientcreds.New(cfg.serviceConfig())
		if err != nil {
			_ = users.Close()
			return nil, fieldName(err, "ServiceScopes")
		}
		a.users, a.svc, a.svcID, a.own = users, svc, cfg.ClientID, true
	}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if a.audit == nil {
		a.audit = a.log // never a process-wide default: the app decides
	}
	a.svcClient = &http.Client{Transport: &guardTransport{app: a, side: sideService,
		next: a.svc.Client(context.Background()).Transport}}
	a.service = ServiceAPI{s: &serviceState{app: a, ctx: context.Background()}}
	return a, nil
}

// Close stops the background token refreshes of the sides [New] built, and
// waits for them; the [Config.Users] and [Config.Service] of a split set-up
// are left open (the caller closes them). Sessions stay in the
// Store. After Close, the App's clients, token sources and jobs fail with
// [auth.ErrClosed]. Close on a nil *App does nothing.
func (a *App) Close() error {
	if a == nil {
		return nil
	}
	if a.closed.Swap(true) {
		return nil
	}
	if !a.own {
		return nil
	}
	return errors.Join(a.users.Close(), a.svc.Close())
}

// SignIn returns the handler that starts a user's sign-in (see
// [authcode.Client.SignIn]). Mount it at the sign-in path (default /signin).
func (a *App) SignIn() http.Handler { return a.users.SignIn() }

// Callback returns the handler for the RedirectURL (see
// [authcode.Client.Callback]).
func (a *App) Callback() http.Handler { return a.users.Callback() }

// SignOut returns the handler that signs the user out and ends the ERP.net
// session (see [authcode.Client.SignOut]). It touches only that user's
// session: the service token and other users' sessions are unaffected.
func (a *App) SignOut() http.Handler { return a.users.SignOut() }

// WithUser is middleware that lets only signed-in users through: it
// resolves the user's UserAPI once per request and puts it in the request
// context, where [UserFrom] (and [App.User]) find it; the [authcode.Session] is
// there too ([authcode.SessionFromContext]). Requests without a session
// are handled as by [authcode.Client.RequireUser]: a browser loading a page
// is redirected to sign in, one that submitted a form gets a page saying it
// is signed out, fetch, XHR and API callers get 401 with JSON, and a
// failing Store gives 503. Responses are guarded against service tokens
// ([App.GuardResponses]).
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

// UserFrom returns the UserAPI that [App.WithUser] put in ctx.
func UserFrom(ctx context.Context) (UserAPI, bool) {
	u, ok := ctx.Value(userCtxKey{}).(UserAPI)
	return u, ok && u.u != nil
}

// User returns the UserAPI of the user who sent r: the one this App's
// WithUser put in r's context, else the session named by r's cookie (one
// Store round trip). Without a session it returns an error matching
// [authcode.ErrNoSession]. It neither checks nor refreshes the user's token:
// a dead refresh token shows up on the first API call as an error matching
// [auth.ErrReauthRequired] (WithUser checks it up front).
//
// The UserAPI is bound to r's context; use it for this request only.
func (a *App) User(r *http.Request) (UserAPI, error) {
	if a.closed.Load() {
		return UserAPI{}, auth.ErrClosed
	}
	if u, ok := UserFrom(r.Context()); ok && u.u.app == a {
		return u, nil
	}
	s, err := a.users.UserSession(r)
	if err != nil {
		return UserAPI{}, err
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

// DomainAPI returns the Domain API (OData) root, ending in "/", e.g.
// https://demodb.my.erp.net/api/domain/odata/: [Config.DomainAPI], or the
// one ERP.net auto-discovery names, or one derived from the Authority (as
// the service side's [clientcreds.Source] finds it). Append an entity set:
// DomainAPI(ctx) + "Crm_Sales_Customers?$top=10".
func (a *App) DomainAPI(ctx context.Context) (string, error) { return a.svc.DomainAPI(ctx) }

// Service returns the ServiceAPI, which acts as the Trusted Application's
// System User. Every call returns the same value, backed by one token cache
// per App; create one App per process and keep it.
func (a *App) Service() ServiceAPI { return a.service }
