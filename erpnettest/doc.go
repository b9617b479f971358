// Package erpnettest runs an ERP.net-shaped identity server and Domain API stand-in in your
// tests, so an app built on this SDK can be tested without an ERP.net instance.
//
// A Server listens on 127.0.0.1 and behaves like an ERP.net instance root: ERP.net
// auto-discovery at <root>/sys/auto-discovery, the identity server ("Instance ID") at
// <root>/id with OpenID Connect discovery, JWKS, authorize (with an HTML sign-in form),
// token, revocation, userinfo, introspection and end-session endpoints, and a small Domain
// API (OData) at <root>/api/domain/odata/ with the entity sets Crm_Sales_Customers and
// General_Contacts. Tokens are RS256 JWTs; refresh tokens are one-time (every refresh
// rotates them); PKCE (S256) is required; ERP.net API sessions and license slots are counted on
// the Domain API.
//
// In a test, NewServer starts one and closes it when the test ends:
//
//	srv := erpnettest.NewServer(t)
//	cfg := clientcreds.Config{
//		Authority:    srv.URL(), // what the app is given as its ERP.net instance
//		ClientID:     erpnettest.Demo.WorkerID,
//		ClientSecret: erpnettest.Demo.WorkerSecret,
//	}
//
// Programs and Example functions, which have no testing.TB, use Start and Close.
//
// # Demo applications and users
//
// Every Server has these Trusted Applications and users (named by the fields of Demo);
// Config adds more, and an App or User with the same ID or user name replaces the demo one.
//
//	client_id            type          secret              System User     scopes
//	com.example/webapp   confidential  webapp-secret       portal-system   all
//	com.example/worker   confidential  w0rker:s3cret%+/=   worker-system   read update
//	com.example/cli      public        (none)              (none)          openid profile read update offline_access
//
//	user    password         name            administrator
//	alice   alice-password   Alice Anderson  yes
//	bob     bob-password     Bob Brown       no
//
// The web application accepts the redirect URIs http://127.0.0.1/callback and
// http://127.0.0.1:8080/callback (and localhost:8080), and the post-logout URIs
// http://127.0.0.1/, http://127.0.0.1/signed-out and http://127.0.0.1:8080/; the CLI accepts
// http://127.0.0.1/callback.
// A redirect or post-logout URI registered for http://127.0.0.1 or http://[::1] without a
// port matches that URI on any port (RFC 8252), so an app served by net/http/httptest can
// be registered before it listens: serve its Callback handler at /callback. The worker's
// secret contains ':', '%', '+', '/' and '=' on purpose, to catch clients that do not encode
// it.
//
// # What a test can do
//
//   - Sign a user in without a browser: Server.SignIn drives the app's sign-in handler, the
//     identity server's form (with the user's password) and the app's callback, and returns
//     an *http.Client whose cookie jar holds the signed-in session.
//   - Mint and revoke reference tokens (PAT and SAT): Server.MintPAT, Server.MintSAT,
//     Server.RevokeToken.
//   - Inject faults per endpoint: latency, a run of 5xx or 429 with Retry-After, malformed,
//     oversized or empty bodies, dropped connections (Server.InjectFault).
//   - Move the server's clock (Server.Advance; the app's own clock does not move with it:
//     give both one clock), rotate its signing keys (Server.RotateKeys),
//     revoke a user's sign-ins and refresh tokens as a password change does
//     (Server.RevokeUser), store a new client secret as an administrator does
//     (Server.SetSecret: the old one fails at once with invalid_client).
//   - Assert on counters: requests per endpoint (Server.Requests), ERP.net API sessions opened
//     (Server.SessionsOpened) and license slots in use (Server.LicensesInUse).
//   - Serve several instances: each Server is one instance root with its own identity server,
//     keys and counters; register the same App ID with a different Secret on each, as a vendor's
//     Trusted Application is registered on every customer's instance. Authorization responses
//     carry the RFC 9207 iss parameter, so an app can refuse another instance's code before
//     redeeming it; Config.OmitIss leaves it out, as ERP.net versions that predate it do.
//   - Deliver ERP.net Marketplace lifecycle events: a Marketplace (NewMarketplace) publishes its
//     well-known document and public key (PEM or JWK) and signs "installed" and "uninstalled"
//     events (LifecycleEvent) as the Marketplace does; Deliver posts one to the app's redirect
//     URI, Payload, Sign and Envelope build tampered ones, KeyFetches counts key fetches.
//
// Endpoints are named, case-insensitively and ignoring '-' and '_': "discovery", "jwks",
// "authorize", "signin" (the sign-in form's POST), "token", "userinfo", "revocation",
// "introspect", "endsession", "autodiscovery" and "domainapi".
//
// The server keeps everything in memory and never logs a secret. It is for tests and local
// development only.
package erpnettest
