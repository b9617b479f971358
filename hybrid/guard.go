package hybrid

import (
	"bytes"
	"errors"
	"net/http"
	"strings"

	"github.com/erpnetgo/auth"
	"github.com/erpnetgo/auth/internal/credential"
	"github.com/erpnetgo/auth/internal/peek"
)

// ErrIdentityMix matches (errors.Is) every *IdentityMixError: user and
// service identities were about to mix, and the SDK refused.
var ErrIdentityMix = errors.New("hybrid: user and service identities must not mix")

// IdentityMixError reports what was refused and why. It names the header,
// never its value.
type IdentityMixError struct {
	// Client is "user" or "service": the client that refused a request
	// which already carried credentials; or "response" when a service
	// token was about to be sent to a browser.
	Client string
	// Found is what was found: a header name ("Authorization",
	// "X-Api-Key", "Api-Key", "Cookie"), "URL user info", or "service
	// token".
	Found string
}

// Error implements error.
func (e *IdentityMixError) Error() string {
	if e.Client == sideResponse {
		return "hybrid: refused to send a service token to a browser (" + e.Found + " in the response): service tokens must stay on the server"
	}
	other := "service"
	if e.Client == sideService {
		other = "user"
	}
	return "hybrid: the " + e.Client + " client refused a request that already carries credentials (" + e.Found +
		"): it adds its own token, and a " + other + " credential must never be sent through it"
}

// Is makes every IdentityMixError match ErrIdentityMix.
func (e *IdentityMixError) Is(target error) bool { return target == ErrIdentityMix }

const (
	sideUser     = "user"
	sideService  = "service"
	sideResponse = "response"
)

// guardTransport refuses requests that already carry a credential, then
// hands the others to next: the client of [authcode.Client.UserClient] or
// [clientcreds.Source.Client], which adds this side's token.
type guardTransport struct {
	app  *App
	side string
	next http.RoundTripper
}

// RoundTrip implements http.RoundTripper. A refused request is not sent and
// its body is closed.
func (g *guardTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if g.app.closed.Load() {
		closeBody(req)
		return nil, auth.ErrClosed
	}
	if found := presetCredential(req); found != "" {
		closeBody(req)
		return nil, &IdentityMixError{Client: g.side, Found: found}
	}
	if g.side != sideService {
		return g.next.RoundTrip(req)
	}
	// Remember the service token this request goes out with (and the one
	// a 401 may have replaced it with), for the response guard.
	g.app.knownTokens()
	resp, err := g.next.RoundTrip(req)
	g.app.knownTokens()
	return resp, err
}

// presetCredential names the credential req already carries, or "".
// Header names are compared case-insensitively, since a header map may be
// filled without canonicalisation.
func presetCredential(req *http.Request) string {
	if req.URL != nil && req.URL.User != nil {
		return "URL user info"
	}
	for k, v := range req.Header {
		if len(v) > 0 && credential.IsHeader(k) {
			return http.CanonicalHeaderKey(k)
		}
	}
	return ""
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		_ = req.Body.Close()
	}
}

// seenTokens are the service access tokens this App has used lately (the
// current one and the one before a refresh, which may still be valid).
type seenTokens struct {
	cur, prev   string
	curB, prevB []byte
}

// noteServiceToken remembers tok as the current service token.
func (a *App) noteServiceToken(tok string) {
	for {
		old := a.seen.Load()
		if tok == "" || (old != nil && old.cur == tok) {
			return
		}
		n := &seenTokens{cur: tok, curB: []byte(tok)}
		if old != nil {
			n.prev, n.prevB = old.cur, old.curB
		}
		if a.seen.CompareAndSwap(old, n) {
			return
		}
	}
}

// knownTokens learns the service token the App's own Source holds (a peek:
// no request, no refresh, no hook event) and returns the tokens the App
// has seen. While the token stays the same this costs two atomic loads and
// allocates nothing.
func (a *App) knownTokens() *seenTokens {
	if tok := peek.SourceToken(a.svc); tok != "" {
		if s := a.seen.Load(); s == nil || s.cur != tok {
			a.noteServiceToken(tok)
		}
	}
	return a.seen.Load()
}

// GuardResponses is middleware that keeps this App's service tokens out of
// responses: a response whose headers (Set-Cookie included, at every
// WriteHeader, 1xx informational ones such as 103 Early Hints too), body
// or trailers contain the service token the App's Source holds (or the one
// before its last refresh) is not delivered. If the final headers have not
// been sent yet the browser gets a 500 instead; if they have, the response
// is aborted (panic with http.ErrAbortHandler, which net/http turns into a
// broken connection), and the token is not sent, though the bytes written
// before it (possibly the beginning of a token split across writes) may
// have been. Trailers are checked when the handler returns; a leaking one
// is deleted and the response aborted. Either way an error is logged,
// without the token.
//
// It is a safety net, not a licence: it only knows tokens of this App's
// Source in this process, and it cannot recognise a token that was
// transformed (encoded, encrypted, cut into pieces that are not written
// back to back). WithUser applies it; use it on other routes that might
// echo service data to browsers.
func (a *App) GuardResponses(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g := &guardWriter{ResponseWriter: w, app: a, r: r}
		next.ServeHTTP(g, r)
		g.finish()
	})
}

// guardWriter is the ResponseWriter of GuardResponses.
type guardWriter struct {
	http.ResponseWriter
	app     *App
	r       *http.Request
	sent    bool   // final headers sent
	blocked bool   // a leak was found: drop everything else
	tail    []byte // the end of the body written so far, to catch a token split across writes
}

// leakIn reports whether b contains a known service token.
func leakIn(s *seenTokens, b []byte) bool {
	return s != nil && ((len(s.curB) > 0 && bytes.Contains(b, s.curB)) ||
		(len(s.prevB) > 0 && bytes.Contains(b, s.prevB)))
}

func leakInString(s *seenTokens, v string) bool {
	return (s.cur != "" && strings.Contains(v, s.cur)) || (s.prev != "" && strings.Contains(v, s.prev))
}

// leakInField reports whether a header field, name or value, contains a
// known service token.
func leakInField(s *seenTokens, k string, vs []string) bool {
	if leakInString(s, k) {
		return true
	}
	for _, v := range vs {
		if leakInString(s, v) {
			return true
		}
	}
	return false
}

func leakInHeader(s *seenTokens, h http.Header) bool {
	if s == nil {
		return false
	}
	for k, vs := range h {
		if leakInField(s, k, vs) {
			return true
		}
	}
	return false
}

func (g *guardWriter) refuse(where string) {
	g.blocked = true
	g.app.log.Error("hybrid: refused to send a service token to a browser", "where", where,
		"method", g.r.Method, "path", g.r.URL.Path, "error", (&IdentityMixError{Client: sideResponse, Found: "service token"}).Error())
}

// WriteHeader implements http.ResponseWriter. The headers are checked at
// every call: a 1xx informational response sends the header map as it is
// then, and the final response sends it again, with what was added since.
func (g *guardWriter) WriteHeader(code int) {
	if g.sent || g.blocked {
		return
	}
	if leakInHeader(g.app.knownTokens(), g.Header()) {
		g.refuse("header")
		g.fail()
		return
	}
	if code >= 100 && code <= 199 && code != http.StatusSwitchingProtocols {
		g.ResponseWriter.WriteHeader(code) // informational: the final header set comes later
		return
	}
	g.sent = true
	g.ResponseWriter.WriteHeader(code)
}

// fail replaces the response (final headers not yet sent) with a plain 500.
func (g *guardWriter) fail() {
	h := g.Header()
	for k := range h {
		delete(h, k)
	}
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	g.sent = true
	g.ResponseWriter.WriteHeader(http.StatusInternalServerError)
	_, _ = g.ResponseWriter.Write([]byte("internal server error\n"))
}

// finish runs when the handler has returned. If it wrote nothing, net/http
// will send the header map as a 200: check it. Otherwise check the
// trailers, which net/http sends from the header map now.
func (g *guardWriter) finish() {
	if g.blocked {
		return
	}
	s := g.app.knownTokens()
	if s == nil {
		return
	}
	h := g.Header()
	if !g.sent {
		if leakInHeader(s, h) {
			g.refuse("header")
			g.fail()
		}
		return
	}
	var declared []string
	for _, v := range h.Values("Trailer") {
		for _, k := range strings.Split(v, ",") {
			if k = strings.TrimSpace(k); k != "" {
				declared = append(declared, k)
			}
		}
	}
	leaked := false
	for k, vs := range h {
		isTrailer := len(k) >= len(http.TrailerPrefix) && strings.EqualFold(k[:len(http.TrailerPrefix)], http.TrailerPrefix)
		for _, d := range declared {
			isTrailer = isTrailer || strings.EqualFold(k, d)
		}
		if isTrailer && leakInField(s, k, vs) {
			delete(h, k)
			leaked = true
		}
	}
	if leaked {
		g.refuse("trailer")
		panic(http.ErrAbortHandler)
	}
}

// Write implements http.ResponseWriter.
func (g *guardWriter) Write(p []byte) (int, error) {
	if g.blocked {
		return 0, &IdentityMixError{Client: sideResponse, Found: "service token"}
	}
	s := g.app.knownTokens()
	if s != nil && (leakIn(s, p) || g.leakAcross(s, p)) {
		g.refuse("body")
		if !g.sent {
			g.fail()
			return 0, &IdentityMixError{Client: sideResponse, Found: "service token"}
		}
		panic(http.ErrAbortHandler)
	}
	if !g.sent {
		g.WriteHeader(http.StatusOK)
		if g.blocked {
			return 0, &IdentityMixError{Client: sideResponse, Found: "service token"}
		}
	}
	if s != nil {
		g.keepTail(s, p)
	}
	return g.ResponseWriter.Write(p)
}

// leakAcross checks for a token that starts in an earlier write and ends
// in p.
func (g *guardWriter) leakAcross(s *seenTokens, p []byte) bool {
	if len(g.tail) == 0 {
		return false
	}
	n := min(len(p), max(len(s.cur), len(s.prev)))
	buf := make([]byte, 0, len(g.tail)+n)
	buf = append(append(buf, g.tail...), p[:n]...)
	return leakIn(s, buf)
}

// keepTail remembers the last bytes written, up to a token's length less one.
func (g *guardWriter) keepTail(s *seenTokens, p []byte) {
	keep := max(len(s.cur), len(s.prev)) - 1
	if keep <= 0 {
		return
	}
	if len(p) >= keep {
		g.tail = append(g.tail[:0], p[len(p)-keep:]...)
		return
	}
	g.tail = append(g.tail, p...)
	if len(g.tail) > keep {
		g.tail = append(g.tail[:0], g.tail[len(g.tail)-keep:]...)
	}
}

// Flush implements http.Flusher when the underlying writer does.
func (g *guardWriter) Flush() {
	if g.blocked {
		return
	}
	if !g.sent {
		g.WriteHeader(http.StatusOK)
		if g.blocked {
			return
		}
	}
	_ = http.NewResponseController(g.ResponseWriter).Flush()
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (g *guardWriter) Unwrap() http.ResponseWriter { return g.ResponseWriter }
