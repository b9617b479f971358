package transport

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/erpnetgo/auth"
	"github.com/erpnetgo/auth/internal/credential"
	"github.com/erpnetgo/auth/internal/lifetime"
	"github.com/erpnetgo/auth/internal/retry"
	"github.com/erpnetgo/auth/internal/tokencache"
)

func newCache(t *testing.T) *tokencache.Cache {
	var n atomic.Int32
	life := lifetime.New()
	t.Cleanup(func() { life.Close() })
	return tokencache.New(func(context.Context) (*oauth2.Token, error) {
		return &oauth2.Token{AccessToken: "tok" + string(rune('0'+n.Add(1))), Expiry: time.Now().Add(time.Hour)}, nil
	}, tokencache.Options{Life: life})
}

func TestRedirectToAnotherHostDropsToken(t *testing.T) {
	var foreignAuth atomic.Value
	foreign := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		foreignAuth.Store(r.Header.Get("Authorization") + "|")
	}))
	defer foreign.Close()
	var homeAuth atomic.Value
	home := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		homeAuth.Store(r.Header.Get("Authorization"))
		switch r.URL.Path {
		case "/away":
			http.Redirect(w, r, foreign.URL+"/x", http.StatusFound)
		case "/here":
			http.Redirect(w, r, "/final", http.StatusFound)
		}
	}))
	defer home.Close()
	c := newCache(t)
	hc := &http.Client{Transport: &Transport{Get: c.Credential, InvalidateIf: c.InvalidateIf}}

	resp, err := hc.Get(home.URL + "/away")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := foreignAuth.Load(); got != "|" {
		t.Fatalf("token sent to another host: %q", got)
	}
	resp, err = hc.Get(home.URL + "/here")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := homeAuth.Load(); got != "Bearer tok1" {
		t.Fatalf("same-host redirect lost the token: %q", got)
	}
	http.DefaultTransport.(*http.Transport).CloseIdleConnections()
}

func TestRequestIsNotModified(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	c := newCache(t)
	tr := &Transport{Get: c.Credential, InvalidateIf: c.InvalidateIf}
	req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
	req.Header.Set("X-Keep", "1")
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if req.Header.Get("Authorization") != "" || len(req.Header) != 1 {
		t.Fatalf("caller's request modified: %v", req.Header)
	}
	http.DefaultTransport.(*http.Transport).CloseIdleConnections()
}

// rulesServer answers with the statuses queued for each path and counts
// the requests and the Authorization headers it saw.
type rulesServer struct {
	srv   *httptest.Server
	n     atomic.Int32
	auths chan string
}

func newRulesServer(t *testing.T, statuses ...int) *rulesServer {
	s := &rulesServer{auths: make(chan string, 16)}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := int(s.n.Add(1)) - 1
		s.auths <- r.Header.Get("Authorization")
		if i < len(statuses) {
			w.WriteHeader(statuses[i])
		}
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func TestTransportRules(t *testing.T) {
	fast := retry.Policy{Base: time.Millisecond, Cap: time.Millisecond}
	for _, tc := range []struct {
		name     string
		method   string
		body     bool // a body that cannot be replayed
		statuses []int
		want     int // requests the server sees
		final    int
	}{
		{"401 gets a fresh token and one retry", http.MethodGet, false, []int{401, 401, 401}, 2, 401},
		{"403 is never retried", http.MethodGet, false, []int{403, 200}, 1, 403},
		{"429 on GET is retried", http.MethodGet, false, []int{429, 429, 200}, 3, 200},
		{"503 on PUT is retried", http.MethodPut, false, []int{503, 200}, 2, 200},
		{"429 on POST is not retried", http.MethodPost, false, []int{429, 200}, 1, 429},
		{"429 with a body that cannot be replayed is not retried", http.MethodPut, true, []int{429, 200}, 1, 429},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newRulesServer(t, tc.statuses...)
			c := newCache(t)
			hc := &http.Client{Transport: &Transport{Get: c.Credential, InvalidateIf: c.InvalidateIf, Retry: fast}}
			var body io.Reader
			if tc.body {
				body = io.NopCloser(strings.NewReader("x")) // no GetBody
			}
			req, _ := http.NewRequest(tc.method, s.srv.URL, body)
			resp, err := hc.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if got := int(s.n.Load()); got != tc.want || resp.StatusCode != tc.final {
				t.Fatalf("requests = %d (want %d), final status %d (want %d)", got, tc.want, resp.StatusCode, tc.final)
			}
		})
	}
}

func TestForeignHostIsRefusedBeforeSending(t *testing.T) {
	s := newRulesServer(t)
	c := newCache(t)
	tr := &Transport{Get: c.Credential, InvalidateIf: c.InvalidateIf, Allow: func(_ context.Context, u *url.URL) error {
		return Refused(u, "https://demodb.my.erp.net:443")
	}}
	_, err := (&http.Client{Transport: tr}).Get(s.srv.URL)
	if !errors.Is(err, auth.ErrMisconfigured) || s.n.Load() != 0 {
		t.Fatalf("err = %v, requests = %d", err, s.n.Load())
	}
}

func TestOtherCredentialsAndUserInfoAreStripped(t *testing.T) {
	var seen http.Header
	var user *url.Userinfo
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen, user = r.Header.Clone(), r.URL.User
	}))
	defer srv.Close()
	c := newCache(t)
	tr := &Transport{Get: c.Credential, Header: "X-Api-Key"}
	req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
	req.Header.Set("Authorization", "Basic eDp5")
	req.Header["api-key"] = []string{"other"}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if seen.Get("Authorization") != "" || seen.Get("Api-Key") != "" || seen.Get("X-Api-Key") != "Bearer tok1" || user != nil {
		t.Fatalf("headers sent: %v", seen)
	}
}

// After a 401, a token that cannot be renewed (the user must sign in
// again) is the caller's error, not the API's bare 401.
func TestUnauthorizedThenNoTokenIsTheError(t *testing.T) {
	var sent atomic.Int32
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sent.Add(1)
		w.WriteHeader(http.StatusUnauthorized)
	}))
	defer api.Close()
	dead := &auth.Error{Op: "token refresh", Kind: auth.ErrReauthRequired}
	var gets atomic.Int32
	cr := credential.New("Bearer old", nil)
	tr := &Transport{
		Get: func(context.Context) (*credential.Credential, error) {
			if gets.Add(1) == 1 {
				return cr, nil
			}
			return nil, dead
		},
		InvalidateIf: func(*credential.Credential) bool { return true },
	}
	resp, err := (&http.Client{Transport: tr}).Get(api.URL + "/x")
	if err == nil {
		resp.Body.Close()
		t.Fatalf("got %s and no error", resp.Status)
	}
	var ue *url.Error
	if !errors.As(err, &ue) || !errors.Is(err, auth.ErrReauthRequired) {
		t.Fatalf("err = %v (%T), want a *url.Error matching ErrReauthRequired", err, err)
	}
	if sent.Load() != 1 {
		t.Fatalf("requests sent = %d, want 1", sent.Load())
	}
}

// A 401 to a request that is not sent again still drops the token: the
// next request carries a fresh one instead of the refused one.
func TestUnreplayed401DropsTheToken(t *testing.T) {
	for _, tc := range []struct {
		name string
		req  func(url string) *http.Request
	}{
		{"body that cannot be replayed", func(u string) *http.Request {
			r, _ := http.NewRequest(http.MethodPost, u, io.NopCloser(strings.NewReader("x")))
			return r
		}},
		{"request marked Once", func(u string) *http.Request {
			r, _ := http.NewRequestWithContext(Once(context.Background()), http.MethodPost, u, nil)
			return r
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newRulesServer(t, 401, 200)
			c := newCache(t)
			hc := &http.Client{Transport: &Transport{Get: c.Credential, InvalidateIf: c.InvalidateIf}}
			resp, err := hc.Do(tc.req(s.srv.URL))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 401 || s.n.Load() != 1 {
				t.Fatalf("status %d after %d requests, want the 401 after 1", resp.StatusCode, s.n.Load())
			}
			resp, err = hc.Get(s.srv.URL)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if first, next := <-s.auths, <-s.auths; first != "Bearer tok1" || next != "Bearer tok2" {
				t.Fatalf("tokens sent: %q then %q, want tok1 then a fresh tok2", first, next)
			}
		})
	}
}

// Under Once a request is sent once whatever its method and body: no
// replay after a 401, no retry after a 429 or 503.
func TestOnceSendsOnce(t *testing.T) {
	fast := retry.Policy{Base: time.Millisecond, Cap: time.Millisecond}
	for _, tc := range []struct {
		method string
		body   bool // replayable
		status int
	}{
		{http.MethodPost, true, 401},
		{http.MethodPost, false, 401},
		{http.MethodGet, false, 401},
		{http.MethodGet, false, 429},
		{http.MethodPut, true, 503},
	} {
		t.Run(tc.method+" "+strconv.Itoa(tc.status), func(t *testing.T) {
			s := newRulesServer(t, tc.status, 200, 200)
			c := newCache(t)
			hc := &http.Client{Transport: &Transport{Get: c.Credential, InvalidateIf: c.InvalidateIf, Retry: fast}}
			var body io.Reader
			if tc.body {
				body = strings.NewReader("payload") // GetBody set
			}
			req, _ := http.NewRequestWithContext(Once(context.Background()), tc.method, s.srv.URL, body)
			resp, err := hc.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if got := s.n.Load(); got != 1 || resp.StatusCode != tc.status {
				t.Fatalf("requests = %d, final status %d; want 1 request answered %d", got, resp.StatusCode, tc.status)
			}
		})
	}
}

// An https URL whose server answers in plain http (a DomainAPI with the
// wrong scheme or port) is the app's to fix: the call fails with
// auth.ErrMisconfigured and says so, for requests sent once and for those
// the transport would retry alike.
func TestPlainHTTPServerIsAMisconfiguration(t *testing.T) {
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer plain.Close()
	c := newCache(t)
	hc := &http.Client{Transport: &Transport{Get: c.Credential, InvalidateIf: c.InvalidateIf}}
	u := "https://" + strings.TrimPrefix(plain.URL, "http://") + "/api/domain/odata/"
	for _, method := range []string{http.MethodGet, http.MethodPost} {
		req, _ := http.NewRequest(method, u, strings.NewReader("x"))
		resp, err := hc.Do(req)
		if resp != nil {
			resp.Body.Close()
		}
		if !errors.Is(err, auth.ErrMisconfigured) || errors.Is(err, auth.ErrTemporary) {
			t.Fatalf("%s: %v; want only auth.ErrMisconfigured", method, err)
		}
		if !strings.Contains(err.Error(), "speaks plain http, not https") {
			t.Errorf("%s: %q does not say what is wrong", method, err)
		}
	}
}
