// Package discovery finds an ERP.net instance's identity server and reads its
// OpenID Connect discovery document. Each client owns one Cache: look-ups
// are lazy, cached (refreshed after an hour, the stale copy kept if the
// refresh fails), de-duplicated across goroutines, and retried on transient
// failure. There is no process-wide state.
package discovery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/erpnetgo/auth"
	"github.com/erpnetgo/auth/internal/config"
	"github.com/erpnetgo/auth/internal/hook"
	"github.com/erpnetgo/auth/internal/httpx"
	"github.com/erpnetgo/auth/internal/retry"
	"github.com/erpnetgo/auth/internal/transport"
)

// TTL is how long a discovery document is used before it is fetched again.
const TTL = time.Hour

// Document is the part of an OpenID Provider's metadata the SDK uses.
type Document struct {
	Issuer                        string   `json:"issuer"`
	AuthorizationEndpoint         string   `json:"authorization_endpoint"`
	TokenEndpoint                 string   `json:"token_endpoint"`
	UserinfoEndpoint              string   `json:"userinfo_endpoint"`
	RevocationEndpoint            string   `json:"revocation_endpoint"`
	IntrospectionEndpoint         string   `json:"introspection_endpoint"`
	EndSessionEndpoint            string   `json:"end_session_endpoint"`
	JWKSURI                       string   `json:"jwks_uri"`
	ScopesSupported               []string `json:"scopes_supported"`
	GrantTypesSupported           []string `json:"grant_types_supported"`
	CodeChallengeMethodsSupported []string `json:"code_challenge_methods_supported"`
	TokenEndpointAuthMethods      []string `json:"token_endpoint_auth_methods_supported"`
	IDTokenSigningAlgs            []string `json:"id_token_signing_alg_values_supported"`
	AuthorizationResponseIss      bool     `json:"authorization_response_iss_parameter_supported"`

	// DomainAPI is the Domain API (OData) root, ending in "/": the one
	// ERP.net auto-discovery names, else derived from the authority
	// (<instance root>/api/domain/odata/).
	DomainAPI string `json:"-"`

	fetched time.Time
}

// Cache holds one authority's discovery document for one client.
type Cache struct {
	hc        *http.Client
	authority string
	domainAPI string // configured Domain API root, "" for discovered
	origins   []string
	lock      chan struct{} // a context-aware mutex: one fetch at a time
	doc       atomic.Pointer[Document]
	// Report, if set, sees each fetch as a "discovery" call.
	Report *hook.Reporter
}

// New returns a Cache for authority (checked by config.Authority beforehand)
// that fetches with hc. domainAPI, when not empty, overrides the Domain API
// root discovery would find. It does no I/O.
func New(hc *http.Client, authority, domainAPI string) *Cache {
	c := &Cache{hc: hc, authority: strings.TrimRight(authority, "/"), lock: make(chan struct{}, 1)}
	if domainAPI != "" {
		if !strings.HasSuffix(domainAPI, "/") {
			domainAPI += "/"
		}
		c.domainAPI = domainAPI
	}
	c.origins = []string{originOf(c.authority), originOf(c.domainAPI)}
	return c
}

// DomainAPI returns the Domain API root, ending in "/": the configured
// one, else the one discovery finds.
func (c *Cache) DomainAPI(ctx context.Context) (string, error) {
	if c.domainAPI != "" {
		return c.domainAPI, nil
	}
	d, err := c.Get(ctx)
	if err != nil {
		return "", err
	}
	return d.DomainAPI, nil
}

// Allow reports whether credentials may be sent to u: its origin must be
// the authority's, the Domain API root's, or the identity server's. Only
// for an origin other than the authority's and a configured Domain API's
// does it need the discovery document.
func (c *Cache) Allow(ctx context.Context, u *url.URL) error {
	o := transport.Origin(u)
	if o != "" {
		for _, a := range c.origins {
			if o == a {
				return nil
			}
		}
		if d, err := c.Get(ctx); err == nil && (o == originOf(d.DomainAPI) || o == originOf(d.Issuer)) {
			return nil
		}
	}
	return transport.Refused(u, originOf(c.authority))
}

func originOf(raw string) string {
	if raw == "" {
		return ""
	}
	return transport.OriginOf(raw)
}

// Get returns the discovery document, fetching it on first use and again
// after TTL. The authority is either the identity server's issuer
// (".../id") or an ERP.net instance root, which is resolved through
// ERP.net auto-discovery. A generic OpenID provider whose issuer is the
// given URL works too.
func (c *Cache) Get(ctx context.Context) (*Document, error) {
	if d := c.doc.Load(); d != nil && time.Since(d.fetched) < TTL {
		return d, nil
	}
	select {
	case c.lock <- struct{}{}:
	case <-ctx.Done():
		return nil, &auth.Error{Op: "discovery", Err: ctx.Err()}
	}
	defer func() { <-c.lock }()
	stale := c.doc.Load()
	if stale != nil && time.Since(stale.fetched) < TTL {
		return stale, nil
	}
	fctx, end := c.Report.Call(ctx, "discovery")
	d, err := fetch(fctx, c.hc, c.authority)
	end(err)
	if err == nil && c.domainAPI != "" {
		d.DomainAPI = c.domainAPI
	}
	if err != nil {
		if stale != nil {
			return stale, nil
		}
		return nil, err
	}
	c.doc.Store(d)
	return d, nil
}

func getJSON(ctx context.Context, hc *http.Client, op, u string, into any) (int, error) {
	resp, attempts, err := httpx.Send(ctx, httpx.Request{
		Op: op, Client: hc, Policy: retry.Policy{},
		Build: func(ctx context.Context) (*http.Request, error) {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
			if err == nil {
				req.Header.Set("Accept", "application/json")
			}
			return req, err
		},
	})
	if err != nil {
		return 0, err
	}
	if resp.Status != http.StatusOK {
		kind := auth.ErrMisconfigured
		if retry.Retryable(resp.Status) {
			kind = auth.ErrTemporary
		}
		return resp.Status, &auth.Error{Op: op, StatusCode: resp.Status, Attempts: attempts, Kind: kind,
			Err: fmt.Errorf("GET %s", u)}
	}
	if err := json.Unmarshal(resp.Body, into); err != nil {
		return resp.Status, &auth.Error{Op: op, StatusCode: resp.Status, Kind: auth.ErrMisconfigured,
			Err: fmt.Errorf("GET %s: response is not valid JSON", u)}
	}
	return resp.Status, nil
}

type autoDiscovery struct {
	WebSites []struct {
		Type                 string
		URL                  string `json:"Url"`
		AdditionalProperties map[string]any
	}
}

func fetch(ctx context.Context, hc *http.Client, authority string) (*Document, error) {
	if err := config.Authority("Authority", authority); err != nil {
		return nil, err
	}
	issuer, odata := authority, ""
	if !strings.HasSuffix(authority, "/id") {
		var ad autoDiscovery
		status, err := getJSON(ctx, hc, "ERP.net auto-discovery", authority+"/sys/auto-discovery", &ad)
		if status == http.StatusNotFound {
			// One ERP.net page names /tools/auto-discovery instead.
			status, err = getJSON(ctx, hc, "ERP.net auto-discovery", authority+"/tools/auto-discovery", &ad)
		}
		switch {
		case err == nil:
			for _, s := range ad.WebSites {
				switch s.Type {
				case "ID":
					issuer = strings.TrimRight(s.URL, "/")
				case "DomainAPI":
					if r, ok := s.AdditionalProperties["ODataServiceRoot"].(string); ok {
						odata = r
					}
				}
			}
			if issuer == authority {
				return nil, &auth.Error{Op: "ERP.net auto-discovery", Kind: auth.ErrMisconfigured,
					Err: fmt.Errorf("%s/sys/auto-discovery lists no ID web site", authority)}
			}
			if err := served("ERP.net auto-discovery", "the ID web site's Url", issuer); err != nil {
				return nil, err
			}
		case status == http.StatusNotFound || status == http.StatusOK:
			// Not an ERP.net instance root: treat the authority as the issuer.
		default:
			return nil, err
		}
	}
	var d Document
	if _, err := getJSON(ctx, hc, "discovery", issuer+"/.well-known/openid-configuration", &d); err != nil {
		return nil, err
	}
	if strings.TrimRight(d.Issuer, "/") != issuer {
		return nil, &auth.Error{Op: "discovery", Kind: auth.ErrMisconfigured,
			Err: fmt.Errorf("issuer %q in the discovery document does not match %q", d.Issuer, issuer)}
	}
	if d.TokenEndpoint == "" {
		return nil, &auth.Error{Op: "discovery", Kind: auth.ErrMisconfigured,
			Err: fmt.Errorf("discovery document at %s has no token_endpoint", issuer)}
	}
	if odata == "" {
		odata = DefaultDomainAPI(issuer)
	} else if !strings.HasSuffix(odata, "/") {
		odata += "/"
	}
	if err := served("ERP.net auto-discovery", "the Domain API's ODataServiceRoot", odata); err != nil {
		return nil, err
	}
	d.DomainAPI = odata
	d.fetched = time.Now()
	return &d, nil
}

// DefaultDomainAPI is the Domain API root of an instance whose
// auto-discovery names none: <instance root>/api/domain/odata/, where the
// instance root is authority without a trailing "/id".
func DefaultDomainAPI(authority string) string {
	return strings.TrimSuffix(strings.TrimRight(authority, "/"), "/id") + "/api/domain/odata/"
}

// served checks a URL the server named (what the Config's Authority
// requires of it): a server that names a bad one is misconfigured, which is
// no fault of the caller's Config.
func served(op, what, u string) error {
	if err := config.Authority("URL", u); err != nil {
		var ce *auth.ConfigError
		errors.As(err, &ce)
		return &auth.Error{Op: op, Kind: auth.ErrMisconfigured, Err: fmt.Errorf("%s %s", what, ce.Reason)}
	}
	return nil
}

// Supports reports whether list contains v; an empty list supports nothing.
func Supports(list []string, v string) bool {
	for _, s := range list {
		if s == v {
			return true
		}
	}
	return false
}
