package bff

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/erpnetgo/auth"
)

// login starts a sign-in with the Client's SignIn handler, returning to
// returnUrl (a local path; anything else, or a path of the BFF's own,
// returns to the Client's DefaultReturnPath). The other query parameters
// go along: with Config.Instances they tell the registry's Resolve which
// instance to sign the user in at (its default reads instance).
func (h *handler) login(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		h.methodNotAllowed(w, r, "GET, HEAD")
		return
	}
	q := r.URL.Query()
	ret := q.Get("returnUrl")
	q.Del("returnUrl")
	q.Del("return_to") // the BFF's own rule decides where to return
	if ret != "" && !underBFF(ret) {
		q.Set("return_to", ret) // checked by authcode: a local path only
	}
	r2 := r.Clone(r.Context())
	r2.URL.RawQuery = q.Encode()
	h.users.signIn().ServeHTTP(w, r2)
}

// underBFF reports whether the path p names the BFF itself (landing on
// /bff/login after sign-in would start another sign-in), however encoded.
func underBFF(p string) bool {
	for range 4 {
		path, _, _ := strings.Cut(p, "?")
		path = strings.ToLower(path)
		if path == "/bff" || strings.HasPrefix(path, "/bff/") {
			return true
		}
		d, err := url.PathUnescape(p)
		if err != nil || d == p {
			return false
		}
		p = d
	}
	return true
}

// userInfo is /bff/user's answer.
type userInfo map[string]any

// user answers who is signed in.
func (h *handler) user(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		h.methodNotAllowed(w, r, "GET")
		return
	}
	if !h.antiForgery(w, r) {
		return
	}
	s, ok := h.session(w, r)
	if !ok {
		return
	}
	if err := h.users.alive(r.Context(), s); err != nil {
		switch {
		case errors.Is(err, auth.ErrReauthRequired):
			signInAgain(w, "reauth_required")
			return
		case errors.Is(err, auth.ErrClosed):
			h.unavailable(w, r, "the application is shutting down", err)
			return
		default:
			// The identity server may be down: the user is still signed
			// in; the API calls will say what fails.
			h.log.Warn("bff: cannot get the user's access token", "error", err.Error())
		}
	}
	out := userInfo{}
	if len(h.claims) > 0 {
		var claims map[string]any
		if err := s.Claims(&claims); err == nil {
			for _, k := range h.claims {
				if v, ok := claims[k]; ok {
					out[k] = v
				}
			}
		}
	}
	out["sub"] = s.Subject
	if s.Name != "" {
		out["name"] = s.Name
	}
	out["logoutUrl"] = pathLogout + "?sid=" + logoutID(s.ID)
	left := s.SignedInAt.Add(h.ac.SessionTTL).Sub(h.ac.Now())
	out["sessionExpiresIn"] = max(int64(left/time.Second), 0)
	writeJSON(w, http.StatusOK, out)
}

// logoutID is the sid of a session's logoutUrl: derived one-way from the
// session id (itself 260 random bits), so it proves the request comes from
// a page that read /bff/user, opens nothing and names no Store key.
func logoutID(sessionID string) string {
	sum := sha256.Sum256([]byte("erpnetgo/bff logout\x00" + sessionID))
	return base64.RawURLEncoding.EncodeToString(sum[:16])
}

// maxLogoutForm bounds the form body of a POST /bff/logout.
const maxLogoutForm = 4 << 10

// logout signs the user out with the Client's SignOut handler: it revokes
// the refresh token, deletes the session, clears the cookie and sends the
// browser to the identity server's end-session endpoint. The request must
// prove it comes from the app: the sid of logoutUrl (a navigation or a
// form), or the anti-forgery header (a script's POST).
func (h *handler) logout(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		h.methodNotAllowed(w, r, "GET, POST")
		return
	}
	sid := r.URL.Query().Get("sid")
	if sid == "" && r.Method == http.MethodPost && strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		r.Body = http.MaxBytesReader(w, r.Body, maxLogoutForm)
		sid = r.PostFormValue("sid")
	}
	if sid == "" {
		if r.Method == http.MethodGet {
			h.refuse(w, r, http.StatusBadRequest, "invalid_request", "sign-out needs the sid of /bff/user's logoutUrl",
				"Sign-out link incomplete", "This sign-out link is incomplete. Use the application's Sign out button.")
			return
		}
		if !h.antiForgery(w, r) {
			return
		}
	}
	id, signedIn := h.users.sessionID(r)
	if !signedIn {
		// Nothing to end here; the identity server is not asked either
		// (a link anyone can send must not end the user's session there).
		http.Redirect(w, r, h.ac.SignedOut, http.StatusSeeOther)
		return
	}
	if sid != "" && subtle.ConstantTimeCompare([]byte(sid), []byte(logoutID(id))) != 1 {
		h.refuse(w, r, http.StatusBadRequest, "invalid_request", "the sid does not belong to this browser's session",
			"Sign-out link out of date", "This sign-out link belongs to an earlier session. Reload the application and sign out again.")
		return
	}
	// The request is the user's own (checked above): hand the Client's
	// SignOut a same-origin POST, so it signs out at once rather than ask
	// to confirm as it does for requests from other sites.
	r2 := r.Clone(r.Context())
	r2.Method = http.MethodPost
	r2.Body, r2.ContentLength, r2.Form, r2.PostForm = http.NoBody, 0, nil, nil
	for _, k := range []string{"Origin", "Sec-Fetch-Site", "Content-Type"} {
		r2.Header.Del(k)
	}
	h.users.signOut().ServeHTTP(w, r2)
}
