package authcode

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"html"
	"net/http"
	"net/url"
	"strings"

	"github.com/erpnetgo/auth/internal/autherr"
	"github.com/erpnetgo/auth/internal/redact"
)

// ReturnParam is the query (or form) parameter of the SignIn handler that
// names the local path to return to after sign-in.
const ReturnParam = "return_to"

// SignIn returns the handler that starts a sign-in: it creates an attempt
// (state, nonce and PKCE verifier, 256 bits each from crypto/rand), keeps it
// in a sealed, HttpOnly, SameSite=Lax cookie of its own that lives
// AttemptTTL, and redirects the browser to the identity server's authorize
// endpoint. The optional return_to parameter names the local path to land
// on afterwards; anything that is not a plain local path is ignored (no
// open redirect). Mount it at Config.SignInPath; it accepts GET and POST.
func (c *Client) SignIn() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead && r.Method != http.MethodPost {
			w.Header().Set("Allow", "GET, HEAD, POST")
			c.fail(w, r, http.StatusMethodNotAllowed, errors.New("authcode: method not allowed"))
			return
		}
		if c.cfg.RedirectURL == "" {
			c.fail(w, r, http.StatusInternalServerError, &autherr.ConfigError{Field: "RedirectURL", Reason: "is required to serve SignIn and Callback"})
			return
		}
		doc, err := c.discover(r.Context())
		if err != nil {
			c.log.Error("authcode: sign-in: discovery failed", "error", err.Error())
			c.fail(w, r, statusFor(err), err)
			return
		}
		ret := r.URL.Query().Get(ReturnParam)
		if r.Method == http.MethodPost && ret == "" {
			ret = r.PostFormValue(ReturnParam)
		}
		ret = c.returnPath(ret)
		a := c.newAttempt(ret)
		target, err := c.authURL(doc, a, c.cfg.RedirectURL)
		if err != nil {
			c.fail(w, r, statusFor(err), err)
			return
		}
		c.setAttemptCookie(w, a)
		noCache(w)
		c.log.Debug("authcode: sign-in started")
		http.Redirect(w, r, target, http.StatusFound)
	})
}

// returnPath validates a requested return path, falling back to the
// default for anything unsafe or pointing back into the sign-in flow.
func (c *Client) returnPath(p string) string {
	if p == "" {
		return c.cfg.DefaultReturnPath
	}
	p, ok := safeReturnPath(p)
	if !ok {
		c.log.Warn("authcode: ignoring an unsafe return path")
		return c.cfg.DefaultReturnPath
	}
	path := p
	if i := strings.IndexAny(path, "?#"); i >= 0 {
		path = path[:i]
	}
	if path == c.cfg.SignInPath || (c.cfg.RedirectURL != "" && path == c.attemptCP) {
		return c.cfg.DefaultReturnPath
	}
	return p
}

// Callback returns the handler for the redirect URL. It finds the sign-in
// attempt by its state (compared in constant time), refuses missing,
// mismatched, expired and replayed states, checks the RFC 9207 iss
// parameter, redeems the code with the PKCE verifier, verifies the ID token
// (signature from the JWKS, RS256 by default, iss, aud, exp, nonce,
// at_hash), saves the session in the Store, and only then sets the session
// cookie (a sealed session id) and redirects to the attempt's return path.
// Errors, including an error sent by the identity server, are rendered by
// Config.ErrorHandler.
func (c *Client) Callback() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		noCache(w)
		if r.Method != http.MethodGet {
			w.Header().Set("Allow", "GET")
			c.fail(w, r, http.StatusMethodNotAllowed, errors.New("authcode: method not allowed"))
			return
		}
		if c.cfg.RedirectURL == "" {
			c.fail(w, r, http.StatusInternalServerError, &autherr.ConfigError{Field: "RedirectURL", Reason: "is required to serve SignIn and Callback"})
			return
		}
		q := r.URL.Query()
		state := q.Get("state")
		a, found, err := c.readAttempt(r, state)
		if found {
			c.clearCookie(w, c.attemptCookieName(state), c.attemptCP)
		}
		if err == nil && q.Get("error") == "" {
			err = c.markStateUsed(r.Context(), a)
		}
		if err != nil {
			if code := q.Get("error"); code != "" && !errors.Is(err, ErrAttemptExpired) {
				// The identity server's error is what the user needs to see.
				err = &autherr.Error{Op: "authorization", Code: redact.Truncate(code, 64), Description: redact.Truncate(q.Get("error_description"), 256)}
			}
			c.log.Warn("authcode: callback refused", "error", err.Error())
			c.fail(w, r, statusFor(err), err)
			return
		}
		doc, err := c.discover(r.Context())
		if err != nil {
			c.fail(w, r, statusFor(err), err)
			return
		}
		rec, err := c.complete(r.Context(), doc, a, q, c.cfg.RedirectURL)
		if err != nil {
			c.log.Warn("authcode: sign-in failed", "error", err.Error())
			c.fail(w, r, statusFor(err), err)
			return
		}
		prefix, err := c.keyPrefix(r.Context())
		if err != nil {
			c.fail(w, r, statusFor(err), err)
			return
		}
		// A previous session of this browser is replaced.
		if old, ok := c.sessionID(r); ok {
			c.dropSession(r.Context(), sessionKey(prefix, old), old)
		}
		id := randomString(32)
		key := sessionKey(prefix, id)
		b, err := rec.encode()
		if err == nil {
			err = c.store.Save(r.Context(), key, b, c.cfg.SessionTTL)
		}
		if err != nil {
			err = &autherr.Error{Op: "session store save", Kind: autherr.ErrTemporary, Err: err}
			c.log.Error("authcode: cannot save the new session", "error", err.Error())
			c.fail(w, r, http.StatusServiceUnavailable, err)
			return
		}
		c.adopt(id, key, rec)
		c.setSessionCookie(w, id)
		c.log.Info("authcode: signed in", "subject", rec.Subject, "issuer", rec.Issuer)
		ret := a.Return
		if _, ok := safeReturnPath(ret); !ok {
			ret = c.cfg.DefaultReturnPath
		}
		w.Header().Set("Location", ret)
		w.WriteHeader(http.StatusSeeOther)
	})
}

// setSessionCookie sets the cookie holding the sealed session id.
func (c *Client) setSessionCookie(w http.ResponseWriter, id string) {
	http.SetCookie(w, &http.Cookie{
		Name:     c.cookie,
		Value:    base64.RawURLEncoding.EncodeToString(c.sealer.Seal([]byte(id), c.cookieAAD)),
		Path:     "/",
		MaxAge:   int(c.cfg.SessionTTL.Seconds()),
		HttpOnly: true,
		Secure:   c.secure,
		SameSite: http.SameSiteLaxMode,
	})
}

// sessionID opens the session cookie of r.
func (c *Client) sessionID(r *http.Request) (string, bool) {
	ck, err := r.Cookie(c.cookie)
	if err != nil || ck.Value == "" || len(ck.Value) > 512 {
		return "", false
	}
	raw, err := base64.RawURLEncoding.DecodeString(ck.Value)
	if err != nil {
		return "", false
	}
	id, err := c.sealer.Open(raw, c.cookieAAD)
	if err != nil || len(id) == 0 {
		c.log.Debug("authcode: session cookie cannot be opened (tampered, or sealed with a retired key)")
		return "", false
	}
	return string(id), true
}

// SignOut returns the handler that signs the user out: it revokes the
// refresh token (when discovery lists a revocation endpoint), deletes the
// session from the Store, clears the session cookie, and redirects the
// browser to the identity server's end-session endpoint with id_token_hint
// (the latest ID token), post_logout_redirect_uri and state, which ends the
// ERP.net session and frees its license. Without an end-session endpoint
// it redirects to Config.PostLogoutRedirectURL (or "/").
//
// Use a POST form (a "Sign out" button). GET is accepted too, for links,
// but any site can then sign your users out by embedding the URL
// (logout CSRF); reject GET in front of this handler if that matters, or
// check a CSRF token. SameSite=Lax cookies are not sent with a cross-site
// POST, so a forged POST finds no session to end.
func (c *Client) SignOut() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		noCache(w)
		if r.Method != http.MethodPost && r.Method != http.MethodGet {
			w.Header().Set("Allow", "GET, POST")
			c.fail(w, r, http.StatusMethodNotAllowed, errors.New("authcode: method not allowed"))
			return
		}
		ctx := r.Context()
		var idToken string
		doc, derr := c.discover(ctx)
		if id, ok := c.sessionID(r); ok {
			c.clearCookie(w, c.cookie, "/")
			if prefix, err := c.keyPrefix(ctx); err == nil {
				key := sessionKey(prefix, id)
				rec := c.loadForSignOut(ctx, key, id)
				if rec != nil {
					idToken = rec.IDToken
					if rec.RefreshToken != "" && doc != nil && doc.RevocationEndpoint != "" {
						if err := c.tep.Revoke(ctx, doc, rec.RefreshToken, "refresh_token"); err != nil {
							c.log.Warn("authcode: sign-out: refresh token revocation failed", "error", err.Error())
						}
					}
					c.log.Info("authcode: signed out", "subject", rec.Subject)
				}
				c.dropSession(ctx, key, id)
			}
		}
		target := c.cfg.PostLogoutRedirectURL
		if target == "" {
			target = c.cfg.DefaultReturnPath
		}
		if derr == nil && doc.EndSessionEndpoint != "" {
			if u, err := url.Parse(doc.EndSessionEndpoint); err == nil {
				q := u.Query()
				if idToken != "" {
					q.Set("id_token_hint", idToken)
				}
				q.Set("client_id", c.cfg.ClientID)
				// Identity servers (IdentityServer, so ERP.net) honour
				// post_logout_redirect_uri only with an id_token_hint.
				if c.cfg.PostLogoutRedirectURL != "" && idToken != "" {
					q.Set("post_logout_redirect_uri", c.cfg.PostLogoutRedirectURL)
					q.Set("state", randomString(16))
				}
				u.RawQuery = q.Encode()
				target = u.String()
			}
		} else if derr != nil {
			c.log.Warn("authcode: sign-out: discovery failed; the identity server session is not ended", "error", derr.Error())
		}
		http.Redirect(w, r, target, http.StatusSeeOther)
	})
}

// loadForSignOut returns the session's latest record from the Store, or
// from memory if the Store fails.
func (c *Client) loadForSignOut(ctx context.Context, key, id string) *record {
	b, err := c.store.Load(ctx, key)
	if err == nil {
		if rec, err := decodeRecord(b); err == nil {
			return rec
		}
		return nil
	}
	if u := c.liveGet(id); u != nil {
		return u.current()
	}
	return nil
}

// RequireUser is middleware that lets only signed-in users through, with
// their Session in the request context (SessionFromContext). Requests
// without a session, or whose refresh token is dead, are answered with a
// redirect to Config.SignInPath (browsers: a GET or HEAD accepting
// text/html, without X-Requested-With) that returns to the original path
// afterwards, or with 401 and a JSON error body (API callers). A failing
// Store gives 503: users are not silently signed out.
func (c *Client) RequireUser(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, err := c.UserSession(r)
		if err == nil {
			if _, terr := c.sessionEntry(r.Context(), s); terr != nil {
				if errors.Is(terr, ErrReauthRequired) {
					err = ErrNoSession
				} else {
					// The identity server may be down: the handler's own
					// API calls will report it; pages that need no token
					// still work.
					c.log.Warn("authcode: cannot get the user's access token", "error", terr.Error())
				}
			}
		}
		switch {
		case err == nil:
			next.ServeHTTP(w, r.WithContext(ContextWithSession(r.Context(), s)))
		case errors.Is(err, ErrNoSession):
			c.challenge(w, r)
		default:
			c.log.Error("authcode: cannot read the session", "error", err.Error())
			writeError(w, r, http.StatusServiceUnavailable, "temporarily_unavailable", "the session cannot be read right now; try again later")
		}
	})
}

// challenge asks the caller to sign in.
func (c *Client) challenge(w http.ResponseWriter, r *http.Request) {
	noCache(w)
	if isBrowserNavigation(r) {
		ret := c.returnPath(r.URL.RequestURI())
		target := c.cfg.SignInPath + "?" + url.Values{ReturnParam: {ret}}.Encode()
		http.Redirect(w, r, target, http.StatusFound)
		return
	}
	writeError(w, r, http.StatusUnauthorized, "login_required", "sign-in required")
}

// isBrowserNavigation reports whether r looks like a browser loading a page
// (which may be redirected to sign in) rather than a script or API client
// (which gets a 401 it can handle).
func isBrowserNavigation(r *http.Request) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return false
	}
	if r.Header.Get("X-Requested-With") != "" {
		return false
	}
	if m := r.Header.Get("Sec-Fetch-Mode"); m != "" && m != "navigate" {
		return false
	}
	for _, v := range r.Header.Values("Accept") {
		if strings.Contains(v, "text/html") {
			return true
		}
	}
	return false
}

func wantsJSON(r *http.Request) bool {
	if r.Header.Get("X-Requested-With") != "" {
		return true
	}
	for _, v := range r.Header.Values("Accept") {
		if strings.Contains(v, "application/json") {
			return true
		}
	}
	return false
}

func noCache(w http.ResponseWriter) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
}

// writeError writes a small JSON error body.
func writeError(w http.ResponseWriter, _ *http.Request, status int, code, desc string) {
	b, _ := json.Marshal(map[string]string{"error": code, "error_description": desc})
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// fail renders a handler error with Config.ErrorHandler or the default
// page. err never holds a secret.
func (c *Client) fail(w http.ResponseWriter, r *http.Request, status int, err error) {
	if c.cfg.ErrorHandler != nil {
		c.cfg.ErrorHandler(w, r, status, err)
		return
	}
	noCache(w)
	if wantsJSON(r) && !isBrowserNavigation(r) {
		writeError(w, r, status, errorCode(err), err.Error())
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Content-Security-Policy", "default-src 'none'")
	w.WriteHeader(status)
	signIn := html.EscapeString(c.cfg.SignInPath)
	_, _ = w.Write([]byte(`<!doctype html><meta charset="utf-8"><title>Sign-in problem</title>` +
		`<h1>Sign-in problem</h1><p>` + html.EscapeString(err.Error()) + `</p>` +
		`<p><a href="` + signIn + `">Sign in again</a></p>`))
}

// errorCode is a short machine-readable code for err.
func errorCode(err error) string {
	var ae *autherr.Error
	switch {
	case errors.As(err, &ae) && ae.Code != "":
		return ae.Code
	case errors.Is(err, ErrInvalidState), errors.Is(err, ErrAttemptExpired):
		return "invalid_state"
	case errors.Is(err, ErrIssuerMismatch):
		return "issuer_mismatch"
	case errors.Is(err, ErrInvalidIDToken):
		return "invalid_id_token"
	case errors.Is(err, ErrTemporary):
		return "temporarily_unavailable"
	case errors.Is(err, ErrMisconfigured):
		return "server_misconfigured"
	}
	return "error"
}

// statusFor maps a handler error to an HTTP status.
func statusFor(err error) int {
	var ae *autherr.Error
	switch {
	case errors.As(err, &ae) && ae.Op == "authorization":
		if ae.Code == "access_denied" {
			return http.StatusForbidden
		}
		return http.StatusBadRequest
	case errors.Is(err, ErrInvalidState), errors.Is(err, ErrAttemptExpired), errors.Is(err, ErrIssuerMismatch):
		return http.StatusBadRequest
	case errors.Is(err, ErrInvalidIDToken):
		return http.StatusBadGateway
	case errors.Is(err, ErrTemporary):
		return http.StatusServiceUnavailable
	case errors.Is(err, ErrMisconfigured):
		return http.StatusInternalServerError
	case errors.As(err, &ae):
		// e.g. invalid_grant: a replayed or expired code.
		return http.StatusBadRequest
	}
	return http.StatusInternalServerError
}
