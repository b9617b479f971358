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

	"github.com/erpnetgo/auth"
)

type idp struct {
	srv              *httptest.Server
	disco, auto      atomic.Int32
	failDisco        atomic.Int32 // this many 503s first
	issuerOverride   string
	noAutoDiscovery  bool
	toolsOnly        bool // auto-discovery only at /tools/auto-discovery
	discoveryLatency time.Duration
}

func newIDP(t *testing.T) *idp {
	p := &idp{}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		base := p.srv.URL
		switch r.URL.Path {
		case "/sys/auto-discovery", "/tools/auto-discovery":
			p.auto.Add(1)
			if p.noAutoDiscovery || (p.toolsOnly && r.URL.Path == "/sys/auto-discovery") {
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
	c := New(nil, p.srv.URL, "")
	d, err := c.Get(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if d.Issuer != p.srv.URL+"/id" || d.DomainAPI != p.srv.URL+"/api/domain/odata/" || d.TokenEndpointAuthMethods[0] != "client_secret_post" {
		t.Fatalf("%+v", d)
	}
	// Cached: no more requests.
	c.Get(context.Background())
	if p.auto.Load() != 1 || p.disco.Load() != 1 {
		t.Fatalf("auto=%d disco=%d", p.auto.Load(), p.disco.Load())
	}
}

func TestIDURLSkipsAutoDiscoveryAndGenericIssuerFallsBack(t *testing.T) {
	p := newIDP(t)
	d, err := New(nil, p.srv.URL+"/id/", "").Get(context.Background())
	if err != nil || p.auto.Load() != 0 {
		t.Fatalf("err=%v auto=%d", err, p.auto.Load())
	}
	if d.DomainAPI != p.srv.URL+"/api/domain/odata/" {
		t.Fatalf("Domain API root derived from the authority: %q", d.DomainAPI)
	}
	q := newIDP(t)
	q.noAutoDiscovery = true
	d, err = New(nil, q.srv.URL, "").Get(context.Background())
	if err != nil || d.Issuer != q.srv.URL {
		t.Fatalf("generic provider: %v %+v", err, d)
	}
	// Both ERP.net auto-discovery paths were asked before falling back.
	if q.auto.Load() != 2 {
		t.Fatalf("auto-discovery requests = %d, want 2 (/sys, then /tools)", q.auto.Load())
	}
}

func TestToolsAutoDiscoveryFallback(t *testing.T) {
	p := newIDP(t)
	p.toolsOnly = true
	d, err := New(nil, p.srv.URL, "").Get(context.Background())
	if err != nil || d.Issuer != p.srv.URL+"/id" || p.auto.Load() != 2 {
		t.Fatalf("err=%v doc=%+v auto=%d", err, d, p.auto.Load())
	}
}

func TestIssuerMismatchIsMisconfigured(t *testing.T) {
	p := newIDP(t)
	p.issuerOverride = "https://evil.example/id"
	_, err := New(nil, p.srv.URL+"/id", "").Get(context.Background())
	if !errors.Is(err, auth.ErrMisconfigured) {
		t.Fatalf("err = %v", err)
	}
}

func TestFailureIsRetriedAndNotCached(t *testing.T) {
	p := newIDP(t)
	p.failDisco.Store(10) // more than one call's retries
	c := New(nil, p.srv.URL+"/id", "")
	_, err := c.Get(context.Background())
	if !errors.Is(err, auth.ErrTemporary) || p.disco.Load() != 4 {
		t.Fatalf("err=%v requests=%d", err, p.disco.Load())
	}
	p.failDisco.Store(0)
	if _, err := c.Get(context.Background()); err != nil {
		t.Fatalf("not retried after failure: %v", err)
	}
}

func TestConcurrentColdCallersShareOneFetch(t *testing.T) {
	p := newIDP(t)
	p.discoveryLatency = 50 * time.Millisecond
	c := New(nil, p.srv.URL+"/id", "")
	var wg sync.WaitGroup
	for i := 0; i < 100; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); c.Get(context.Background()) }()
	}
	wg.Wait()
	if p.disco.Load() != 1 {
		t.Fatalf("discovery requests = %d", p.disco.Load())
	}
}

func TestStaleDocumentKeptWhenRefreshFails(t *testing.T) {
	p := newIDP(t)
	c := New(nil, p.srv.URL+"/id", "")
	d, _ := c.Get(context.Background())
	old := *d
	old.fetched = time.Now().Add(-2 * TTL)
	c.doc.Store(&old)
	p.failDisco.Store(100)
	d2, err := c.Get(context.Background())
	if err != nil || d2.TokenEndpoint != d.TokenEndpoint {
		t.Fatalf("stale copy not served: %v", err)
	}
}

func TestEachCacheIsItsOwn(t *testing.T) {
	// No process-wide state: two clients of one authority each use their
	// own HTTP client and fetch for themselves.
	p := newIDP(t)
	if _, err := New(nil, p.srv.URL+"/id", "").Get(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := New(nil, p.srv.URL+"/id", "").Get(context.Background()); err != nil {
		t.Fatal(err)
	}
	if p.disco.Load() != 2 {
		t.Fatalf("discovery requests = %d, want one per Cache", p.disco.Load())
	}
}

// TestBadURLsFromTheServer: a URL that auto-discovery names and the SDK
// would not accept in a Config is the server's misconfiguration: an
// *auth.Error, never a *auth.ConfigError naming a field the caller does not
// have.
func TestBadURLsFromTheServer(t *testing.T) {
	for name, body := range map[string]string{
		"ID":         `{"WebSites":[{"Type":"ID","Url":"http://id.example.com/id","Note":"%s"}]}`,
		"Domain API": `{"WebSites":[{"Type":"ID","Url":"%s/id"},{"Type":"DomainAPI","AdditionalProperties":{"ODataServiceRoot":"ftp://x.example/odata/"}}]}`,
	} {
		t.Run(name, func(t *testing.T) {
			var srv *httptest.Server
			srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				switch r.URL.Path {
				case "/sys/auto-discovery":
					fmt.Fprintf(w, body, srv.URL)
				case "/id/.well-known/openid-configuration":
					fmt.Fprintf(w, `{"issuer":"%s/id","token_endpoint":"%s/id/token"}`, srv.URL, srv.URL)
				default:
					http.NotFound(w, r)
				}
			}))
			defer srv.Close()
			_, err := New(nil, srv.URL, "").Get(context.Background())
			var ae *auth.Error
			var ce *auth.ConfigError
			if !errors.As(err, &ae) || errors.As(err, &ce) || !errors.Is(err, auth.ErrMisconfigured) || ae.Op != "ERP.net auto-discovery" {
				t.Fatalf("%T %v", err, err)
			}
		})
	}
}
