package transport

import (
	"bytes"
	"context"
	"errors"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/erpnetgo/auth"
	"github.com/erpnetgo/auth/internal/retry"
)

// licenseCode is what ERP.net answers when opening an API session would
// exceed the instance's license count. Its status and body shape are not
// documented, so it is looked for anywhere in the body of any 4xx or 5xx
// answer that is JSON or text.
const licenseCode = "maximumlicensecountexceeded"

// maxLicenseScan is how much of an error body is searched for licenseCode.
const maxLicenseScan = 64 << 10

// licenseRefused reports whether resp refuses its request because all
// licenses of the instance are in use. It reads at most maxLicenseScan
// bytes of an error body and puts them back: the caller reads resp's body
// as if it had not been touched.
func licenseRefused(resp *http.Response) bool {
	if resp.StatusCode < 400 || resp.Body == nil || resp.Body == http.NoBody || !textual(resp.Header) {
		return false
	}
	head, _ := io.ReadAll(io.LimitReader(resp.Body, maxLicenseScan))
	resp.Body = &replayedBody{Reader: io.MultiReader(bytes.NewReader(head), resp.Body), Closer: resp.Body}
	return bytes.Contains(bytes.ToLower(head), []byte(licenseCode))
}

// textual reports whether a body with header h can be searched as text:
// JSON, text, or no declared type, and no content coding left on it.
func textual(h http.Header) bool {
	if ce := h.Get("Content-Encoding"); ce != "" && !strings.EqualFold(ce, "identity") {
		return false
	}
	ct := h.Get("Content-Type")
	if ct == "" {
		return true
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return false
	}
	return strings.HasPrefix(mt, "text/") || mt == "application/json" || strings.HasSuffix(mt, "+json") ||
		mt == "application/problem+json" || mt == "application/xml" || strings.HasSuffix(mt, "+xml")
}

type replayedBody struct {
	io.Reader
	io.Closer
}

// errLicense marks a license refusal inside the retry loop.
var errLicense = errors.New("all ERP.net licenses of this instance are in use (MaximumLicenseCountExceeded)")

// afterLicenseRefusal handles resp, an answer that all licenses are in
// use: it reports api.license_exhausted, waits once (Retry-After when the
// server sent it, else the retry policy's first backoff, within the
// request's context) and sends the request once more through resend when
// its body can be replayed; the license refusal opened no session and did
// nothing, whatever the method. A second refusal, or none allowed, gives
// an *auth.Error of kind auth.ErrLicenseExhausted and closes the body;
// any other answer is returned as it is.
func (t *Transport) afterLicenseRefusal(req *http.Request, resp *http.Response, resend func(body io.ReadCloser) (*http.Response, error)) (*http.Response, error) {
	p := t.Retry
	if p.Attempts <= 0 || p.Attempts > 2 {
		p.Attempts = 2 // one delayed retry at most (Attempts 1: none)
	}
	last := resp
	var retryAfter time.Duration
	attempts, err := retry.Do(req.Context(), p, func(ctx context.Context, attempt int) (retry.Outcome, error) {
		if attempt > 0 {
			body, ok := replayBody(req)
			if !ok {
				return retry.Outcome{}, errLicense
			}
			drainClose(last.Body)
			r, err := resend(body)
			if err != nil {
				last = nil
				return retry.Outcome{}, err
			}
			if last = r; !licenseRefused(r) {
				return retry.Outcome{}, nil
			}
		}
		retryAfter = retry.ParseRetryAfter(last.Header.Get("Retry-After"), time.Now())
		t.Report.Emit(ctx, auth.Event{Name: "api.license_exhausted", StatusCode: last.StatusCode, RetryAfter: retryAfter, Attempts: attempt + 1})
		return retry.Outcome{Retry: canReplay(req), RetryAfter: retryAfter}, errLicense
	})
	switch {
	case err == nil:
		return last, nil
	case !errors.Is(err, errLicense):
		return nil, err
	}
	drainClose(last.Body)
	return nil, &auth.Error{Op: "API request", StatusCode: last.StatusCode, RetryAfter: retryAfter, Attempts: attempts,
		Kind: auth.ErrLicenseExhausted, Err: errLicense}
}

// canReplay reports whether req's body, if any, can be sent again.
func canReplay(req *http.Request) bool {
	return req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
}
