package authcode

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"html"
	"log/slog"
	"net/http"
	"net/url"
	"strings"

	"github.com/erpnetgo/auth"
)

// What people and programs get back from the handlers: plain-words pages
// for browsers, small JSON errors for scripts and API callers, never Go
// error text.

// confirmSignOut asks the user to confirm a sign-out another site started.
func (c *Client) confirmSignOut(w http.ResponseWriter, r *http.Request) {
	page(w, http.StatusOK, "Sign out?", "Another site asked to sign you out of this application.",
		`<form method="post" action="`+html.EscapeString(r.URL.Path)+`"><button type="submit">Sign out</button></form>`+
			`<p><a href="`+html.EscapeString(c.cfg.DefaultReturnPath)+`">Stay signed in</a></p>`, "")
}

// isBrowserNavigation reports whether r looks like a browser loading a page
// (a link, a typed address, a submitted form: any method), which gets a
// page or a redirect, rather than a script or API client (fetch, XHR),
// which gets an answer it can handle. Browsers say so with Sec-Fetch-Mode
// (https://www.w3.org/TR/fetch-metadata/#sec-fetch-mode-header); without
// it, an Accept of text/html and no X-Requested-With count as a page load.
func isBrowserNavigation(r *http.Request) bool {
	if r.Header.Get("X-Requested-With") != "" {
		return false
	}
	if m := r.Header.Get("Sec-Fetch-Mode"); m != "" {
		return m == "navigate"
	}
	for _, v := range r.Header.Values("Accept") {
		if strings.Contains(v, "text/html") {
			return true
		}
	}
	return false
}

// toSignIn answers a browser navigation that needs a signed-in user: a GET
// or HEAD is redirected to sign in and back; a submitted form cannot be
// sent again after sign-in, so it gets a page saying that it was not, with
// a button to sign in that returns to the page the form was on.
func (c *Client) toSignIn(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		ret := c.returnPath(r.URL.RequestURI())
		http.Redirect(w, r, c.cfg.SignInPath+"?"+url.Values{returnParam: {ret}}.Encode(), http.StatusFound)
		return
	}
	ret := c.cfg.DefaultReturnPath
	if u, err := url.Parse(r.Header.Get("Referer")); err == nil && u.Host != "" && strings.EqualFold(u.Host, r.Host) {
		ret = c.returnPath(u.RequestURI())
	}
	page(w, http.StatusUnauthorized, "You are signed out",
		"You are no longer signed in to this application, so what you sent was not done. Sign in, then try again.",
		`<p><a class="button" href="`+html.EscapeString(c.cfg.SignInPath+"?"+url.Values{returnParam: {ret}}.Encode())+`">Sign in</a></p>`, "")
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

// writeError writes a small JSON error body.
func writeError(w http.ResponseWriter, _ *http.Request, status int, code, desc string) {
	b, _ := json.Marshal(map[string]string{"error": code, "error_description": desc})
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

var errMethod = errors.New("authcode: method not allowed")

// fail renders a handler error with [Config.ErrorHandler] or the default
// page. The technical cause goes to the log with a short reference that
// the page shows; the page itself says in plain words what happened and
// what to do, and never shows Go error text.
func (c *Client) fail(w http.ResponseWriter, r *http.Request, status int, err error) {
	ref := strings.ToLower(rand.Text()[:8])
	level := slog.LevelWarn
	if status >= 500 {
		level = slog.LevelError
	}
	c.log.Log(r.Context(), level, "authcode: "+r.URL.Path+" failed", "ref", ref, "status", status, "error", err.Error())
	if r.URL.Path == c.attemptCP {
		c.rep.Emit(r.Context(), auth.Event{Name: "signin.failed", StatusCode: status, Err: err})
	}
	title, msg := explain(err)
	if c.cfg.ErrorHandler != nil {
		ae := &auth.Error{Op: "sign-in", Code: errorCode(err), Description: msg + " (reference " + ref + ")", Err: err}
		c.cfg.ErrorHandler(w, r, status, ae)
		return
	}
	noCache(w)
	if wantsJSON(r) && !isBrowserNavigation(r) {
		writeError(w, r, status, errorCode(err), msg+" (reference "+ref+")")
		return
	}
	var idp string
	var ae *auth.Error
	if errors.As(err, &ae) && ae.Op == "authorization" && ae.Description != "" {
		idp = `<p class="idp">The identity server said: ` + html.EscapeString(ae.Description) + `</p>`
	}
	page(w, status, title, msg, idp+
		`<p><a class="button" href="`+html.EscapeString(c.cfg.SignInPath)+`">Sign in again</a> `+
		`<a href="`+html.EscapeString(c.cfg.DefaultReturnPath)+`">Back to the application</a></p>`, ref)
}

// explain says what happened, in words for a person.
func explain(err error) (title, msg string) {
	if _, t, m, ok := explainProblem(err); ok {
		return t, m
	}
	var ae *auth.Error
	switch {
	case errors.As(err, &ae) && ae.Op == "authorization" && ae.Code == "access_denied":
		return "Sign-in cancelled", "The sign-in was cancelled, or the identity server did not allow it. You are not signed in."
	case errors.As(err, &ae) && ae.Op == "authorization" && ae.Code == "login_required":
		return "Sign-in needed", "The identity server needs you to sign in again."
	case errors.As(err, &ae) && ae.Op == "authorization":
		return "Sign-in failed", "The identity server could not sign you in."
	case errors.Is(err, ErrAttemptExpired):
		return "Sign-in took too long", "This sign-in was started too long ago. Please sign in again."
	case errors.Is(err, ErrInvalidState):
		return "Sign-in link no longer valid", "This sign-in was already completed, started in another browser, or has expired. Please sign in again."
	case errors.Is(err, ErrIssuerMismatch), errors.Is(err, ErrInvalidIDToken):
		return "Sign-in could not be verified", "The answer from the identity server could not be verified, so you were not signed in. Please sign in again."
	case errors.Is(err, auth.ErrTemporary):
		return "Sign-in is unavailable right now", "The sign-in service did not answer in time. Please try again in a few minutes."
	case errors.Is(err, auth.ErrMisconfigured):
		return "Sign-in is not set up correctly", "This application's sign-in is misconfigured. Please tell its administrator, quoting the reference below."
	case errors.Is(err, errMethod):
		return "Not allowed", "This address cannot be used that way."
	case errors.As(err, &ae):
		return "Sign-in failed", "The identity server refused to complete the sign-in. Please sign in again."
	}
	return "Something went wrong", "The sign-in could not be completed. Please try again."
}

// page writes a small, self-contained HTML page: inline style, no
// external assets, no scripts.
func page(w http.ResponseWriter, status int, title, msg, extraHTML, ref string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	w.WriteHeader(status)
	var b strings.Builder
	b.WriteString(`<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>`)
	b.WriteString(html.EscapeString(title))
	b.WriteString(`</title><style>body{font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;background:#f5f6f8;color:#1d2330;margin:0}` +
		`main{max-width:34rem;margin:12vh auto;background:#fff;border-radius:10px;padding:2rem 2.25rem;box-shadow:0 2px 12px rgba(0,0,0,.08)}` +
		`h1{font-size:1.4rem;margin:0 0 .75rem}a{color:#0b5cad}.button,button{display:inline-block;background:#0b5cad;color:#fff;border:0;border-radius:6px;padding:.5rem 1rem;font:inherit;text-decoration:none;margin-right:1rem;cursor:pointer}` +
		`.idp{background:#f5f6f8;border-left:3px solid #c9ced8;padding:.5rem .75rem}.ref{color:#6b7280;font-size:.85rem;margin-top:1.5rem}</style></head><body><main><h1>`)
	b.WriteString(html.EscapeString(title))
	b.WriteString(`</h1><p>`)
	b.WriteString(html.EscapeString(msg))
	b.WriteString(`</p>`)
	b.WriteString(extraHTML)
	if ref != "" {
		b.WriteString(`<p class="ref">Reference: ` + html.EscapeString(ref) + `</p>`)
	}
	b.WriteString(`</main></body></html>`)
	_, _ = w.Write([]byte(b.String()))
}

// errorCode is a short machine-readable code for err.
func errorCode(err error) string {
	if code, _, _, ok := explainProblem(err); ok {
		return code
	}
	var ae *auth.Error
	switch {
	case errors.As(err, &ae) && ae.Code != "":
		return ae.Code
	case errors.Is(err, ErrInvalidState), errors.Is(err, ErrAttemptExpired):
		return "invalid_state"
	case errors.Is(err, ErrIssuerMismatch):
		return "issuer_mismatch"
	case errors.Is(err, ErrInvalidIDToken):
		return "invalid_id_token"
	case errors.Is(err, auth.ErrTemporary):
		return "temporarily_unavailable"
	case errors.Is(err, auth.ErrMisconfigured):
		return "server_misconfigured"
	}
	return "error"
}

// statusFor maps a handler error to an HTTP status.
func statusFor(err error) int {
	var ae *auth.Error
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
	case errors.Is(err, auth.ErrTemporary):
		return http.StatusServiceUnavailable
	case errors.Is(err, auth.ErrMisconfigured):
		return http.StatusInternalServerError
	case errors.As(err, &ae):
		// e.g. invalid_grant: a replayed or expired code.
		return http.StatusBadRequest
	}
	return http.StatusInternalServerError
}
