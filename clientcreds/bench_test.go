package clientcreds_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/erpnetgo/auth/clientcreds"
	"github.com/erpnetgo/auth/erpnettest"
)

// The benchmarks compare this package with golang.org/x/oauth2
// (oauth2.ReuseTokenSource over clientcredentials, which is what
// clientcredentials.Config.TokenSource returns) in the same run, against the
// same dev identity server. Run:
//
//	go test -run '^$' -bench . -benchmem ./clientcreds/

type pair struct {
	ours   *clientcreds.Source
	theirs oauth2.TokenSource
	srv    *erpnettest.Server
}

func setup(b *testing.B, domainAPI ...string) pair {
	s := erpnettest.NewServer(b)
	src, err := clientcreds.New(clientcreds.Config{Authority: s.Authority(), ClientID: erpnettest.Demo.WorkerID,
		ClientSecret: erpnettest.Demo.WorkerSecret, Scopes: []string{"read"}, DomainAPI: strings.Join(domainAPI, "")})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { src.Close() })
	ctx := context.Background()
	cc := &clientcredentials.Config{ClientID: erpnettest.Demo.WorkerID, ClientSecret: erpnettest.Demo.WorkerSecret,
		TokenURL: s.Authority() + "/connect/token", Scopes: []string{"read"}, AuthStyle: oauth2.AuthStyleInHeader}
	p := pair{ours: src, theirs: cc.TokenSource(ctx), srv: s}
	if _, err := p.ours.Token(ctx); err != nil {
		b.Fatal(err)
	}
	if _, err := p.theirs.Token(); err != nil {
		b.Fatal(err)
	}
	return p
}

func BenchmarkCachedToken(b *testing.B) {
	p := setup(b)
	ctx := context.Background()
	b.Run("impl=erpnetgo/serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := p.ours.Token(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("impl=x-oauth2/serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := p.theirs.Token(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("impl=erpnetgo/parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := p.ours.Token(ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
	b.Run("impl=x-oauth2/parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := p.theirs.Token(); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
}

// BenchmarkClientRequest sends one GET through each client to a minimal
// local API, so the difference between the two is the token transport.
func BenchmarkClientRequest(b *testing.B) {
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") == "" {
			w.WriteHeader(401)
		}
	}))
	b.Cleanup(api.Close)
	p := setup(b, api.URL) // the API server is not on the authority's origin
	ctx := context.Background()
	ours := p.ours.Client(ctx)
	theirs := &http.Client{Transport: &oauth2.Transport{Source: p.theirs, Base: http.DefaultTransport}}
	req, _ := http.NewRequest(http.MethodGet, api.URL, nil)
	for _, c := range []struct {
		name string
		hc   *http.Client
	}{{"impl=erpnetgo", ours}, {"impl=x-oauth2", theirs}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				resp, err := c.hc.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					b.Fatal(resp.Status)
				}
			}
		})
	}
	http.DefaultTransport.(*http.Transport).CloseIdleConnections()
}
