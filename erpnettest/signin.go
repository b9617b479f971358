package erpnettest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/erpnetgo/auth/internal/htmlform"
)

// SignIn signs the named user in to an app the way a browser would and returns an
// *http.Client whose cookie jar holds the app's session: requests to the app's protected
// pages then run as that user.
//
// appURL is the URL of the app's sign-in handler, e.g. ts.URL+"/signin" for an app served by
// httptest (a protected page that redirects browsers to the sign-in works too). SignIn
// follows the app's redirect to this server, fills in the sign-in form with the user's
// password, follows the redirect back to the app's callback and stops when the callback has
// answered; the redirect URI the app sends must be registered with its Trusted Application
// (the demo web application accepts http://127.0.0.1:<any port>/callback).
//
// The client follows redirects, sends "Accept: text/html" unless a request sets Accept, and
// shares a transport with the other clients of this Server, which Close closes. SignIn's
// errors say where the sign-in stopped; they never contain a code, token or password.
func (s *Server) SignIn(appURL, username string) (*http.Client, error) {
	jar, _ := cookiejar.New(nil)
	tr := browserTransport{s.tr}
	step := &http.Client{Jar: jar, Transport: tr, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	cb, err := s.walk(step, appURL, username)
	if err != nil {
		return nil, err
	}
	// The callback answers with a redirect or a page (landed), or refuses.
	landed := errors.New("landed")
	_, _, err = htmlform.Walk(context.Background(), step, cb.String(), func(_, _ *url.URL) bool { return true },
		func(*htmlform.Form) error { return landed })
	if err != nil && err != landed {
		return nil, fmt.Errorf("erpnettest: SignIn(%q): the app's callback: %w", username, err)
	}
	return &http.Client{Jar: jar, Transport: tr, Timeout: 30 * time.Second}, nil
}

// formError finds the sign-in form's error message.
var formError = regexp.MustCompile(`(?s)id="error"[^>]*>(.*?)</p>`)

// walk drives hc from appURL through the sign-in form as username and returns the redirect
// back to the app with a code, not followed.
func (s *Server) walk(hc *http.Client, appURL, username string) (*url.URL, error) {
	fail := func(format string, args ...any) (*url.URL, error) {
		return nil, fmt.Errorf("erpnettest: SignIn(%q): "+format, append([]any{username}, args...)...)
	}
	u := s.user(username)
	if u == nil {
		return fail("unknown user %q", username)
	}
	app, err := url.Parse(appURL)
	if err != nil || (app.Scheme != "http" && app.Scheme != "https") || app.Host == "" {
		return fail("appURL must be an absolute http(s) URL, got %q", appURL)
	}
	idp := func(u *url.URL) bool { return strings.HasPrefix(u.String(), s.url+"/id/") }
	posted := false
	cb, page, err := htmlform.Walk(context.Background(), hc, appURL, func(from, to *url.URL) bool {
		return idp(from) && !idp(to)
	}, func(f *htmlform.Form) error {
		switch {
		case f.Action != s.url+pathSignIn:
			return fmt.Errorf("unexpected form posting to %s", f.Action)
		case posted:
			msg := "(no message)"
			if m := formError.FindSubmatch(f.Page); m != nil {
				msg = htmlform.Text(m[1]) // only the message: the page also lists passwords
			}
			return errors.New("the identity server's sign-in form did not accept the password: " + msg)
		}
		posted = true
		f.Values.Set("username", username)
		f.Values.Set("password", u.Password)
		f.Values.Set("action", "login")
		return nil
	})
	switch {
	case err != nil:
		return fail("%w", err)
	case cb == nil:
		return fail("%s answered %q instead of sending the browser to the identity server at %s", htmlform.Redact(app), htmlform.Text(page), s.Authority())
	case cb.Query().Get("error") != "":
		return fail("the identity server refused the sign-in: %s: %s", cb.Query().Get("error"), cb.Query().Get("error_description"))
	}
	return cb, nil
}

// browserTransport asks for HTML, as a browser does, unless the request says otherwise.
type browserTransport struct{ next http.RoundTripper }

func (b browserTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Header.Get("Accept") == "" {
		r = r.Clone(r.Context())
		r.Header.Set("Accept", "text/html,application/xhtml+xml")
	}
	return b.next.RoundTrip(r)
}

// CloseIdleConnections lets http.Client.CloseIdleConnections reach the shared transport.
func (b browserTransport) CloseIdleConnections() {
	if c, ok := b.next.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}
