package reftoken

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/erpnetgo/auth"
	"github.com/erpnetgo/auth/internal/config"
	"github.com/erpnetgo/auth/internal/credential"
	"github.com/erpnetgo/auth/internal/discovery"
	"github.com/erpnetgo/auth/internal/hook"
	"github.com/erpnetgo/auth/internal/transport"
)

// Header says how a reference token is sent. ERP.net accepts either; a request carries exactly
// one. The zero Header is [Bearer].
type Header int

const (
	// Bearer sends "Authorization: Bearer enrt_..."; it is the zero Header, the default.
	Bearer Header = iota
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

// Config says where and how [Token.Client] sends a token.
type Config struct {
	// Authority is the ERP.net instance root, e.g. "https://demodb.my.erp.net", or its
	// identity server URL (the root followed by "/id"). It must use https (plain http only on
	// a loopback host). Required.
	Authority string
	// DomainAPI is the Domain API (OData) root when it is not <Authority root>/api/domain/odata/.
	// The token goes to its origin as well as to the Authority's.
	DomainAPI string
	// Header is how the token is sent; the zero value is [Bearer].
	Header Header
	// Transport sends the requests; nil means http.DefaultTransport.
	Transport http.RoundTripper
	// Retry tunes the retries of 429 and 503 answers (idempotent requests only).
	Retry auth.Retry
	// Hooks, if set, receive reftoken.rejected, api.backoff and
	// api.session_opened (the first request the API accepted); see [auth.Hooks].
	Hooks *auth.Hooks
}

// Client returns an *http.Client that sends t with every request to the origins (scheme, host
// and port) of cfg.Authority and cfg.DomainAPI, using the transport every flow of the SDK
// shares:
//
//   - Authorization, X-Api-Key and Api-Key headers already on the request, and user
//     information in its URL, are removed, and exactly one credential is added; the caller's
//     request is never modified.
//   - A request for any other origin, or with a Host header naming another site, is refused
//     before anything is sent with an [*auth.Error] matching [auth.ErrMisconfigured]; a redirect
//     the server chooses to another origin is followed without the token.
//   - 401 and 403 are returned as they are (a reference token cannot be renewed). 429 and 503
//     are retried with backoff and Retry-After (see cfg.Retry) for idempotent requests (GET,
//     HEAD, OPTIONS, TRACE, PUT, DELETE, or any request with an Idempotency-Key header) whose
//     body can be sent again, within the request's context. Turn answers into errors with
//     [CheckResponse].
//
// The client has no cookie jar and no timeout: bound requests with their context. A zero Token
// or an invalid Config gives an [*auth.ConfigError] (matching [auth.ErrMisconfigured]) naming the
// field at fault.
func (t Token) Client(cfg Config) (*http.Client, error) {
	if t.IsZero() {
		return nil, errZeroToken
	}
	if err := config.First(config.Authority("Authority", cfg.Authority), config.DomainAPI("DomainAPI", cfg.DomainAPI)); err != nil {
		return nil, err
	}
	root := strings.TrimSuffix(strings.TrimRight(cfg.Authority, "/"), "/id")
	domainAPI := cfg.DomainAPI
	if domainAPI == "" {
		domainAPI = discovery.DefaultDomainAPI(root)
	}
	var cr *credential.Credential
	var header string
	switch cfg.Header {
	case Bearer:
		cr = credential.New("Bearer "+t.RevealSecret(), nil)
	case APIKey:
		cr = credential.New(t.RevealSecret(), nil)
		header = "X-Api-Key"
	default:
		return nil, config.Err("Header", "must be reftoken.Bearer or reftoken.APIKey")
	}
	instance, api := transport.OriginOf(root), transport.OriginOf(domainAPI)
	return &http.Client{Transport: &transport.Transport{
		Get:    func(context.Context) (*credential.Credential, error) { return cr, nil },
		Header: header,
		Report: &hook.Reporter{Hooks: cfg.Hooks, Flow: "reftoken", Authority: strings.TrimRight(cfg.Authority, "/")},
		Allow: func(_ context.Context, u *url.URL) error {
			if o := transport.Origin(u); o != "" && (o == instance || o == api) {
				return nil
			}
			return transport.Refused(u, instance)
		},
		Base:  cfg.Transport,
		Retry: cfg.Retry,
	}}, nil
}
