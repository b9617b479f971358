package oidctest

import (
	"context"
	"errors"
	"fmt"
	"net/http/cookiejar"
	"net/url"

	"github.com/erpnetgo/auth/internal/htmlform"
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
		p.browser.Jar, _ = cookiejar.New(nil)
		p.sessionUser = ""
	}
	signIns := 0
	final, page, err := p.browse(ctx, authURL, target, func(f *htmlform.Form) error {
		switch prompt := f.Values.Get("prompt"); prompt {
		case "login":
			if signIns++; signIns > 1 {
				return fmt.Errorf("the provider showed the sign-in form again after signing in %q", user)
			}
			f.Values.Set("login", user)
			f.Values.Set("password", password)
		case "consent":
		default:
			return fmt.Errorf("unexpected form (prompt %q) posting to %s", prompt, f.Action)
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
	final, _, err := p.browse(ctx, endSessionURL, target, func(f *htmlform.Form) error {
		if !f.Values.Has("xsrf") {
			return fmt.Errorf("unexpected form posting to %s", f.Action)
		}
		// The confirmation page's "Yes, sign me out" button.
		f.Values.Set("logout", "yes")
		return nil
	})
	if err != nil {
		return nil, err
	}
	p.sessionUser = ""
	return final, nil
}

// browse walks from start (htmlform.Walk) in the provider's browser, filling
// its forms with fill, until a redirect goes to target (an absolute URL whose
// query is ignored; may be empty) or leaves the provider's origin, and
// returns it; or until a page of the provider without a form, whose text it
// returns.
func (p *Provider) browse(ctx context.Context, start, target string, fill func(*htmlform.Form) error) (*url.URL, string, error) {
	final, page, err := htmlform.Walk(ctx, p.browser, start, func(_, to *url.URL) bool { return p.isFinal(to, target) },
		func(f *htmlform.Form) error {
			if action, _ := url.Parse(f.Action); p.isFinal(action, target) {
				return fmt.Errorf("the provider posts a form to %s; only redirects back to the client are supported", f.Action)
			}
			return fill(f)
		})
	if err != nil {
		return nil, "", fmt.Errorf("oidctest: %w", err)
	}
	if final == nil {
		return nil, htmlform.Text(page), nil
	}
	return final, "", nil
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
