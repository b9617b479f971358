// Package discovery finds an ERP.net instance's identity server and reads its
// OpenID Connect discovery document. Look-ups are lazy, cached per authority
// for the life of the process (refreshed after an hour, the stale copy kept
// if the refresh fails), de-duplicated across goroutines, and retried on
// transient failure.
package discovery

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/erpnetgo/auth/internal/autherr"
	"github.com/erpnetgo/auth/internal/httpx"
	"github.com/erpnetgo/auth/internal/retry"
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

	// ODataServiceRoot is the Domain API root from ERP.net auto-discovery,
	// when the authority was an instance root that publishes it.
	ODataServiceRoot string `json:"-"`

	fetched time.Time
}

// CheckAuthority validates an authority URL without any network I/O: it
// must be an absolute https URL (http only on a loopback host) with no query
// or fragment. field names the config field in the error.
func CheckAuthority(field, authority string) error {
	if authority == "" {
		return &autherr.ConfigError{Field: field, Reason: "is required (the instance root, e.g. https://demodb.my.erp.net, or its /id URL)"}
	}
	u, err := url.Parse(authority)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return &autherr.ConfigError{Field: field, Reason: "must be an absolute http(s) URL"}
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return &autherr.ConfigError{Field: field, Reason: "must not contain a query, fragment or user info"}
	}
	if u.Scheme == "http" && !IsLoopback(u.Hostname()) {
		return &autherr.ConfigError{Field: field, Reason: "must use https (plain http is allowed only for 127.0.0.1, ::1 and localhost)"}
	}
	return nil
}

// IsLoopback reports whether host names this machine.
func IsLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

type entry struct {
	lock chan struct{} // a context-aware mutex: one fetch at a time
	doc  atomic.Pointer[Document]
}

var cache sync.Map // normalised authority -> *entry

// Get returns the discovery document for authority, fetching it on first use.
// authority is either the identity server's issuer (".../id") or an ERP.net
// instance root, which is resolved through /sys/auto-discovery. A generic
// OpenID provider whose issuer is the given URL works too.
func Get(ctx context.Context, hc *http.Client, authority string) (*Document, error) {
	key := strings.TrimRight(authority, "/")
	v, ok := cache.Load(key)
	if !ok {
		v, _ = cache.LoadOrStore(key, &entry{lock: make(chan struct{}, 1)})
	}
	e := v.(*entry)
	if d := e.doc.Load(); d != nil && time.Since(d.fetched) < TTL {
		return d, nil
	}
	select {
	case e.lock <- struct{}{}:
	case <-ctx.Done():
		return nil, &autherr.Error{Op: "discovery", Err: ctx.Err()}
	}
	defer func() { <-e.lock }()
	stale := e.doc.Load()
	if stale != nil && time.Since(stale.fetched) < TTL {
		return stale, nil
	}
	d, err := fetch(ctx, hc, key)
	if err != nil {
		if stale != nil {
			return stale, nil
		}
		return nil, err
	}
	e.doc.Store(d)
	return d, nil
}

// Forget drops the cached document for authority (tests, key rotation).
func Forget(authority string) { cache.Delete(strings.TrimRight(authority, "/")) }

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
		kind := autherr.ErrMisconfigured
		if retry.Retryable(resp.Status) {
			kind = autherr.ErrTemporary
		}
		return resp.Status, &autherr.Error{Op: op, StatusCode: resp.Status, Attempts: attempts, Kind: kind,
			Err: fmt.Errorf("GET %s", u)}
	}
	if err := json.Unmarshal(resp.Body, into); err != nil {
		return resp.Status, &autherr.Error{Op: op, StatusCode: resp.Status, Kind: autherr.ErrMisconfigured,
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
	if err := CheckAuthority("Authority", authority); err != nil {
		return nil, err
	}
	issuer, odata := authority, ""
	if !strings.HasSuffix(authority, "/id") {
		var ad autoDiscovery
		status, err := getJSON(ctx, hc, "ERP.net auto-discovery", authority+"/sys/auto-discovery", &ad)
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
				return nil, &autherr.Error{Op: "ERP.net auto-discovery", Kind: autherr.ErrMisconfigured,
					Err: fmt.Errorf("%s/sys/auto-discovery lists no ID web site", authority)}
			}
			if err := CheckAuthority("auto-discovered ID URL", issuer); err != nil {
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
		return nil, &autherr.Error{Op: "discovery", Kind: autherr.ErrMisconfigured,
			Err: fmt.Errorf("issuer %q in the discovery document does not match %q", d.Issuer, issuer)}
	}
	if d.TokenEndpoint == "" {
		return nil, &autherr.Error{Op: "discovery", Kind: autherr.ErrMisconfigured,
			Err: fmt.Errorf("discovery document at %s has no token_endpoint", issuer)}
	}
	d.ODataServiceRoot = odata
	d.fetched = time.Now()
	return &d, nil
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
