// Package hybrid is for applications that do both: sign users in and call
// ERP.net as each user (Authorization Code + PKCE, package authcode), and
// do their own work as the Trusted Application's System User (Client
// Credentials, package clientcreds). A customer portal that shows users
// their own data and runs an import in the background is the typical case.
//
// ERP.net lets one Trusted Application serve both flows with the same
// client_id, and sets one rule for it: user tokens and service tokens stay
// completely apart. A user's token is never forwarded to a backend job; a
// service token never reaches a browser; each flow has its own token cache.
// This package makes that rule hard to break:
//
//   - By type. [App.User] gives a UserAPI, [App.Service] a ServiceAPI. They are
//     distinct struct types that cannot be assigned or converted to each
//     other, and their methods have different names (UserClient,
//     UserTokenSource; ServiceClient, ServiceTokenSource), so no interface
//     carries both. Passing a user's identity where the System User's is
//     expected, or the reverse, does not compile.
//   - By store. User sessions (with their tokens) live in the Store, under
//     authcode's namespaced keys; the session cookie holds only a sealed
//     session id. The service token lives in one in-memory cache per App,
//     never in the Store, a cookie or another process (ERP.net's license
//     terms forbid sharing it). The two caches share nothing, so signing a
//     user out never disturbs the service token, nor other users.
//   - By transport. Each side's client is the SDK's own credential
//     transport ([authcode.Client.UserClient], [clientcreds.Source.Client]:
//     instance-bound, one token per request). Before it, both refuse a
//     request that already carries credentials (an Authorization, X-Api-Key
//     or Api-Key header, or user info in the URL), say a user's token
//     someone copied onto a request for the service client, with an error
//     matching [ErrIdentityMix], before anything is sent.
//   - At the response. WithUser and GuardResponses refuse to deliver a
//     response whose headers (cookies and 1xx informational headers
//     included), body or trailers contain the service token the App's
//     Source holds. This is a safety net: it cannot recognise a token that
//     was encoded or transformed, and no middleware can police every path
//     to a browser. The rule stays yours: never put
//     ServiceTokenSource's tokens, or anything derived from them, in a
//     response, a cookie, a redirect or client-side code.
//
// # Jobs a user triggers but the System User runs
//
// Some work is asked for by a user but needs the application's own rights,
// or must go on after the user's request: an "Import now" button. Do not
// run it with the user's token, and do not hand the user's token to it. Use
// [App.RunAsService]: fn receives a ServiceAPI and a context without the
// request's values (so neither the user's session nor UserAPI is reachable
// through it), and two audit records (slog, [Config.AuditLogger]) say which
// job ran, who triggered it (the user's subject, from the session, never a
// token), which System User ran it (the client_id), when, and how it ended.
// [App.RunBackground] is the same for scheduled jobs no user triggered.
//
// # Wiring
//
//	app, err := hybrid.New(hybrid.Config{
//		Authority:     "https://demodb.my.erp.net",
//		ClientID:      "com.example/portal",
//		ClientSecret:  os.Getenv("ERPNET_CLIENT_SECRET"),
//		RedirectURL:   "https://portal.example.com/callback",
//		ServiceScopes: []string{"read"},
//		Store:         store, // authcode/redisstore with several replicas
//		Keys:          keys,  // stable across restarts and replicas
//	})
//	if err != nil {
//		return err // an *auth.ConfigError naming the field
//	}
//	defer app.Close()
//	mux.Handle("/signin", app.SignIn())
//	mux.Handle("/callback", app.Callback())
//	mux.Handle("/signout", app.SignOut()) // a "Sign out" button's POST
//	mux.Handle("/", app.WithUser(pageHandler)) // UserFrom(r.Context()) inside
//	go importLoop(ctx, app)                    // app.RunBackground every minute
//
// The Trusted Application needs the redirect URI registered, and
// SystemUserAllowed with a System User for the service side. With two
// Trusted Applications (one for users, one for the service), or settings
// only [authcode.Config] or [clientcreds.Config] offer, build both sides
// yourself and pass them as [Config.Users] and [Config.Service] (the split
// set-up); the App uses them as they are and leaves closing them to you:
//
//	app, err := hybrid.New(hybrid.Config{Users: users, Service: source, AuditLogger: audit})
//
// Errors match the SDK-wide kinds of package auth ([auth.ErrReauthRequired],
// [auth.ErrTemporary], [auth.ErrMisconfigured], [auth.ErrClosed]) and
// [authcode.ErrNoSession]; an invalid Config gives an [*auth.ConfigError]
// naming the hybrid Config field.
package hybrid
