// Package authcode signs users in to an ERP.net instance (or any OpenID
// Connect provider) with the Authorization Code flow and PKCE, keeps their
// sessions, and calls APIs as them.
//
// # Web apps
//
// Create one Client per app with [New] (no network I/O), mount its handlers on
// any router, and protect pages with RequireUser:
//
//	c, err := authcode.New(authcode.Config{
//		Authority:    "https://demodb.my.erp.net",
//		ClientID:     "com.example/webapp",
//		ClientSecret: os.Getenv("ERPNET_CLIENT_SECRET"),
//		RedirectURL:  "https://app.example.com/callback",
//		Keys:         [][]byte{key}, // 32 random bytes, the same on every replica
//	})
//	mux.Handle("/signin", c.SignIn())
//	mux.Handle("/callback", c.Callback())
//	mux.Handle("/signout", c.SignOut()) // a POST form; a cross-site GET asks to confirm
//	mux.Handle("/customers", c.RequireUser(customers))
//
// Inside a protected handler, [SessionFromContext] returns the user's Session
// and UserClient an *http.Client that calls the Domain API as that user:
//
//	s := authcode.SessionFromContext(r.Context())
//	root, err := c.DomainAPI(r.Context()) // ends in "/": https://demodb.my.erp.net/api/domain/odata/
//	resp, err := c.UserClient(r.Context(), s).Get(root + "Crm_Sales_Customers?$top=10")
//
// # What the Client guarantees
//
// Sign-in: every attempt gets its own state and nonce (130 bits each from
// crypto/rand; at least 128 bits is what matters) and PKCE (S256) verifier
// (256 bits), kept in a sealed (AES-GCM), HttpOnly, SameSite=Lax cookie of its
// own, so several tabs can sign in at once; the callback accepts each state
// once, for ten minutes, and checks the RFC 9207 iss parameter. The ID token
// is verified with go-oidc against the JWKS from discovery (RS256 only by
// default; "none" and HMAC are never accepted), including the nonce and
// at_hash, and as OpenID Connect Core §3.1.3.7 asks: a token with several
// audiences needs an azp claim, and an azp must name this client; iat must
// be present and auth_time and iat no more than 5 minutes (the allowed clock
// skew) in the future; with max_age in [Config.AuthParams], auth_time must be
// present and recent enough. An ID token from a refresh gets the same checks
// and must keep the sign-in's sub, aud, azp and auth_time (§12.2); one that
// fails is not kept (the sign-in's stays), and one naming another user ends
// the session. The JWKS is cached; a token that no cached key verifies (a
// key rotation, or a forged key id) refetches it at most once a minute. The
// return path is a local path or "/" (no open redirect).
//
// Close ends every request the Client has in flight (callbacks, refreshes,
// JWKS fetches, loopback sign-ins) and waits for its goroutines.
//
// Sessions: the session (tokens included) is serialised into the Store under
// a key namespaced by issuer and client_id, and saved before the browser gets
// its cookie, which holds only the sealed session id. The default (a nil
// [Config.Store]) keeps sessions in memory, for one process; replicas share
// a store such as authcode/redisstore, whose [RefreshLocker] makes sure only
// one replica redeems a session's (one-time, rotating) refresh token. Every
// [Session] handed out is the caller's own: changing it (its Scopes too)
// changes nothing another request or the Store sees. A sign-out wins over a
// refresh in flight on any shared Store (see [RefreshLocker]).
//
// Tokens: each session has one token cache per process: lock-free reads,
// refresh ahead of expiry, one refresh however many requests race. A
// rotated refresh token is written to the Store before the new access token
// is handed to anyone; if that write fails the previous session stays as it
// was and the error surfaces (the new tokens are saved on the next attempt
// rather than redeeming the refresh token again). A refresh, once started,
// runs to completion even when other users' sessions push this one out of
// memory ([Config.MaxLiveSessions]); only [Client.Close] ends it. A dead
// refresh token gives [auth.ErrReauthRequired]: RequireUser turns it into a
// new sign-in, and an API call through UserClient fails with it rather
// than return the API's 401.
//
// Secrets: Session and errors never print tokens, and the Client never logs
// tokens, codes, verifiers, secrets or cookie values. The default error
// pages say what happened in plain words with a reference to the log line
// holding the technical cause; they never show Go error text.
//
// # Native and command-line apps
//
// [Client.LoopbackSignIn] runs the same flow through the system browser and
// a listener on 127.0.0.1 (RFC 8252), for public clients without a secret.
// With a [FileStore] (a 0600 file) as [Config.Store] the session is kept
// between runs, and the next run reuses it without opening the browser.
// Over SSH, where the browser runs on another machine, LoopbackOptions.Paste
// lets the user paste the address the browser ended on instead.
//
// # Errors
//
// Branch with errors.Is on [auth.ErrReauthRequired] (sign in again),
// [auth.ErrTemporary] (try later), [auth.ErrMisconfigured] and
// [ErrNoSession], and read RFC 6749 details with errors.As into
// [*auth.Error].
//
// # Specifications
//
//   - OAuth 2.0, RFC 6749: https://www.rfc-editor.org/rfc/rfc6749
//   - PKCE, RFC 7636: https://www.rfc-editor.org/rfc/rfc7636
//   - Authorization server issuer identification, RFC 9207:
//     https://www.rfc-editor.org/rfc/rfc9207
//   - Token revocation, RFC 7009: https://www.rfc-editor.org/rfc/rfc7009
//   - Loopback redirects of native apps, RFC 8252 section 7.3:
//     https://www.rfc-editor.org/rfc/rfc8252#section-7.3
//   - OpenID Connect Core 1.0, ID token validation:
//     https://openid.net/specs/openid-connect-core-1_0.html#IDTokenValidation
//     and refresh: https://openid.net/specs/openid-connect-core-1_0.html#RefreshTokenResponse
//   - OpenID Connect RP-Initiated Logout 1.0:
//     https://openid.net/specs/openid-connect-rpinitiated-1_0.html
//   - Fetch metadata (Sec-Fetch-Mode, Sec-Fetch-Site), which the handlers
//     read to tell pages from scripts and sites apart:
//     https://www.w3.org/TR/fetch-metadata/
//   - ERP.net's identity server: https://docs.erp.net/dev/
package authcode
