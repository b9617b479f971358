package discovery

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/erpnetgo/auth/internal/autherr"
)

type idp struct {
	srv              *httptest.Server
	disco, auto      atomic.Int32
	failDisco        atomic.Int32 // this many 503s first
	issuerOverride   string
	noAutoDiscovery  bool
	discoveryLatency time.Duration
}

func newIDP(t *testing.T) *idp {
	p := &idp{}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		base := p.srv.URL
		switch r.URL.Path {
		case "/sys/auto-discovery":
			p.auto.Add(1)
			if p.noAutoDiscovery {
				http.NotFound(w, r)
				return
			}
			fmt.Fprintf(w, `{"WebSites":[{"Type":"ID","Url":"%s/id/"},{"Type":"DomainAPI","Url":"%s/api/domain","AdditionalProperties":{"ODataServiceRoot":"%s/api/domain/odata/"}}]}`, base, base, base)
		case "/id/.well-known/openid-configuration", "/.well-known/openid-configuration":
			p.disco.Add(1)
			time.Sleep(p.discoveryLatency)
			if p.failDisco.Add(-1) >= 0 {
				w.WriteHeader(503)
				return
			}
			iss := base + "/id"
			if r.URL.Path == "/.well-known/openid-configuration" {
				iss = base
			}
			if p.issuerOverride != "" {
				iss = p.issuerOverride
			}
			fmt.Fprintf(w, `{"issuer":%q,"token_endpoint":"%s/token","token_endpoint_auth_methods_supported":["client_secret_post"]}`, iss, iss)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(p.srv.Close)
	return p
}

func TestInstanceRootResolvesThroughAutoDiscovery(t *testing.T) {
	p := newIDP(t)
	d, err := Get(context.Background(), nil, p.srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	if d.Issuer != p.srv.URL+"/id" || d.ODataServiceRoot != p.srv.URL+"/api/domain/odata/" || d.TokenEndpointAuthMethods[0] != "client_secret_post" {
		t.Fatalf("%+v", d)
	}
	// Cached: no more requests.
	Get(context.Background(), nil, p.srv.URL)
	if p.auto.Load() != 1 || p.disco.Load() != 1 {
		t.Fatalf("auto=%d disco=%d", p.auto.Load(), p.disco.Load())
	}
}

func TestIDURLSkipsAutoDiscoveryAndGenericIssuerFallsBack(t *testing.T) {
	p := newIDP(t)
	if _, err := Get(context.Background(), nil, p.srv.URL+"/id/"); err != nil || p.auto.Load() != 0 {
		t.Fatalf("err=%v auto=%d", err, p.auto.Load())
	}
	q := newIDP(t)
	q.noAutoDiscovery = true
	d, err := Get(context.Background(), nil, q.srv.URL)
	if err != nil || d.Issuer != q.srv.URL {
		t.Fatalf("generic provider: %v %+v", err, d)
	}
}

func TestIssuerMismatchIsMisconfigured(t *testing.T) {
	p := newIDP(t)
	p.issuerOverride = "https://evil.example/id"
	_, err := Get(context.Background(), nil, p.srv.URL+"/id")
	if !errors.Is(err, autherr.ErrMisconfigured) {
		t.Fatalf("err = %v", err)
	}
}

func TestFailureIsRetriedAndNotCached(t *testing.T) {
	p := newIDP(t)
	p.failDisco.Store(10) // more than one call's retries
	_, err := Get(context.Background(), nil, p.srv.URL+"/id")
	if !errors.Is(err, autherr.ErrTemporary) || p.disco.Load() != 4 {
		t.Fatalf("err=%v requests=%d", err, p.disco.Load())
	}
	p.failDisco.Store(0)
	if _, err := Get(context.Background(), nil, p.srv.URL+"/id"); err != nil {
		t.Fatalf("not retried after failure: %v", err)
	}
}

func TestConcurrentColdCallersShareOneFetch(t *testing.T) {
	p := newIDP(t)
	p.discoveryLatency = 50 * time.Millisecond
	var wg sync.WaitGroup
	for i := 0; i < 100; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); Get(context.Background(), nil, p.srv.URL+"/id") }()
	}
	wg.Wait()
	if p.disco.Load() != 1 {
		t.Fatalf("discovery requests = %d", p.disco.Load())
	}
}

func TestStaleDocumentKeptWhenRefreshFails(t *testing.T) {
	p := newIDP(t)
	key := p.srv.URL + "/id"
	d, _ := Get(context.Background(), nil, key)
	v, _ := cache.Load(key)
	old := *d
	old.fetched = time.Now().Add(-2 * TTL)
	v.(*entry).doc.Store(&old)
	p.failDisco.Store(100)
	d2, err := Get(context.Background(), nil, key)
	if err != nil || d2.TokenEndpoint != d.TokenEndpoint {
		t.Fatalf("stale copy not served: %v", err)
	}
}

func TestCheckAuthority(t *testing.T) {
	for in, ok := range map[string]bool{
		"https://demodb.my.erp.net":     true,
		"https://demodb.my.erp.net/id":  true,
		"http://127.0.0.1:5080":         true,
		"http://localhost:5080/id":      true,
		"http://[::1]:80":               true,
		"http://demodb.my.erp.net":      false,
		"ftp://demodb.my.erp.net":       false,
		"demodb.my.erp.net":             false,
		"":                              false,
		"https://u:p@demodb.my.erp.net": false,
		"https://demodb.my.erp.net/#x":  false,
	} {
		if err := CheckAuthority("Authority", in); (err == nil) != ok {
			t.Errorf("%q: %v", in, err)
		}
	}
}
