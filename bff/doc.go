// Package bff is a backend-for-frontend for single-page apps on ERP.net:
// the Go server signs users in as a confidential client (package
// authcode), keeps their tokens server-side, and forwards the SPA's calls
// to the Domain API with the user's access token. No token ever reaches the
// browser, which holds only authcode's sealed, HttpOnly session cookie.
// This is the pattern the IETF "OAuth 2.0 for Browser-Based Applications"
// BCP recommends, and the one ERP.net's documentation calls "SPAs with a
// backend": a browser-only (public) client would get no usable refresh and
// could not renew silently, since ERP.net's identity server cannot be
// framed.
//
// Mount the handler New returns at /bff/ (without stripping the prefix),
// next to the Client's Callback at its redirect URL:
//
//	ac, err := authcode.New(authcode.Config{
//		Authority:             "https://demodb.my.erp.net",
//		ClientID:              "com.example/spa",
//		ClientSecret:          os.Getenv("ERPNET_CLIENT_SECRET"),
//		RedirectURL:           "https://app.example.com/callback",
//		PostLogoutRedirectURL: "https://app.example.com/",
//		Keys:                  [][]byte{key},
//	})
//	b, err := bff.New(bff.Config{Client: ac})
//	mux.Handle("/callback", ac.Callback())
//	mux.Handle("/bff/", b)
//	mux.Handle("/", spaFiles)
//
// # Endpoints
//
//	GET  /bff/login?returnUrl=/path   starts a sign-in (a navigation), then lands on /path
//	GET  /bff/user                    the signed-in user as JSON, or 401 JSON
//	GET  /bff/logout?sid=...          the logoutUrl of /bff/user: signs out (a navigation)
//	POST /bff/logout                  signs out (from a script, with X-CSRF: 1, or a form with sid)
//	*    /bff/api/<path>              forwarded to the Domain API root + <path>, as the user
//
// /bff/user answers
//
//	{"sub":"alice","name":"Alice Anderson","logoutUrl":"/bff/logout?sid=...","sessionExpiresIn":1209540}
//
// with the ID token claims Config.Claims names added beside sub and name
// (401 JSON when signed out: see Errors).
// sessionExpiresIn is the number of seconds until the session ends (its
// cookie's lifetime, authcode.Config.SessionTTL, counts from the sign-in).
// The sid of logoutUrl is derived one-way from the session; it is not the
// session's Store key and opens nothing.
//
// # Anti-forgery
//
// Every request to /bff/user and /bff/api/ must carry the header
// "X-CSRF: 1"; without it the answer is 401 and nothing is forwarded. A
// page on another site cannot send a custom header without a CORS
// preflight, which the BFF never grants, so the header proves the request
// comes from the app's own scripts (requests whose Sec-Fetch-Site says
// cross-site are refused as well). Sign-out needs that header (POST from
// a script) or the sid of logoutUrl, which another site cannot know: a GET
// of /bff/logout without sid is answered 400.
//
// # Signing out
//
// Send the browser to logoutUrl (a link, or window.location): the BFF
// revokes the refresh token, deletes the session and clears the cookie
// (authcode's SignOut), then redirects to the identity server's
// end-session endpoint, which ends the user's session there (and frees
// its ERP.net license) and returns to the Client's PostLogoutRedirectURL.
// A script's POST /bff/logout with the anti-forgery header signs out alike, but
// fetch cannot follow the redirect to another origin: the identity
// server's session then stays, so prefer the navigation. A sign-out link
// of a browser that has no session any more leads back to the app without
// asking the identity server anything.
//
// # The API proxy
//
// /bff/api/<path>?<query> is sent to the Domain API root (what
// authcode.Client.DomainAPI returns) + <path>?<query> through the Client's
// UserClient transport, the one every flow of the SDK uses: it adds the
// user's access token from the session's token cache (however many calls
// race, one refresh; ERP.net rotates refresh tokens), sends it only to the
// instance, refreshes once on a 401 and backs off on 429 and 503. The
// response streams back, with the Domain API's status, headers and body.
//
// Before anything is sent the proxy refuses (400) a path that could leave
// the Domain API root, decoded layer by layer: dot segments (.., %2e%2e,
// ..%2f), empty segments (//), backslashes, '@', control characters, a
// scheme (an absolute URI), an absolute-form request target; and answers
// 405 to a method off its allowlist (Config.Methods). (A router that
// cleans paths, as http.ServeMux does, may redirect such a request to its
// cleaned path first; that path is checked the same way.) It removes the
// browser's Cookie, Authorization, X-Api-Key and Api-Key headers (and X-CSRF,
// Origin, Referer and the Sec-Fetch headers), and the Domain API's
// Set-Cookie. A request whose method is not idempotent (POST, PATCH) is
// sent once: after a 401 it is not replayed, the refused token is dropped
// and the 401 comes back; the next call gets a fresh token.
//
// # Many ERP.net instances
//
// With Config.Instances (an instances.Registry) instead of Config.Client,
// one BFF serves the users of every instance the registry serves:
// /bff/login?instance=<root> signs the user in at that instance (or
// wherever the registry's Resolve says), /bff/user shows who is signed in
// wherever, and /bff/api/ forwards to the Domain API of the instance the
// user signed in at, with that instance's token; a session of one instance
// never reaches another's API. The registry's Callback stays mounted at
// its RedirectURL.
//
// # Errors the SPA handles
//
// The BFF's own answers are JSON {"error": code, "error_description": text}:
//
//	401 login_required         not signed in: send the browser to /bff/login
//	401 reauth_required        the session ended (signed out elsewhere, expired, or its
//	                           refresh token revoked, e.g. a password change): /bff/login
//	401 antiforgery_required   the X-CSRF: 1 header is missing
//	400 invalid_path           the path leaves the Domain API root
//	400 invalid_request        a sign-out without the sid, or with another session's
//	405 method_not_allowed     the method is not on the allowlist (Allow lists it)
//	503 temporarily_unavailable the session store or the identity server is down
//	503 license_exhausted      all ERP.net licenses of the instance are in use (the call
//	                           was retried once; Retry-After when ERP.net sent one): tell
//	                           the user in plain words and try again in a few minutes
//	502 bad_gateway            the Domain API cannot be reached
//	502 server_misconfigured   the Domain API root is wrong (Client's Config.DomainAPI)
//
// Any other status of /bff/api/ is the Domain API's own answer (a 401 from
// it without one of these codes means the token was refused: retry once).
//
// # Replicas and events
//
// Sessions live in the Client's Store: with authcode/redisstore several
// replicas of the BFF share them, and a session's refresh token is
// redeemed once across all of them. The proxied calls report to the
// Client's Hooks like every flow (api.retry_401, api.backoff,
// api.session_opened, token.*); requests the BFF refuses report
// bff.refused with the status they got.
package bff
