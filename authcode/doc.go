// Package authcode signs users in to an ERP.net instance (or any OpenID
// Connect provider) with the Authorization Code flow and PKCE, keeps their
// sessions, and calls APIs as them.
//
// # Web apps
//
// Create one Client per app with New (no network I/O), mount its handlers on
// any router, and protect pages with RequireUser:
//
//	c, err := authcode.New(authcode.Config{
//		Authority:    "https://demodb.my.erp.net",
//		ClientID:     "com.example/webapp",
//		ClientSecret: os.Getenv("ERPNET_CLIENT_SECRET"),
//		RedirectURL:  "https://app.example.com/callback",
//		CookieKeys:   [][]byte{key}, // 32 random bytes, the same on every replica
//	})
//	mux.Handle("/signin", c.SignIn())
//	mux.Handle("/callback", c.Callback())
//	mux.Handle("POST /signout", c.SignOut())
//	mux.Handle("/customers", c.RequireUser(customers))
//
// Inside a protected handler, SessionFromContext returns the user's Session
// and UserClient an *http.Client that calls the Domain API as that user:
//
//	s := authcode.SessionFromContext(r.Context())
//	resp, err := c.UserClient(r.Context(), s).Get(odataRoot + "/Crm_Sales_Customers?$top=10")
//
// # What the Client guarantees
//
// Sign-in: every attempt gets its own 256-bit state, nonce and PKCE (S256)
// verifier, kept in a sealed (AES-GCM), HttpOnly, SameSite=Lax cookie of its
// own, so several tabs can sign in at once; the callback accepts each state
// once, for AttemptTTL, and checks the RFC 9207 iss parameter. The ID token
// is verified with go-oidc against the JWKS from discovery (RS256 only by
// default; "none" and HMAC are never accepted), including the nonce and
// at_hash. The return path is a local path or "/" (no open redirect).
//
// Sessions: the session (tokens included) is serialised into the Store under
// a key namespaced by issuer and client_id, and saved before the browser gets
// its cookie, which holds only the sealed session id. The default
// MemoryStore suits one process; replicas share a store such as
// authcode/redisstore, whose RefreshLocker makes sure only one replica
// redeems a session's (one-time, rotating) refresh token.
//
// Tokens: each session has one token cache per process: lock-free reads,
// refresh ahead of expiry, one refresh however many requests race. A
// rotated refresh token is written to the Store before the new access token
// is handed to anyone; if that write fails the previous session stays as it
// was and the error surfaces (the new tokens are saved on the next attempt
// rather than redeeming the refresh token again). A dead refresh token gives
// ErrReauthRequired, which RequireUser turns into a new sign-in.
//
// Secrets: Session, LoopbackResult and errors never print tokens, and the
// Client never logs tokens, codes, verifiers, secrets or cookie values.
//
// # Native and command-line apps
//
// LoopbackSignIn runs the same flow through the system browser and a
// listener on 127.0.0.1 (RFC 8252), for public clients without a secret; it
// can keep the refresh token in a 0600 file between runs.
//
// # Errors
//
// Branch with errors.Is on ErrReauthRequired (sign in again), ErrTemporary
// (try later), ErrMisconfigured and ErrNoSession, and read RFC 6749 details
// with errors.As into *Error.
package authcode
