package oidctest

import (
	"context"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
)

// RedirectError is returned by [Provider.Login], together with the redirect
// URL itself, when the provider redirected back to the client with an OAuth
// error response (an "error" parameter) instead of a code.
type RedirectError struct {
	// URL is the redirect URL, as also returned by Login.
	URL *url.URL
	// Code is the "error" parameter, for example "access_denied".
	Code string
	// Description is the "error_description" parameter.
	Description string
}

// Error implements error.
func (e *RedirectError) Error() string {
	return fmt.Sprintf("oidctest: authorization failed: %s: %s", e.Code, e.Description)
}

// maxSteps bounds the requests of one flow.
const maxSteps = 20

// Login drives an interactive authorization request through the provider's
// own pages the way a browser would, with a cookie jar and without running
// scripts: it requests authURL, submits the sign-in form for user, submits
// the consent form if shown, and follows redirects until the provider
// redirects off its own origin (or to the request's redirect_uri). It
// returns that redirect URL, carrying code, state and iss, without requesting
// it. If the redirect carries an OAuth error, Login returns the URL and a
// *[RedirectError].
//
// The caller builds authURL (client_id, redirect_uri, response_type=code,
// scope, state, nonce, code_challenge with S256, ...). Only the query and
// fragment response modes are supported.
//
// The Provider behaves as a single browser: the provider's session persists
// between calls, so a second Login for the same user signs in silently and
// shows consent only for what was not granted yet (or for prompt=consent),
// while a Login for a different user first discards all cookies.
func (p *Provider) Login(ctx context.Context, authURL, user string) (*url.URL, error) {
	if user == "" {
		return nil, errors.New("oidctest: Login: empty user")
	}
	password := "any-password"
	if p.users != nil {
		pw, ok := p.users[user]
		if !ok {
			return nil, fmt.Errorf("oidctest: Login: user %q is not in Config.Users", user)
		}
		password = pw
	}
	target, err := queryParam(authURL, "redirect_uri")
	if err != nil {
		return nil, err
	}

	p.mu.Lock()
	defer p.mu.Unlock()
	if p.sessionUser != user {
		p.jar, _ = cookiejar.New(nil)
		p.sessionUser = ""
	}
	signIns := 0
	final, page, err := p.browse(ctx, authURL, target, func(f *form) error {
		switch prompt := f.values.Get("prompt"); prompt {
		case "login":
			if signIns++; signIns > 1 {
				return fmt.Errorf("oidctest: Login: the provider showed the sign-in form again after signing in %q", user)
			}
			f.values.Set("login", user)
			f.values.Set("password", password)
		case "consent":
		default:
			return fmt.Errorf("oidctest: Login: unexpected form (prompt %q) posting to %s", prompt, f.action)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if final == nil {
		return nil, fmt.Errorf("oidctest: Login: the provider showed a page without a form: %s", page)
	}
	p.sessionUser = user
	params := final.Query()
	if params.Get("error") == "" && final.Fragment != "" {
		params, _ = url.ParseQuery(final.Fragment)
	}
	if code := params.Get("error"); code != "" {
		return final, &RedirectError{URL: final, Code: code, Description: params.Get("error_description")}
	}
	return final, nil
}

// EndSession follows an RP-initiated logout request (the provider's
// end_session_endpoint with id_token_hint or client_id,
// post_logout_redirect_uri, state, ...) in the browser of [Provider.Login]:
// it confirms the provider's sign-out form and returns the redirect to the
// post_logout_redirect_uri, with its state, without requesting it. If the
// request has no post_logout_redirect_uri the provider ends on its own
// "Sign-out Success" page, and EndSession returns nil and no error.
func (p *Provider) EndSession(ctx context.Context, endSessionURL string) (*url.URL, error) {
	target, err := queryParam(endSessionURL, "post_logout_redirect_uri")
	if err != nil {
		return nil, err
	}

	p.mu.Lock()
	defer p.mu.Unlock()
	final, _, err := p.browse(ctx, endSessionURL, target, func(f *form) error {
		if !f.values.Has("xsrf") {
			return fmt.Errorf("oidctest: EndSession: unexpected form posting to %s", f.action)
		}
		// The confirmation page's "Yes, sign me out" button.
		f.values.Set("logout", "yes")
		return nil
	})
	if err != nil {
		return nil, err
	}
	p.sessionUser = ""
	return final, nil
}

// browse requests start and then follows redirects and submits the forms of
// the provider's pages, each after fill has completed it. It stops at the
// first redirect leaving the provider's origin or going to target (an
// absolute URL whose query is ignored; may be empty) and returns it, or at a
// page of the provider without a form, whose text it returns.
func (p *Provider) browse(ctx context.Context, start, target string, fill func(*form) error) (*url.URL, string, error) {
	client := &http.Client{
		Transport:     p.transport,
		Jar:           p.jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	method, next, body := http.MethodGet, start, url.Values(nil)
	for range maxSteps {
		var rd io.Reader
		if body != nil {
			rd = strings.NewReader(body.Encode())
		}
		req, err := http.NewRequestWithContext(ctx, method, next, rd)
		if err != nil {
			return nil, "", fmt.Errorf("oidctest: %w", err)
		}
		if body != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		resp, err := client.Do(req)
		if err != nil {
			return nil, "", fmt.Errorf("oidctest: %w", err)
		}
		page, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		if err != nil {
			return nil, "", fmt.Errorf("oidctest: reading %s %s: %w", method, next, err)
		}

		switch code := resp.StatusCode; {
		case code >= 300 && code < 400:
			loc, err := resp.Location()
			if err != nil {
				return nil, "", fmt.Errorf("oidctest: %s %s: %s without a valid Location: %w", method, next, resp.Status, err)
			}
			if p.isFinal(loc, target) {
				return loc, "", nil
			}
			method, next, body = http.MethodGet, loc.String(), nil
		case code == http.StatusOK:
			f := parseForm(page)
			if f == nil {
				return nil, pageText(page), nil
			}
			action, err := resp.Request.URL.Parse(f.action)
			if err != nil {
				return nil, "", fmt.Errorf("oidctest: bad form action %q: %w", f.action, err)
			}
			if p.isFinal(action, target) {
				return nil, "", fmt.Errorf("oidctest: the provider posts a form to %s; only redirects back to the client are supported", action)
			}
			if err := fill(f); err != nil {
				return nil, "", err
			}
			method, next, body = http.MethodPost, action.String(), f.values
		default:
			return nil, "", fmt.Errorf("oidctest: %s %s: %s: %s", method, next, resp.Status, pageText(page))
		}
	}
	return nil, "", fmt.Errorf("oidctest: no redirect back to the client after %d requests", maxSteps)
}

// isFinal reports whether u ends a flow: it goes to target (ignoring query
// and fragment) or leaves the provider's origin.
func (p *Provider) isFinal(u *url.URL, target string) bool {
	if t, err := url.Parse(target); err == nil && target != "" &&
		u.Scheme == t.Scheme && u.Host == t.Host && u.Path == t.Path {
		return true
	}
	return u.Scheme+"://"+u.Host != p.origin
}

func queryParam(rawURL, name string) (string, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", fmt.Errorf("oidctest: %w", err)
	}
	return u.Query().Get(name), nil
}

// form is the first POST form of a page.
type form struct {
	action string
	values url.Values
}

var (
	formRE  = regexp.MustCompile(`(?is)<form\b([^>]*)>(.*?)</form>`)
	inputRE = regexp.MustCompile(`(?is)<input\b([^>]*)>`)
	attrRE  = regexp.MustCompile(`(?s)([a-zA-Z_:][-\w:.]*)\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+))`)
	skipRE  = regexp.MustCompile(`(?is)<(style|script)\b.*?</(style|script)>`)
	tagRE   = regexp.MustCompile(`(?s)<[^>]*>`)
)

// parseForm returns the first form with method post in page, with the
// values of its text, password and hidden inputs, or nil.
func parseForm(page []byte) *form {
	for _, m := range formRE.FindAllSubmatch(page, -1) {
		fa := attrs(m[1])
		if !strings.EqualFold(fa["method"], "post") {
			continue
		}
		f := &form{action: fa["action"], values: url.Values{}}
		for _, in := range inputRE.FindAllSubmatch(m[2], -1) {
			ia := attrs(in[1])
			switch strings.ToLower(ia["type"]) {
			case "", "text", "password", "hidden", "email":
				if name := ia["name"]; name != "" {
					f.values.Add(name, ia["value"])
				}
			}
		}
		return f
	}
	return nil
}

// attrs parses the attributes of an HTML start tag.
func attrs(tag []byte) map[string]string {
	m := map[string]string{}
	for _, a := range attrRE.FindAllSubmatch(tag, -1) {
		m[strings.ToLower(string(a[1]))] = html.UnescapeString(string(a[2]) + string(a[3]) + string(a[4]))
	}
	return m
}

// pageText returns the visible text of an HTML page, shortened.
func pageText(page []byte) string {
	text := tagRE.ReplaceAllString(skipRE.ReplaceAllString(string(page), " "), " ")
	text = strings.Join(strings.Fields(html.UnescapeString(text)), " ")
	if len(text) > 500 {
		text = text[:500] + "..."
	}
	return text
}
