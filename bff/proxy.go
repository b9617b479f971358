package bff

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/erpnetgo/auth"
	"github.com/erpnetgo/auth/authcode"
	"github.com/erpnetgo/auth/internal/transport"
)

// proxied is one /bff/api/ call on its way: the user's session and where
// it goes. It travels in the request's context from api to the proxy.
type proxied struct {
	s      *authcode.Session
	target *url.URL
	root   *url.URL // the Domain API root
}

type proxyKey struct{}

func proxiedOf(ctx context.Context) *proxied { return ctx.Value(proxyKey{}).(*proxied) }

// api forwards a call to the Domain API as the signed-in user.
func (h *handler) api(w http.ResponseWriter, r *http.Request) {
	if !h.antiForgery(w, r) {
		return
	}
	if !slices.Contains(h.methods, r.Method) {
		h.methodNotAllowed(w, r, h.allow)
		return
	}
	tail, err := apiPath(r)
	if err != nil {
		h.refuse(w, r, http.StatusBadRequest, "invalid_path", "only paths under the Domain API root are forwarded: "+err.Error(),
			"Not allowed", "This address cannot be used.")
		return
	}
	s, ok := h.session(w, r)
	if !ok {
		return
	}
	raw, err := h.users.apiRoot(r.Context(), s)
	if err != nil {
		h.proxyError(w, r, err)
		return
	}
	root, err := url.Parse(raw)
	if err != nil || !strings.HasSuffix(root.Path, "/") {
		h.proxyError(w, r, &auth.Error{Op: "Domain API root", Kind: auth.ErrMisconfigured, Err: errors.New("the Domain API root is not a URL ending in /")})
		return
	}
	p := &proxied{s: s, target: join(root, tail, r.URL.RawQuery), root: root}
	ctx := context.WithValue(r.Context(), proxyKey{}, p)
	if !idempotent(r.Method) {
		// Sent once: never replayed after a 401 (nor retried after a 429
		// or 503), whatever its body.
		ctx = transport.Once(ctx)
	}
	h.proxy.ServeHTTP(w, r.WithContext(ctx))
}

// idempotent reports whether the method may be sent twice (RFC 9110 §9.2.2).
func idempotent(m string) bool {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodPut, http.MethodDelete:
		return true
	}
	return false
}

func (h *handler) newProxy() *httputil.ReverseProxy {
	return &httputil.ReverseProxy{
		Rewrite: rewrite,
		Transport: roundTripFunc(func(req *http.Request) (*http.Response, error) {
			return h.users.transport(req.Context(), proxiedOf(req.Context()).s).RoundTrip(req)
		}),
		ModifyResponse: h.modifyResponse,
		ErrorHandler:   h.proxyError,
		ErrorLog:       slog.NewLogLogger(h.log.Handler(), slog.LevelDebug),
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// dropped are the browser's request headers never forwarded: its
// credentials (the transport adds the user's token), the anti-forgery
// header and what describes the browser's request to the BFF rather than
// the BFF's to the Domain API, and the method overrides some servers
// honour (a GET the allowlist let through must not become a DELETE).
// Hop-by-hop and X-Forwarded headers are dropped by httputil.ReverseProxy.
var dropped = []string{"Cookie", "Authorization", "X-Api-Key", "Api-Key", csrfHeader,
	"Origin", "Referer", "Sec-Fetch-Site", "Sec-Fetch-Mode", "Sec-Fetch-Dest", "Sec-Fetch-User",
	"X-HTTP-Method-Override", "X-HTTP-Method", "X-Method-Override"}

func rewrite(pr *httputil.ProxyRequest) {
	p := proxiedOf(pr.In.Context())
	u := *p.target
	pr.Out.URL = &u
	pr.Out.Host = ""
	for _, k := range dropped {
		pr.Out.Header.Del(k)
	}
}

// modifyResponse keeps the Domain API's cookies away from the app's origin,
// points redirects within the Domain API back at the BFF, and turns a 401
// of a session whose refresh token is dead into reauth_required.
func (h *handler) modifyResponse(resp *http.Response) error {
	p := proxiedOf(resp.Request.Context())
	hd := resp.Header
	hd.Del("Set-Cookie")
	if hd.Get("X-Content-Type-Options") == "" {
		hd.Set("X-Content-Type-Options", "nosniff")
	}
	if loc := hd.Get("Location"); loc != "" {
		if l, ok := relocate(p.root, resp.Request.URL, loc); ok {
			hd.Set("Location", l)
		}
	}
	if resp.StatusCode == http.StatusUnauthorized {
		// The transport has dropped the refused token (and, for a request
		// it could send again, refreshed it and retried). Whether the
		// session can still get a token decides who answers.
		if err := h.users.alive(resp.Request.Context(), p.s); errors.Is(err, auth.ErrReauthRequired) {
			return err
		}
	}
	return nil
}

// relocate maps a Location under the Domain API root to the BFF's path.
func relocate(root, base *url.URL, loc string) (string, bool) {
	u, err := base.Parse(loc)
	if err != nil || transport.Origin(u) != transport.Origin(root) {
		return "", false
	}
	rest, ok := strings.CutPrefix(u.EscapedPath(), root.EscapedPath())
	if !ok {
		return "", false
	}
	out := pathAPI + rest
	if u.RawQuery != "" {
		out += "?" + u.RawQuery
	}
	return out, true
}

// proxyError answers a call that got no usable answer from the Domain API.
func (h *handler) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, auth.ErrReauthRequired):
		signInAgain(w, "reauth_required")
		return
	case r.Context().Err() != nil:
		// The browser went away; nobody reads the answer.
		w.WriteHeader(http.StatusBadGateway)
		return
	case errors.Is(err, auth.ErrLicenseExhausted):
		// Retried once already by the transport: the SPA tells the user
		// in plain words and tries again later, not in a loop.
		var ae *auth.Error
		if errors.As(err, &ae) && ae.RetryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(int(ae.RetryAfter.Round(time.Second)/time.Second)))
		}
		writeJSON(w, http.StatusServiceUnavailable, errorBody("license_exhausted",
			"All ERP.net licenses of this instance are in use; try again in a few minutes"))
		return
	case errors.Is(err, auth.ErrTemporary), errors.Is(err, auth.ErrClosed):
		h.unavailable(w, r, "the identity server or the session store cannot be reached", err)
		return
	}
	h.log.Warn("bff: Domain API call failed", "error", err.Error())
	code, desc := "bad_gateway", "the Domain API cannot be reached"
	if errors.Is(err, auth.ErrMisconfigured) {
		code, desc = "server_misconfigured", "the application's Domain API settings are wrong"
	}
	writeJSON(w, http.StatusBadGateway, errorBody(code, desc))
}

// join is the URL a call of tail (the escaped path after /bff/api/) goes
// to: the root's path + tail, the browser's query, no fragment.
func join(root *url.URL, tail, rawQuery string) *url.URL {
	u := *root
	dec, _ := url.PathUnescape(tail) // apiPath checked it
	u.Path = root.Path + dec
	u.RawPath = root.EscapedPath() + tail
	u.RawQuery = rawQuery
	u.ForceQuery = false
	u.Fragment, u.RawFragment = "", ""
	return &u
}

// apiPath returns the escaped path of r after /bff/api/, or why it may
// not be forwarded.
func apiPath(r *http.Request) (string, error) {
	if r.URL.Scheme != "" || r.URL.Host != "" || r.URL.Opaque != "" || r.URL.User != nil {
		return "", errors.New("an absolute-form request target")
	}
	tail, ok := strings.CutPrefix(r.URL.EscapedPath(), pathAPI)
	if !ok {
		return "", errors.New("the /bff/api/ prefix is encoded")
	}
	return tail, checkPath(tail)
}

// maxLayers is how many layers of percent-encoding checkPath decodes.
const maxLayers = 3

// checkPath refuses a path (relative to the Domain API root) that could
// reach anything outside the root, as written and after each layer of
// percent-decoding (a server may decode more than once): dot segments,
// empty segments, backslashes, '@', control characters and a scheme.
func checkPath(p string) error {
	for layer := 0; ; layer++ {
		if err := checkLayer(p); err != nil {
			return err
		}
		d, err := url.PathUnescape(p)
		switch {
		case err != nil:
			return errors.New("a malformed percent-encoding")
		case d == p:
			return nil
		case layer == maxLayers:
			return errors.New("too many layers of percent-encoding")
		}
		p = d
	}
}

// checkLayer checks one decoding layer of a path.
func checkLayer(p string) error {
	for i := 0; i < len(p); i++ {
		switch c := p[i]; {
		case c < 0x20 || c == 0x7f:
			return errors.New("a control character")
		case c == '\\':
			return errors.New("a backslash")
		case c == '@':
			return errors.New("an '@'")
		}
	}
	for _, r := range p {
		switch r {
		case '\uff0f', '\uff3c', '\u2215', '\u2216', '\u29f5', '\ufe68', '\uff0e', '\u2024':
			return errors.New("a look-alike of '/', '\\' or '.'")
		}
	}
	if p == "" {
		return nil // the service document
	}
	segs := strings.Split(p, "/")
	for i, seg := range segs {
		base, _, _ := strings.Cut(seg, ";") // servers that take ";" as a parameter
		switch {
		case seg == "" && i < len(segs)-1:
			return errors.New("an empty segment (//)")
		case seg != "" && strings.Trim(base, ". ") == "":
			return errors.New("a dot segment")
		}
	}
	if scheme, _, ok := strings.Cut(segs[0], ":"); ok && isScheme(scheme) {
		return errors.New("an absolute URI")
	}
	return nil
}

// isScheme reports whether s has the syntax of a URI scheme (RFC 3986 §3.1).
func isScheme(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
		case i > 0 && (c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.'):
		default:
			return false
		}
	}
	return true
}
