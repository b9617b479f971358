// Package bearer is the SDK's one http.RoundTripper that adds a cached
// access token to API requests, used by clientcreds and authcode. It sets
// the Authorization header from a value built once per token, allocating
// less than req.Clone, and on a 401 invalidates that token, fetches a fresh
// one and retries once when the body can be replayed. It never retries 403,
// and never sends the token on a redirect to another scheme or host.
package bearer

import (
	"context"
	"io"
	"net/http"
	"strings"

	"github.com/erpnetgo/auth/internal/tokencache"
)

// Transport adds tokens from a tokencache to requests.
type Transport struct {
	// Get returns the current token entry.
	Get func(ctx context.Context) (*tokencache.Entry, error)
	// InvalidateIf drops e if it is still the cached entry.
	InvalidateIf func(e *tokencache.Entry) bool
	// Base sends the requests; nil means http.DefaultTransport.
	Base http.RoundTripper
}

func (t *Transport) base() http.RoundTripper {
	if t.Base == nil {
		return http.DefaultTransport
	}
	return t.Base
}

// RoundTrip implements http.RoundTripper. It does not modify req.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if !sameOriginAsFirst(req) {
		// A redirect the http.Client follows to another host: the token
		// stays home. Any Authorization the client copied is dropped too.
		r2 := withAuth(req, nil, nil)
		delete(r2.Header, "Authorization")
		return t.base().RoundTrip(r2)
	}
	e, err := t.Get(req.Context())
	if err != nil {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, err
	}
	resp, err := t.base().RoundTrip(withAuth(req, e.Header, req.Body))
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		return resp, err
	}
	// 401: the token was revoked or expired early. Retry once with a fresh
	// token if the request can be sent again.
	var body io.ReadCloser
	if req.Body != nil && req.Body != http.NoBody {
		if req.GetBody == nil {
			return resp, nil
		}
		if body, err = req.GetBody(); err != nil {
			return resp, nil
		}
	}
	t.InvalidateIf(e)
	e2, err := t.Get(req.Context())
	if err != nil || e2 == e {
		if body != nil {
			body.Close()
		}
		return resp, nil
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	resp.Body.Close()
	return t.base().RoundTrip(withAuth(req, e2.Header, body))
}

// sameOriginAsFirst reports whether req goes to the scheme and host of the
// first request of its redirect chain (http.Client sets req.Response on
// every hop after the first).
func sameOriginAsFirst(req *http.Request) bool {
	first := req
	for first.Response != nil && first.Response.Request != nil {
		first = first.Response.Request
	}
	return first == req || (strings.EqualFold(first.URL.Scheme, req.URL.Scheme) && strings.EqualFold(first.URL.Host, req.URL.Host))
}

// withAuth returns a shallow copy of req with its own header map holding
// auth. The header values themselves are shared, read-only.
func withAuth(req *http.Request, auth []string, body io.ReadCloser) *http.Request {
	r2 := new(http.Request)
	*r2 = *req
	h := make(http.Header, len(req.Header)+1)
	for k, v := range req.Header {
		h[k] = v
	}
	if auth != nil {
		h["Authorization"] = auth
	}
	r2.Header = h
	if body != nil {
		r2.Body = body
	}
	return r2
}
