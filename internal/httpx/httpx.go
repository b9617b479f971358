// Package httpx sends the SDK's requests to the identity server: one retry
// loop (internal/retry) for transient failures, a size limit on every
// response body, and errors that name the operation but never a secret.
package httpx

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/erpnetgo/auth"
	"github.com/erpnetgo/auth/internal/retry"
)

// DefaultTimeout bounds one request when the caller gives no HTTP client.
const DefaultTimeout = 30 * time.Second

// DefaultLimit is the largest response body read from the identity server.
const DefaultLimit = 1 << 20

// DefaultClient is used when a Config leaves HTTPClient nil.
var DefaultClient = &http.Client{Timeout: DefaultTimeout}

// Client returns hc, or DefaultClient when hc is nil.
func Client(hc *http.Client) *http.Client {
	if hc == nil {
		return DefaultClient
	}
	return hc
}

// Response is a fully read HTTP response.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// Request describes one logical call.
type Request struct {
	Op     string       // for errors, e.g. "discovery"
	Client *http.Client // nil: DefaultClient
	Policy retry.Policy
	// Hold, if set, makes Send fail fast while the server's last
	// Retry-After has not passed, and is set from every final retryable
	// answer that carries one.
	Hold  *retry.Hold
	Limit int64 // <=0: DefaultLimit
	// Build makes a fresh *http.Request for each attempt.
	Build func(ctx context.Context) (*http.Request, error)
	// Check, if set, reads each final answer (one whose status is not
	// retried) and returns why it cannot be used, or nil. An unusable
	// answer (Check refused it, or its body is over Limit) fails the
	// attempt with ErrTemporary and is retried like a 5xx, unless OneTime
	// is set.
	Check func(*Response) error
	// OneTime, when not empty, says why the request must not be sent twice
	// (it redeems an authorization code or a refresh token): an unusable
	// answer then ends the call at once, with this reason in the error.
	OneTime string
}

// ErrTooLarge is wrapped when a response body exceeds the limit.
var ErrTooLarge = errors.New("response body too large")

// Send performs r, retrying network errors, 5xx and 429 with backoff and
// Retry-After. It returns the last response when the status is final (any
// status that is not retryable) or retries are exhausted on a retryable
// status; the caller interprets it. It returns an *auth.Error when no
// usable response arrived.
func Send(ctx context.Context, r Request) (*Response, int, error) {
	hc := Client(r.Client)
	limit := r.Limit
	if limit <= 0 {
		limit = DefaultLimit
	}
	if wait := r.Hold.Remaining(); wait > 0 {
		return nil, 0, &auth.Error{Op: r.Op, Kind: auth.ErrTemporary, RetryAfter: wait,
			Err: errors.New("not sent: the server asked to wait (Retry-After)")}
	}
	var resp *Response
	attempts, err := retry.Do(ctx, r.Policy, func(ctx context.Context, _ int) (retry.Outcome, error) {
		resp = nil
		req, err := r.Build(ctx)
		if err != nil {
			return retry.Outcome{}, &auth.Error{Op: r.Op, Err: err, Kind: auth.ErrMisconfigured}
		}
		hr, err := hc.Do(req)
		if err != nil {
			if ctx.Err() != nil {
				return retry.Outcome{}, &auth.Error{Op: r.Op, Err: ctx.Err()}
			}
			if PlainHTTP(err) {
				// Not a failure that passes: the URL is wrong.
				return retry.Outcome{}, &auth.Error{Op: r.Op, Kind: auth.ErrMisconfigured,
					Err: fmt.Errorf("the server at %s speaks plain http, not https: check the scheme and port of the URL", req.URL.Host)}
			}
			return retry.Outcome{Retry: true}, &auth.Error{Op: r.Op, Err: err, Kind: auth.ErrTemporary}
		}
		body, rerr := io.ReadAll(io.LimitReader(hr.Body, limit+1))
		hr.Body.Close()
		if rerr != nil {
			return retry.Outcome{Retry: true}, &auth.Error{Op: r.Op, StatusCode: hr.StatusCode, Err: rerr, Kind: auth.ErrTemporary}
		}
		if int64(len(body)) > limit {
			return r.unusable(hr.StatusCode, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, limit))
		}
		resp = &Response{Status: hr.StatusCode, Header: hr.Header, Body: body}
		if retry.Retryable(hr.StatusCode) {
			return retry.Outcome{Retry: true, RetryAfter: retry.ParseRetryAfter(hr.Header.Get("Retry-After"), time.Now())},
				errRetryableStatus
		}
		if r.Check != nil {
			if err := r.Check(resp); err != nil {
				resp = nil
				return r.unusable(hr.StatusCode, err)
			}
		}
		return retry.Outcome{}, nil
	})
	if errors.Is(err, errRetryableStatus) {
		r.Hold.Set(retry.ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now()))
		return resp, attempts, nil
	}
	if err != nil {
		var ae *auth.Error
		if errors.As(err, &ae) {
			ae.Attempts = attempts
		}
		return nil, attempts, err
	}
	return resp, attempts, nil
}

var errRetryableStatus = errors.New("retryable status")

// PlainHTTP reports whether err is the failure of an https request to a
// server that answered in plain http.
func PlainHTTP(err error) bool {
	var rh tls.RecordHeaderError
	return errors.Is(err, http.ErrSchemeMismatch) || (errors.As(err, &rh) && string(rh.RecordHeader[:]) == "HTTP/")
}

// unusable is the outcome of an attempt whose answer cannot be used: a
// temporary failure, retried unless the request is one-time.
func (r *Request) unusable(status int, err error) (retry.Outcome, error) {
	if r.OneTime != "" {
		err = fmt.Errorf("%w; not retried: %s", err, r.OneTime)
	}
	return retry.Outcome{Retry: r.OneTime == ""}, &auth.Error{Op: r.Op, StatusCode: status, Kind: auth.ErrTemporary, Err: err}
}
