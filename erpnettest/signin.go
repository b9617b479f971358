package erpnettest

import (
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"time"
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
	password, ok := s.passwords[username]
	if !ok {
		return nil, fmt.Errorf("erpnettest: SignIn: unknown user %q", username)
	}
	u, err := url.Parse(appURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("erpnettest: SignIn: appURL must be an absolute http(s) URL, got %q", appURL)
	}
	jar, err := cookiejar.New(nil)
	if err != nil {
		return nil, err
	}
	tr := browserTransport{s.tr}
	step := &http.Client{Jar: jar, Transport: tr, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	fail := func(format string, args ...any) (*http.Client, error) {
		return nil, fmt.Errorf("erpnettest: SignIn(%q): "+format, append([]any{username}, args...)...)
	}

	req, _ := http.NewRequest(http.MethodGet, u.String(), nil)
	var (
		toCallback bool // the identity server redirected back with a code: req is the callback
		formPosted bool
	)
	for range 30 {
		where := redact(req.URL)
		resp, err := step.Do(req)
		if err != nil {
			var ue *url.Error
			if errors.As(err, &ue) {
				err = ue.Err // its message would repeat the URL with its query (a code)
			}
			return fail("%s %s: %w", req.Method, where, err)
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		fromIDP := strings.HasPrefix(req.URL.String(), s.URL()+"/id/")
		switch {
		case toCallback && resp.StatusCode < 400:
			return &http.Client{Jar: jar, Transport: tr, Timeout: 30 * time.Second}, nil
		case toCallback:
			return fail("the app's callback %s answered %s: %s", where, resp.Status, excerpt(body))
		case resp.StatusCode >= 300 && resp.StatusCode < 400:
			loc, err := req.URL.Parse(resp.Header.Get("Location"))
			if err != nil || resp.Header.Get("Location") == "" {
				return fail("%s answered %s without a usable Location", where, resp.Status)
			}
			if fromIDP {
				q := loc.Query()
				if e := q.Get("error"); e != "" {
					return fail("the identity server refused the sign-in: %s: %s", e, q.Get("error_description"))
				}
				toCallback = q.Get("code") != ""
			}
			req, _ = http.NewRequest(http.MethodGet, loc.String(), nil)
		case resp.StatusCode >= 400:
			return fail("%s answered %s: %s", where, resp.Status, excerpt(body))
		case fromIDP && signInForm.Match(body):
			if formPosted {
				msg := "(no message)"
				if m := formError.FindSubmatch(body); m != nil {
					msg = excerpt(m[1]) // only the message: the page also lists passwords
				}
				return fail("the identity server's sign-in form did not accept the password: %s", msg)
			}
			form := url.Values{"username": {username}, "password": {password}, "action": {"login"}}
			for _, m := range signInForm.FindAllSubmatch(body, -1) {
				form.Set(string(m[1]), html.UnescapeString(string(m[2])))
			}
			req, _ = http.NewRequest(http.MethodPost, s.URL()+"/id/account/login", strings.NewReader(form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Origin", s.URL())
			formPosted = true
		case fromIDP:
			return fail("unexpected page from the identity server at %s: %s", where, excerpt(body))
		default:
			return fail("%s answered %s instead of sending the browser to the identity server at %s", where, resp.Status, s.Authority())
		}
	}
	return fail("too many redirects")
}

// signInForm finds the hidden fields of the identity server's sign-in form.
var signInForm = regexp.MustCompile(`name="(request|csrf)" value="([^"]*)"`)

// formError finds the sign-in form's error message.
var formError = regexp.MustCompile(`(?s)id="error"[^>]*>(.*?)</p>`)

// redact returns u without its query and fragment (they may carry a code or state).
func redact(u *url.URL) string {
	return (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}).String()
}

var (
	tags   = regexp.MustCompile(`(?s)<(script|style)[^>]*>.*?</(script|style)>|<[^>]*>`)
	spaces = regexp.MustCompile(`\s+`)
)

// excerpt is the start of a page's text, for an error message.
func excerpt(body []byte) string {
	t := strings.TrimSpace(spaces.ReplaceAllString(html.UnescapeString(tags.ReplaceAllString(string(body), " ")), " "))
	if r := []rune(t); len(r) > 200 {
		t = string(r[:200]) + "…"
	}
	if t == "" {
		return "(empty page)"
	}
	return t
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
