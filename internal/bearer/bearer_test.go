package bearer

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/erpnetgo/auth/internal/tokencache"
)

func newCache(t *testing.T) *tokencache.Cache {
	var n atomic.Int32
	c := tokencache.New(func(context.Context) (*oauth2.Token, error) {
		return &oauth2.Token{AccessToken: "tok" + string(rune('0'+n.Add(1))), Expiry: time.Now().Add(time.Hour)}, nil
	}, tokencache.Options{})
	t.Cleanup(c.Close)
	return c
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
	hc := &http.Client{Transport: &Transport{Get: c.Get, InvalidateIf: c.InvalidateIf}}

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
	tr := &Transport{Get: c.Get, InvalidateIf: c.InvalidateIf}
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
