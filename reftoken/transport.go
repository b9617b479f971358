package reftoken

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/erpnetgo/auth/internal/autherr"
	"github.com/erpnetgo/auth/internal/retry"
)

// Header says how a reference token is sent. ERP.net accepts either; a request carries exactly
// one. The zero Header is invalid: a Transport built with it refuses every request.
type Header int

const (
	// Bearer sends "Authorization: Bearer enrt_...".
	Bearer Header = iota + 1
	// APIKey sends "X-Api-Key: enrt_...".
	APIKey
)

// String returns "Bearer" or "X-Api-Key".
func (h Header) String() string {
	switch h {
	case Bearer:
		return "Bearer"
	case APIKey:
		return "X-Api-Key"
	}
	return fmt.Sprintf("reftoken.Header(%d)", int(h))
}

// credentialHeaders are removed from every request before the token is added, compared
// without regard to case (a caller may have set a non-canonical key directly in the map).
// Cookie is included because an ERP.net session cookie is a credential too, and a request must
// authenticate one way only.
var credentialHeaders = [...]string{"Authorization", "X-Api-Key", "Api-Key", "Cookie"}

// DefaultMaxAttempts is how many times a Transport sends a request that keeps getting 429,
// the first attempt included.
const DefaultMaxAttempts = 4

// defaultMaxRetryAfter is the longest Retry-After a Transport waits for; a longer one ends the
// retries at once and the 429 is returned.
const defaultMaxRetryAfter = 30 * time.Second

// Option configures [Token.Transport] and [Token.Client]. Make one with WithInstance,
// WithMaxAttempts or WithBase; the zero Option does nothing.
type Option struct{ apply func(*settings) }

type settings struct {
	instance    string
	hasInstance bool
	base        http.RoundTripper
	maxAttempts int
}

// WithInstance binds the token to the instance root URL rawURL, e.g.
// "https://demodb.my.erp.net": only its scheme, host and port matter. The scheme must be https,
// or http with a loopback host. An invalid URL makes every request fail with an error matching
// [ErrMisconfigured].
func WithInstance(rawURL string) Option {
	return Option{func(s *settings) { s.instance, s.hasInstance = rawURL, true }}
}

// WithMaxAttempts sets how many times a request answered 429 is sent in all (default
// DefaultMaxAttempts); 1 disables the retries.
func WithMaxAttempts(n int) Option {
	return Option{func(s *settings) { s.maxAttempts = n }}
}

// WithBase sets the underlying RoundTripper for [Token.Client] (default
// http.DefaultTransport). For [Token.Transport] a non-nil base argument takes precedence.
func WithBase(rt http.RoundTripper) Option {
	return Option{func(s *settings) { s.base = rt }}
}

// Transport is an http.RoundTripper that authenticates requests to one ERP.net instance with a
// reference token. Build one with [Token.Transport]. It is safe for concurrent use.
type Transport struct {
	tok    Token
	header Header
	base   http.RoundTripper
	policy retry.Policy
	// origin is the bound instance; nil until the first request when no instance was given.
	origin atomic.Pointer[origin]
	cfgErr error
}

// origin is a normalised scheme://host:port.
type origin struct{ scheme, host, port string }

func (o origin) String() string {
	return o.scheme + "://" + net.JoinHostPort(o.host, o.port)
}

// Transport returns an http.RoundTripper that sends t in the header h on requests to t's
// instance, over base (http.DefaultTransport when nil). See the package documentation for the
// rules; in short:
//
//   - credentials already on the request are removed and exactly one is added; the caller's
//     request is never modified, and the response's Request field is the caller's request, so
//     the token does not travel back through it;
//   - the instance is the one given with [WithInstance], otherwise the origin of the first
//     request; a request for another origin is refused with [ErrForeignHost], a redirect to
//     another origin is followed without any credential;
//   - 429 is retried (replayable requests only, honouring Retry-After, bounded by
//     [WithMaxAttempts]); every other response is returned as it is: use [CheckResponse];
//   - a zero Token or an invalid Header makes every request fail with [ErrMisconfigured].
func (t Token) Transport(base http.RoundTripper, h Header, opts ...Option) *Transport {
	var s settings
	for _, o := range opts {
		if o.apply != nil {
			o.apply(&s)
		}
	}
	if base == nil {
		base = s.base
	}
	if base == nil {
		base = http.DefaultTransport
	}
	if s.maxAttempts <= 0 {
		s.maxAttempts = DefaultMaxAttempts
	}
	tr := &Transport{
		tok:    t,
		header: h,
		base:   base,
		policy: retry.Policy{Attempts: s.maxAttempts, MaxRetryAfter: defaultMaxRetryAfter},
	}
	switch {
	case t.IsZero():
		tr.cfgErr = errZeroToken
	case h != Bearer && h != APIKey:
		tr.cfgErr = &autherr.ConfigError{Field: "reftoken.Header", Reason: "must be reftoken.Bearer or reftoken.APIKey"}
	case s.hasInstance:
		o, err := parseInstance(s.instance)
		if err != nil {
			tr.cfgErr = err
		} else {
			tr.origin.Store(&o)
		}
	}
	return tr
}

// Client returns an *http.Client whose requests to instance (the root URL, e.g.
// "https://demodb.my.erp.net") carry t in the header h: [Token.Transport] with
// [WithInstance](instance). Its CheckRedirect also removes credential headers from a redirect
// to another origin and stops after 10 redirects. It has no cookie jar and no timeout: bound
// requests with their context. An invalid instance URL, a zero Token or an invalid Header gives
// an error matching [ErrMisconfigured].
func (t Token) Client(instance string, h Header, opts ...Option) (*http.Client, error) {
	tr := t.Transport(nil, h, append(append([]Option(nil), opts...), WithInstance(instance))...)
	if tr.cfgErr != nil {
		return nil, tr.cfgErr
	}
	o := *tr.origin.Load()
	return &http.Client{
		Transport: tr,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 10 {
				return errors.New("reftoken: stopped after 10 redirects")
			}
			if ro, err := originOf(req.URL); err != nil || ro != o {
				stripCredentials(req.Header)
			}
			return nil
		},
	}, nil
}

// Instance returns the origin the token is bound to (scheme://host:port), or "" when it will be
// bound by the first request.
func (tr *Transport) Instance() string {
	if o := tr.origin.Load(); o != nil {
		return o.String()
	}
	return ""
}

// CloseIdleConnections closes the idle connections of the base RoundTripper when it supports
// that; http.Client.CloseIdleConnections calls it.
func (tr *Transport) CloseIdleConnections() {
	if c, ok := tr.base.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// RoundTrip implements http.RoundTripper.
func (tr *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if err := tr.admit(req); err != nil {
		closeBody(req)
		return nil, err
	}
	o, err := originOf(req.URL)
	if err != nil {
		closeBody(req)
		return nil, err
	}
	bound := tr.origin.Load()
	if bound == nil && req.Response == nil {
		if err := checkScheme(o); err != nil {
			closeBody(req)
			return nil, err
		}
		tr.origin.CompareAndSwap(nil, &o)
		bound = tr.origin.Load()
	}
	if bound == nil || o != *bound || !hostHeaderMatches(req, o) {
		if req.Response == nil || bound == nil {
			closeBody(req)
			return nil, fmt.Errorf("reftoken: %w: %s, token bound to %s; request refused",
				ErrForeignHost, describe(o, req), describeBound(bound))
		}
		// A redirect the server chose: follow it without any credential.
		r2 := req.Clone(req.Context())
		stripCredentials(r2.Header)
		r2.URL.User = nil
		resp, err := tr.base.RoundTrip(r2)
		if resp != nil {
			resp.Request = req
		}
		return resp, err
	}
	return tr.send(req)
}

// admit reports configuration errors and requests that cannot be sent at all.
func (tr *Transport) admit(req *http.Request) error {
	if tr.cfgErr != nil {
		return tr.cfgErr
	}
	if req == nil || req.URL == nil {
		return errors.New("reftoken: nil request or URL")
	}
	return nil
}

// send sends req with the token, retrying 429 when req can be replayed.
func (tr *Transport) send(req *http.Request) (*http.Response, error) {
	replayable := req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
	var last *http.Response
	_, err := retry.Do(req.Context(), tr.policy, func(ctx context.Context, attempt int) (retry.Outcome, error) {
		if last != nil { // a 429 we are retrying past
			drainClose(last.Body)
			last = nil
		}
		r2, err := tr.authorized(req, attempt)
		if err != nil {
			return retry.Outcome{}, err
		}
		resp, err := tr.base.RoundTrip(r2)
		if err != nil {
			return retry.Outcome{}, err
		}
		if resp == nil {
			return retry.Outcome{}, errors.New("reftoken: base RoundTripper returned neither a response nor an error")
		}
		resp.Request = req // the caller's request: the token does not travel back with resp
		last = resp
		if resp.StatusCode == http.StatusTooManyRequests && replayable {
			return retry.Outcome{Retry: true, RetryAfter: retry.ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now())}, errRateLimited
		}
		return retry.Outcome{}, nil
	})
	if errors.Is(err, errRateLimited) || err == nil {
		return last, nil
	}
	return nil, err
}

var errRateLimited = errors.New("reftoken: rate limited")

// authorized returns a copy of req carrying the token and no other credential. Attempts after
// the first get a fresh body from GetBody.
func (tr *Transport) authorized(req *http.Request, attempt int) (*http.Request, error) {
	r2 := req.Clone(req.Context())
	if attempt > 0 && req.Body != nil && req.Body != http.NoBody {
		body, err := req.GetBody()
		if err != nil {
			return nil, fmt.Errorf("reftoken: replaying the request body: %w", err)
		}
		r2.Body = body
	}
	stripCredentials(r2.Header)
	r2.URL.User = nil // net/http would turn user info into a second credential (Basic)
	v := tr.tok.RevealSecret()
	switch tr.header {
	case Bearer:
		r2.Header.Set("Authorization", "Bearer "+v)
	case APIKey:
		r2.Header.Set("X-Api-Key", v)
	}
	return r2, nil
}

// stripCredentials deletes every credential header, whatever the spelling of its key.
func stripCredentials(h http.Header) {
	for k := range h {
		for _, c := range credentialHeaders {
			if strings.EqualFold(k, c) {
				delete(h, k)
				break
			}
		}
	}
}

// parseInstance validates an instance root URL and returns its origin.
func parseInstance(raw string) (origin, error) {
	bad := func(reason string) (origin, error) {
		return origin{}, &autherr.ConfigError{Field: "reftoken instance URL", Reason: reason}
	}
	if strings.TrimSpace(raw) == "" {
		return bad("is empty")
	}
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		return bad("is not a valid URL")
	}
	if u.User != nil {
		return bad("must not contain user information")
	}
	o, err := originOf(u)
	if err != nil {
		return bad("must be an absolute http(s) URL with a host")
	}
	if err := checkScheme(o); err != nil {
		return origin{}, err
	}
	return o, nil
}

// originOf returns the normalised origin of u.
func originOf(u *url.URL) (origin, error) {
	scheme := strings.ToLower(u.Scheme)
	if (scheme != "http" && scheme != "https") || u.Hostname() == "" {
		return origin{}, &autherr.ConfigError{Field: "request URL", Reason: "must be an absolute http(s) URL with a host"}
	}
	port := u.Port()
	if port == "" {
		port = "80"
		if scheme == "https" {
			port = "443"
		}
	}
	return origin{scheme: scheme, host: strings.TrimSuffix(strings.ToLower(u.Hostname()), "."), port: port}, nil
}

// checkScheme refuses plain http except to loopback hosts, where a development server runs.
func checkScheme(o origin) error {
	if o.scheme == "https" || isLoopback(o.host) {
		return nil
	}
	return &autherr.ConfigError{Field: "reftoken instance URL", Reason: "must use https (plain http is allowed only for loopback hosts): " + o.String()}
}

func isLoopback(host string) bool {
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// hostHeaderMatches refuses a request whose Host header names another virtual host than its
// URL: the connection would reach the instance's address, but the token would be presented to
// a different site.
func hostHeaderMatches(req *http.Request, o origin) bool {
	if req.Host == "" {
		return true
	}
	u := &url.URL{Scheme: o.scheme, Host: req.Host}
	ho, err := originOf(u)
	return err == nil && ho == o
}

func describe(o origin, req *http.Request) string {
	if req.Host != "" && !hostHeaderMatches(req, o) {
		return "request for " + o.String() + " with a different Host header"
	}
	return "request for " + o.String()
}

func describeBound(o *origin) string {
	if o == nil {
		return "no instance yet"
	}
	return o.String()
}

func closeBody(req *http.Request) {
	if req != nil && req.Body != nil {
		_ = req.Body.Close()
	}
}

// drainClose reads a little of body so the connection can be reused, then closes it.
func drainClose(body io.ReadCloser) {
	if body == nil {
		return
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(body, 64<<10))
	_ = body.Close()
}
