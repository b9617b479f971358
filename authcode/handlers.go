package authcode

import (
	"crypto/rand"
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/erpnetgo/auth"
	"github.com/erpnetgo/auth/internal/redact"
)

// returnParam is the query (or form) parameter of the SignIn handler that
// names the local path to return to after sign-in.
const returnParam = "return_to"

// SignIn returns the handler that starts a sign-in: it creates an attempt
// (a state and a nonce of 130 bits each and a PKCE verifier of 256 bits,
// from crypto/rand), keeps it in a sealed, HttpOnly, SameSite=Lax cookie of
// its own that lives ten minutes, and redirects the browser to the identity
// server's authorize endpoint. The optional return_to parameter names the local path to land
// on afterwards; anything that is not a plain local path is ignored (no
// open redirect). Mount it at [Config.SignInPath]; it accepts GET and POST.
// Without [Config.RedirectURL] the handler cannot sign anyone in: building
// it logs that configuration error (at start-up, where routes are mounted),
// and it answers every request with a page saying sign-in is not set up.
func (c *Client) SignIn() http.Handler {
	if h := c.withoutRedirectURL("SignIn"); h != nil {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead && r.Method != http.MethodPost {
			w.Header().Set("Allow", "GET, HEAD, POST")
			c.fail(w, r, http.StatusMethodNotAllowed, errMethod)
			return
		}
		doc, err := c.discover(r.Context())
		if err != nil {
			c.fail(w, r, statusFor(err), err) // logs it, once
			return
		}
		ret := r.URL.Query().Get(returnParam)
		if r.Method == http.MethodPost && ret == "" {
			ret = r.PostFormValue(returnParam)
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
// [Config.ErrorHandler]. Without [Config.RedirectURL] it behaves as SignIn
// does.
func (c *Client) Callback() http.Handler {
	if h := c.withoutRedirectURL("Callback"); h != nil {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		noCache(w)
		if r.Method != http.MethodGet {
			w.Header().Set("Allow", "GET")
			c.fail(w, r, http.StatusMethodNotAllowed, errMethod)
			return
		}
		// Close ends the code exchange and key fetch of a callback in flight.
		ctx, cancel := c.life.Bind(r.Context())
		defer cancel()
		q := r.URL.Query()
		state := q.Get("state")
		a, found, err := c.readAttempt(r, state)
		if found {
			c.clearCookie(w, c.attemptCookieName(state), c.attemptCP)
		}
		if err == nil && q.Get("error") == "" {
			err = c.markStateUsed(ctx, a)
		}
		if err == nil && q.Get("error") != "" {
			// The identity server's answer to a live attempt of this
			// browser: its error is what the user needs to see. For any
			// other callback the URL's text is never shown (anyone can
			// craft such a link).
			err = &auth.Error{Op: "authorization", Code: redact.Truncate(q.Get("error"), 64), Description: redact.Truncate(q.Get("error_description"), 256)}
		}
		if err != nil {
			if errors.Is(err, ErrInvalidState) && !found {
				// A replayed, bookmarked or reloaded callback whose attempt
				// is gone: a browser that is signed in just goes on.
				if s, serr := c.UserSession(r); serr == nil && s != nil {
					http.Redirect(w, r, c.cfg.DefaultReturnPath, http.StatusSeeOther)
					return
				}
			}
			c.fail(w, r, statusFor(err), err)
			return
		}
		doc, err := c.discover(ctx)
		if err != nil {
			c.fail(w, r, statusFor(err), err)
			return
		}
		rec, err := c.complete(ctx, doc, a, q, c.cfg.RedirectURL)
		if err != nil {
			c.fail(w, r, statusFor(err), err)
			return
		}
		// A previous session of this browser is replaced.
		if old, ok := c.sessionID(r); ok {
			if err := c.sessions.Drop(ctx, old); err != nil {
				c.log.Warn("authcode: cannot delete the session this sign-in replaces", "error", err.Error())
			}
		}
		id := rand.Text() + rand.Text() // 260 bits
		if _, err := c.sessions.Create(ctx, id, rec); err != nil {
			c.fail(w, r, statusFor(err), err)
			return
		}
		c.setSessionCookie(w, id)
		c.log.Info("authcode: signed in", c.user(rec.Subject)...)
		c.rep.Emit(r.Context(), auth.Event{Name: "signin.completed", User: rec.Subject})
		ret := a.Return
		if _, ok := safeReturnPath(ret); !ok {
			ret = c.cfg.DefaultReturnPath
		}
		w.Header().Set("Location", ret)
		w.WriteHeader(http.StatusSeeOther)
	})
}

// SignOut returns the handler that signs the user out: it revokes the
// refresh token (when discovery lists a revocation endpoint), deletes the
// session from the Store (waiting for a refresh of it in flight, so no
// replica can bring it back), clears the session cookie, and redirects the
// browser to the identity server's end-session endpoint with id_token_hint
// (the latest ID token) and post_logout_redirect_uri, which ends the
// ERP.net API session and frees its license; the identity server then sends
// the browser to [Config.PostLogoutRedirectURL] with nothing added to it.
// Without an end-session endpoint, and when the browser has no session left
// to end (it signed out in another tab, or clicked twice), it redirects to
// PostLogoutRedirectURL (or DefaultReturnPath) at once: without a session
// there is no ID token to send as id_token_hint, and without one the
// identity server would leave the user on its own signed-out page.
//
// Use a POST form (a "Sign out" button). A GET signs out only when it
// comes from the app's own pages or a typed address (Sec-Fetch-Site
// same-origin or none, and no foreign Origin); a cross-site GET (a link on
// another site, which SameSite=Lax cookies follow) gets a page asking the
// user to confirm with a button instead, so no other site can sign your
// users out. A cross-site POST carries no SameSite=Lax cookie and is
// refused the same way.
func (c *Client) SignOut() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		noCache(w)
		if r.Method != http.MethodPost && r.Method != http.MethodGet {
			w.Header().Set("Allow", "GET, POST")
			c.fail(w, r, http.StatusMethodNotAllowed, errMethod)
			return
		}
		if crossSite(r) {
			c.confirmSignOut(w, r)
			return
		}
		ctx, cancel := c.life.Bind(r.Context())
		defer cancel()
		var idToken string
		gone := true // no session of this browser is left to end
		if id, ok := c.sessionID(r); ok {
			c.clearCookie(w, c.cookie, "/")
			rec, err := c.endSession(ctx, id)
			if err != nil {
				c.log.Warn("authcode: sign-out incomplete", "error", err.Error())
			}
			if rec != nil {
				idToken = rec.IDToken
			}
			// Nothing read and nothing failed: the Store no longer holds
			// the session (signed out in another tab, a double click).
			gone = rec == nil && err == nil
		}
		target := c.cfg.PostLogoutRedirectURL
		if target == "" {
			target = c.cfg.DefaultReturnPath
		}
		if gone {
			// Without a session there is no ID token to send as a hint,
			// and without one the identity server would not send the
			// browser back: land on the app's signed-out page instead.
			http.Redirect(w, r, target, http.StatusSeeOther)
			return
		}
		doc, derr := c.discover(ctx)
		if derr == nil && doc.EndSessionEndpoint != "" {
			_, end := c.rep.Call(ctx, "end_session") // the browser makes the call
			end(nil)
			if u, err := url.Parse(doc.EndSessionEndpoint); err == nil {
				q := u.Query()
				if idToken != "" {
					q.Set("id_token_hint", idToken)
				}
				q.Set("client_id", c.cfg.ClientID)
				// Identity servers (IdentityServer, so ERP.net) honour
				// post_logout_redirect_uri only with an id_token_hint. No
				// state is sent: nothing is left in the address bar.
				if c.cfg.PostLogoutRedirectURL != "" && idToken != "" {
					q.Set("post_logout_redirect_uri", c.cfg.PostLogoutRedirectURL)
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

// crossSite reports whether r was sent by another site's page: the fetch
// metadata says so, or an Origin header names another origin.
func crossSite(r *http.Request) bool {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "cross-site", "same-site":
		return true
	}
	o := r.Header.Get("Origin")
	if o == "" {
		return false
	}
	u, err := url.Parse(o)
	if err != nil || u.Host == "" {
		return true // "null" (an opaque origin) or garbage
	}
	return !strings.EqualFold(u.Host, r.Host)
}

// RequireUser is middleware that lets only signed-in users through, with
// their Session in the request context ([SessionFromContext]). Requests
// without a session, or whose refresh token is dead, are answered as their
// sender can use: a browser loading a page (a navigation of any method:
// Sec-Fetch-Mode navigate, or without fetch metadata an Accept of
// text/html and no X-Requested-With) is redirected to [Config.SignInPath],
// returning to the original path afterwards, or, for a form it submitted
// (POST and the like, which cannot be replayed), gets a page that says it
// is signed out with a button to sign in again; fetch, XHR and API callers
// get 401 and a JSON error body. A failing Store gives 503: users are not
// silently signed out.
func (c *Client) RequireUser(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, err := c.UserSession(r)
		if err == nil {
			if _, terr := s.sn.State.Entry(r.Context()); terr != nil { // s is this Client's
				switch {
				case errors.Is(terr, auth.ErrReauthRequired):
					// The refresh token is dead: never forward a request
					// with it; the user signs in again.
					err = ErrNoSession
				case errors.Is(terr, auth.ErrClosed):
					err = terr // the app is shutting down: 503
				default:
					// The identity server may be down: the handler's own
					// API calls will report it; pages that need no token
					// still work.
					c.log.Warn("authcode: cannot get the user's access token", "error", terr.Error())
				}
			}
		}
		switch {
		case err == nil:
			next.ServeHTTP(w, r.WithContext(contextWithSession(r.Context(), s)))
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
		c.toSignIn(w, r)
		return
	}
	writeError(w, r, http.StatusUnauthorized, "login_required", "sign-in required")
}

func noCache(w http.ResponseWriter) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
}
