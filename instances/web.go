package instances

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/erpnetgo/auth"
	"github.com/erpnetgo/auth/authcode"
	"github.com/erpnetgo/auth/internal/peek"
)

// resolve returns the root (normalized) a request is for, by Config.Resolve
// or the "instance" parameter.
func (g *Registry) resolve(r *http.Request) (string, error) {
	var raw string
	var err error
	if g.cfg.Resolve != nil {
		raw, err = g.cfg.Resolve(r)
	} else {
		raw = r.URL.Query().Get(instanceParam)
		if raw == "" && r.Method == http.MethodPost {
			raw = r.PostFormValue(instanceParam)
		}
		if raw == "" {
			err = errNoInstance
		}
	}
	if err != nil {
		return "", err
	}
	return normalizeRoot(raw)
}

// Plain-words answers of the registry's own handlers.
var (
	problemNoInstance = &peek.Problem{Code: "unknown_instance", Title: "Which ERP.net instance?",
		Message: "This sign-in does not say which ERP.net instance to sign in to. Please start again from the application's sign-in page."}
	problemUnknown = &peek.Problem{Code: "unknown_instance", Title: "Unknown ERP.net instance",
		Message: "This application is not installed on that ERP.net instance, or the address is mistyped. Ask your ERP.net administrator to install it, then sign in again."}
	problemUnavailable = &peek.Problem{Code: "temporarily_unavailable", Title: "Sign-in is unavailable right now",
		Message: "The application cannot reach its list of ERP.net instances at the moment. Please try again in a few minutes."}
)

// fail renders err with the registry's page (or Config.ErrorHandler).
func (g *Registry) fail(w http.ResponseWriter, r *http.Request, status int, p *peek.Problem, err error) {
	peek.Fail(g.tpl, w, r, status, &peek.Problem{Code: p.Code, Title: p.Title, Message: p.Message, Err: err})
}

// failLookup renders a failed instance look-up.
func (g *Registry) failLookup(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, ErrUnknownInstance):
		g.fail(w, r, http.StatusNotFound, problemUnknown, err)
	case errors.Is(err, auth.ErrMisconfigured):
		peek.Fail(g.tpl, w, r, http.StatusInternalServerError, err)
	default:
		g.fail(w, r, http.StatusServiceUnavailable, problemUnavailable, err)
	}
}

// SignIn returns the handler that starts a sign-in at the instance the
// request is for (Config.Resolve, or the "instance" parameter): as
// authcode.Client.SignIn, with the attempt bound to that instance, so that
// the callback redeems its code there and nowhere else. Unknown instances
// get a page saying so (404). Mount it at Config.SignInPath.
func (g *Registry) SignIn() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		root, err := g.resolve(r)
		if err != nil {
			g.fail(w, r, http.StatusBadRequest, problemNoInstance, err)
			return
		}
		in, err := g.lookup(r.Context(), root)
		if err != nil {
			g.failLookup(w, r, err)
			return
		}
		p, err := in.parts()
		if err != nil {
			g.failLookup(w, r, err)
			return
		}
		p.signIn.ServeHTTP(w, r)
	})
}

// Callback returns the handler for Config.RedirectURL, the one callback
// of every instance. A GET is a sign-in callback: it goes to the instance
// its attempt was started at (named in the state, which the attempt's
// sealed cookie binds), which checks it as authcode.Client.Callback does,
// so a code, iss or ID token from any other instance is refused and an
// instance's secret is only ever sent to its own token endpoint. A POST is
// an ERP.net Marketplace lifecycle event (see Event): verified, then
// applied (installed adds the instance, uninstalled removes it).
func (g *Registry) Callback() http.Handler {
	tplCallback := g.tpl.Callback()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			g.serveEvent(w, r)
			return
		}
		if r.Method != http.MethodGet {
			tplCallback.ServeHTTP(w, r) // 405, as authcode answers
			return
		}
		var in *instance
		var err error
		state := r.URL.Query().Get("state")
		if i := strings.LastIndexByte(state, '.'); i >= 0 {
			in, err = g.lookupTag(r.Context(), state[i+1:])
		}
		if in == nil {
			if err != nil && !errors.Is(err, ErrUnknownInstance) {
				g.failLookup(w, r, err)
				return
			}
			// No attempt of an instance served here: a replayed or
			// bookmarked callback (a signed-in browser just goes on), or
			// a forged one.
			if s, _ := g.UserSession(r); s != nil {
				http.Redirect(w, r, g.defaultReturn(), http.StatusSeeOther)
				return
			}
			peek.Fail(g.tpl, w, r, http.StatusBadRequest,
				fmt.Errorf("%w: the state names no instance this application serves", authcode.ErrInvalidState))
			return
		}
		p, err := in.parts()
		if err != nil {
			g.failLookup(w, r, err)
			return
		}
		prev, hadPrev := peek.CookieTag(g.tpl, r)
		sw := &statusWriter{ResponseWriter: w}
		p.callback.ServeHTTP(sw, r)
		if sw.status == http.StatusSeeOther && hadPrev && prev != in.tag {
			// The browser's session at another instance is replaced:
			// end it there, as authcode does within one instance.
			g.endReplaced(prev, r.Header.Values("Cookie"))
		}
	})
}

// defaultReturn is Config.DefaultReturnPath or "/".
func (g *Registry) defaultReturn() string {
	if g.cfg.DefaultReturnPath != "" {
		return g.cfg.DefaultReturnPath
	}
	return "/"
}

// endReplaced signs out, in the background, the session a sign-in at
// another instance replaced in the browser.
func (g *Registry) endReplaced(tag string, cookies []string) {
	g.goBackground(func() {
		ctx, cancel := context.WithTimeout(g.ctx, 30*time.Second)
		defer cancel()
		in, err := g.lookupTag(ctx, tag)
		if err != nil {
			return
		}
		p, err := in.parts()
		if err != nil {
			return
		}
		r, _ := http.NewRequestWithContext(ctx, http.MethodGet, "/", nil)
		r.Header["Cookie"] = cookies
		s, err := p.client.UserSession(r)
		if err != nil {
			return
		}
		if err := p.client.SignOutSession(ctx, s); err != nil {
			g.log.Warn("instances: the replaced session was not fully signed out", "root", in.root, "error", err.Error())
		}
	})
}

// statusWriter remembers the status a handler answered with.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// cookieInstance returns the instance of the session cookie of r, or nil
// (no cookie, or an instance no longer served).
func (g *Registry) cookieInstance(r *http.Request) (*instance, error) {
	tag, ok := peek.CookieTag(g.tpl, r)
	if !ok {
		return nil, nil
	}
	in, err := g.lookupTag(r.Context(), tag)
	if errors.Is(err, ErrUnknownInstance) {
		return nil, nil
	}
	return in, err
}

// SignOut returns the handler that signs the user out of the instance
// they are signed in at, as authcode.Client.SignOut does (revocation,
// end-session redirect, cookie cleared). Without a session of an instance
// served here it redirects to Config.PostLogoutRedirectURL (or
// DefaultReturnPath).
func (g *Registry) SignOut() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if in, err := g.cookieInstance(r); in != nil && err == nil {
			if p, err := in.parts(); err == nil {
				p.signOut.ServeHTTP(w, r)
				return
			}
		}
		target := g.cfg.PostLogoutRedirectURL
		if target == "" {
			target = g.defaultReturn()
		}
		w.Header().Set("Cache-Control", "no-store")
		http.Redirect(w, r, target, http.StatusSeeOther)
	})
}

// RequireUser is middleware that lets through only users signed in at an
// instance served here, as authcode.Client.RequireUser does for its
// instance (authcode.SessionFromContext gives the Session; UserClient
// calls that instance's API). When Config.Resolve names an instance for
// the request, the user must be signed in at that one: others are sent to
// sign in there. Browsers without a session are redirected to
// Config.SignInPath, API callers get 401.
func (g *Registry) RequireUser(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		in, err := g.cookieInstance(r)
		if g.cfg.Resolve != nil {
			if root, rerr := g.resolve(r); rerr == nil && (in == nil || in.root != root) {
				in, err = g.lookup(r.Context(), root)
				if errors.Is(err, ErrUnknownInstance) {
					in, err = nil, nil
				}
			}
		}
		if err != nil {
			g.failLookup(w, r, err)
			return
		}
		if in == nil {
			peek.Challenge(g.tpl, w, r)
			return
		}
		p, err := in.parts()
		if err != nil {
			g.failLookup(w, r, err)
			return
		}
		p.client.RequireUser(next).ServeHTTP(w, r)
	})
}

// UserSession returns the session of the user who sent r, at whichever
// instance they signed in, as authcode.Client.UserSession does; without
// one, authcode.ErrNoSession.
func (g *Registry) UserSession(r *http.Request) (*authcode.Session, error) {
	in, err := g.cookieInstance(r)
	switch {
	case err != nil:
		return nil, err
	case in == nil:
		return nil, authcode.ErrNoSession
	}
	p, err := in.parts()
	if err != nil {
		return nil, err
	}
	return p.client.UserSession(r)
}

// clientOf returns the Client of the instance s was signed in at.
func clientOf(s *authcode.Session) *authcode.Client {
	c, _ := peek.ClientOf(s).(*authcode.Client)
	return c
}

// UserClient returns an HTTP client that calls the APIs of the instance s
// belongs to, as its user (see authcode.Client.UserClient): credentials go
// to that instance only. A Session of no instance served here (nil, or
// not from RequireUser or UserSession) gives a client whose requests fail
// with authcode.ErrNoSession; one of a removed instance, with
// auth.ErrClosed; neither sends anything.
func (g *Registry) UserClient(ctx context.Context, s *authcode.Session) *http.Client {
	c := clientOf(s)
	if c == nil {
		return &http.Client{Transport: failTransport{authcode.ErrNoSession}}
	}
	return c.UserClient(ctx, s)
}

// DomainAPI returns the Domain API root of the instance s belongs to,
// ending in "/" (see authcode.Client.DomainAPI).
func (g *Registry) DomainAPI(ctx context.Context, s *authcode.Session) (string, error) {
	c := clientOf(s)
	if c == nil {
		return "", authcode.ErrNoSession
	}
	return c.DomainAPI(ctx)
}

// failTransport fails every request without sending it.
type failTransport struct{ err error }

func (t failTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		r.Body.Close()
	}
	return nil, t.err
}
