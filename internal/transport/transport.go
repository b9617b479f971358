// Package transport is the SDK's one http.RoundTripper that attaches
// credentials to API requests, for every flow: service tokens
// (clientcreds), user tokens (authcode, hybrid) and reference tokens
// (reftoken). Its rules:
//
//   - Credentials go only to the instance: a request for any other origin
//     is refused before anything is sent, and a redirect the server chooses
//     to another origin is followed without credentials. A Host header that
//     names another site than the URL counts as another origin.
//   - Exactly one credential is sent: Authorization, X-Api-Key, Api-Key and
//     Cookie headers the caller set, and user information in the URL, are
//     removed. A response points at the caller's request, never at the copy
//     that carried the credential.
//   - On a 401 a renewable credential (an access token) is dropped, a fresh
//     one fetched, and the request sent once more when its body can be
//     replayed and its context is not marked Once. A 403 is never retried.
//   - A 429 or 503 is retried with backoff, jitter and Retry-After for
//     idempotent requests (GET, HEAD, OPTIONS, TRACE, PUT, DELETE, or any
//     request with an Idempotency-Key header) whose body can be replayed,
//     bounded by the request's context; other requests get the answer.
//   - An answer that all licenses are in use (MaximumLicenseCountExceeded
//     in a 4xx or 5xx body) is retried once after a delay when the body can
//     be replayed, then returned as an error of kind
//     auth.ErrLicenseExhausted (license.go).
//   - api.session_opened is reported once per ERP.net session, on the
//     first 2xx answer to a credential: a refused request opens none.
//
// The header value is built once per token and the request shallow-copied,
// so an authorized request allocates little more than an unauthorized one.
package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/erpnetgo/auth"
	"github.com/erpnetgo/auth/internal/credential"
	"github.com/erpnetgo/auth/internal/hook"
	"github.com/erpnetgo/auth/internal/httpx"
	"github.com/erpnetgo/auth/internal/retry"
)

// Transport adds credentials to requests for the instance.
type Transport struct {
	// Get returns the current credential, its header value built once.
	Get func(ctx context.Context) (*credential.Credential, error)
	// InvalidateIf drops cr if it is still the current credential, so that
	// the next Get fetches a fresh one. Nil: the credential cannot be
	// renewed (a reference token) and a 401 is returned as it is.
	InvalidateIf func(cr *credential.Credential) bool
	// Header carries the credential; "" means Authorization.
	Header string
	// Allow reports whether credentials may go to the origin of u (nil
	// error), or why not. It is called for every request and redirect hop.
	// Nil allows the origin of the first request of a redirect chain only.
	Allow func(ctx context.Context, u *url.URL) error
	// Base sends the requests; nil means http.DefaultTransport.
	Base http.RoundTripper
	// Retry tunes the 429/503 retries.
	Retry retry.Policy
	// Report receives api.retry_401, api.backoff, api.session_opened,
	// api.license_exhausted and reftoken.rejected.
	Report *hook.Reporter
}

func (t *Transport) base() http.RoundTripper {
	if t.Base == nil {
		return http.DefaultTransport
	}
	return t.Base
}

// RoundTrip implements http.RoundTripper. It does not modify req.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if err := t.allowed(req); err != nil {
		if req.Response == nil {
			closeBody(req)
			return nil, err
		}
		// A redirect the server chose, to another origin: follow it
		// without any credential.
		r2 := withCredential(req, "", nil, req.Body)
		resp, err := t.base().RoundTrip(r2)
		if resp != nil {
			resp.Request = req
		}
		return resp, err
	}
	cr, err := t.Get(req.Context())
	if err != nil {
		closeBody(req)
		return nil, err
	}
	resp, used, err := t.roundTrip(req, cr)
	if err == nil && licenseRefused(resp) {
		resp, err = t.afterLicenseRefusal(req, resp, func(body io.ReadCloser) (*http.Response, error) { return t.send(req, used, body) })
	}
	if resp != nil {
		resp.Request = req // the credential does not travel back with resp
		if t.Report.Enabled() {
			t.report(req, resp, used)
		}
	}
	return resp, err
}

// report sends the events of a response to Report; cr is the credential
// the response answered.
func (t *Transport) report(req *http.Request, resp *http.Response, cr *credential.Credential) {
	if resp.StatusCode == http.StatusUnauthorized {
		if t.InvalidateIf == nil {
			t.Report.Emit(req.Context(), auth.Event{Name: "reftoken.rejected", StatusCode: resp.StatusCode})
		}
		return
	}
	// Only an answer the API served opens an ERP.net session: a refusal
	// (403 MaximumLicenseCountExceeded, any 4xx or 5xx) leaves the token's
	// first use pending.
	if resp.StatusCode >= 200 && resp.StatusCode < 300 && cr.Opened() {
		t.Report.Emit(req.Context(), auth.Event{Name: "api.session_opened"})
	}
}

func (t *Transport) roundTrip(req *http.Request, cr *credential.Credential) (*http.Response, *credential.Credential, error) {
	resp, err := t.send(req, cr, req.Body)
	if err != nil || resp.StatusCode != http.StatusUnauthorized || t.InvalidateIf == nil || licenseRefused(resp) {
		// A license refusal, whatever its status, says nothing of the
		// token: dropping it would only open another API session.
		return resp, cr, err
	}
	// 401: the token was revoked or expired early. Drop it, so the next
	// request gets a fresh one even when this one cannot be sent again,
	// and retry once with a fresh token if the request can be.
	t.InvalidateIf(cr)
	if sendOnce(req) {
		return resp, cr, nil
	}
	body, ok := replayBody(req)
	if !ok {
		return resp, cr, nil
	}
	t.Report.Emit(req.Context(), auth.Event{Name: "api.retry_401", StatusCode: resp.StatusCode})
	cr2, err := t.Get(req.Context())
	if err != nil {
		// No fresh token: the caller learns why (the user must sign in
		// again, the identity server is down), not just that the API
		// refused the old one.
		if body != nil {
			body.Close()
		}
		drainClose(resp.Body)
		return nil, cr, err
	}
	if cr2 == cr {
		if body != nil {
			body.Close()
		}
		return resp, cr, nil
	}
	drainClose(resp.Body)
	resp, err = t.send(req, cr2, body)
	return resp, cr2, err
}

// send sends req with credential cr and body, retrying 429 and 503 for
// idempotent, replayable requests.
func (t *Transport) send(req *http.Request, cr *credential.Credential, body io.ReadCloser) (*http.Response, error) {
	if !retriable(req) || sendOnce(req) {
		resp, err := t.base().RoundTrip(withCredential(req, t.Header, cr.Value, body))
		return resp, classify(req, err)
	}
	var last *http.Response
	_, err := retry.Do(req.Context(), t.Retry, func(ctx context.Context, attempt int) (retry.Outcome, error) {
		if attempt > 0 {
			drainClose(last.Body)
			last = nil
			b, ok := replayBody(req)
			if !ok {
				return retry.Outcome{}, &auth.Error{Op: "API request", Err: errors.New("the request body cannot be replayed")}
			}
			body = b
		}
		resp, err := t.base().RoundTrip(withCredential(req, t.Header, cr.Value, body))
		if err != nil {
			return retry.Outcome{}, classify(req, err)
		}
		last = resp
		if (resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable) && !licenseRefused(resp) {
			ra := retry.ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
			t.Report.Emit(ctx, auth.Event{Name: "api.backoff", StatusCode: resp.StatusCode, RetryAfter: ra, Attempts: attempt + 1})
			return retry.Outcome{Retry: true, RetryAfter: ra}, errBusy
		}
		return retry.Outcome{}, nil
	})
	if err == nil || errors.Is(err, errBusy) {
		return last, nil
	}
	return nil, err
}

var errBusy = errors.New("busy")

// classify names the one sending failure that is the app's to fix: an
// https URL whose server speaks plain http (a DomainAPI with the wrong
// scheme or port) fails with auth.ErrMisconfigured, as the identity
// server's requests do. Other errors pass unchanged.
func classify(req *http.Request, err error) error {
	if err == nil || !httpx.PlainHTTP(err) {
		return err
	}
	return &auth.Error{Op: "API request", Kind: auth.ErrMisconfigured,
		Err: fmt.Errorf("the server at %s speaks plain http, not https: check the scheme and port of the URL (Config.DomainAPI)", req.URL.Host)}
}

type onceKey struct{}

// Once returns a context under which the Transport sends a request at most
// once: no replay after a 401 (the credential is still dropped, so the next
// request gets a fresh one) and no retry after a 429 or 503, whatever the
// method and body. Package bff forwards the browser's non-idempotent
// requests this way.
func Once(ctx context.Context) context.Context { return context.WithValue(ctx, onceKey{}, true) }

func sendOnce(req *http.Request) bool {
	once, _ := req.Context().Value(onceKey{}).(bool)
	return once
}

// retriable reports whether req may be sent again after a 429 or 503: an
// idempotent method (or an Idempotency-Key, as net/http treats it) and a
// body that can be replayed.
func retriable(req *http.Request) bool {
	switch req.Method {
	case "", http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
	default:
		if req.Header["Idempotency-Key"] == nil && req.Header["X-Idempotency-Key"] == nil {
			return false
		}
	}
	return req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
}

// replayBody returns a fresh copy of req's body; ok is false when it has
// one that cannot be replayed.
func replayBody(req *http.Request) (io.ReadCloser, bool) {
	if req.Body == nil || req.Body == http.NoBody {
		return req.Body, true
	}
	if req.GetBody == nil {
		return nil, false
	}
	b, err := req.GetBody()
	return b, err == nil
}

// allowed checks the request's origin and Host header against Allow.
func (t *Transport) allowed(req *http.Request) error {
	if req.URL == nil {
		return &auth.Error{Op: "API request", Kind: auth.ErrMisconfigured, Err: errors.New("request has no URL")}
	}
	allow := t.Allow
	if allow == nil {
		first := req
		for first.Response != nil && first.Response.Request != nil {
			first = first.Response.Request
		}
		home := Origin(first.URL)
		allow = func(_ context.Context, u *url.URL) error {
			if Origin(u) != home {
				return Refused(u, home)
			}
			return nil
		}
	}
	if err := allow(req.Context(), req.URL); err != nil {
		return err
	}
	if req.Host != "" && !strings.EqualFold(req.Host, req.URL.Host) {
		return allow(req.Context(), &url.URL{Scheme: req.URL.Scheme, Host: req.Host})
	}
	return nil
}

// withCredential returns a shallow copy of req with its own header map
// holding the credential (none when header is ""), no other credential and
// no user information in the URL. Header values are shared, read-only.
func withCredential(req *http.Request, header string, value []string, body io.ReadCloser) *http.Request {
	r2 := new(http.Request)
	*r2 = *req
	h := make(http.Header, len(req.Header)+1)
	for k, v := range req.Header {
		if !credential.IsHeader(k) {
			h[k] = v
		}
	}
	if value != nil {
		if header == "" {
			header = "Authorization"
		}
		h[header] = value
	}
	r2.Header = h
	r2.Body = body
	if req.URL.User != nil {
		u := *req.URL
		u.User = nil
		r2.URL = &u
	}
	return r2
}

// Origin returns u's scheme://host:port, lower case, with the default port
// made explicit, or "" when u is not an absolute http(s) URL.
func Origin(u *url.URL) string {
	scheme := strings.ToLower(u.Scheme)
	host := strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
	if (scheme != "http" && scheme != "https") || host == "" {
		return ""
	}
	port := u.Port()
	if port == "" {
		port = "80"
		if scheme == "https" {
			port = "443"
		}
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	return scheme + "://" + host + ":" + port
}

// OriginOf is Origin of a URL string; "" when it does not parse.
func OriginOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return Origin(u)
}

// Refused is the error for a request to an origin credentials may not go
// to. It names both origins, never a credential.
func Refused(u *url.URL, instance string) error {
	o := Origin(u)
	if o == "" {
		o = "a URL that is not absolute http(s)"
	}
	return &auth.Error{Op: "API request", Kind: auth.ErrMisconfigured,
		Err: fmt.Errorf("refusing to send credentials to %s: not the ERP.net instance %s (set Config.DomainAPI for an API on another host)", o, instance)}
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		_ = req.Body.Close()
	}
}

// drainClose reads a little of body so the connection can be reused, then
// closes it.
func drainClose(body io.ReadCloser) {
	if body == nil {
		return
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(body, 64<<10))
	_ = body.Close()
}
