package instances_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/erpnetgo/auth/authcode"
	"github.com/erpnetgo/auth/erpnettest"
	"github.com/erpnetgo/auth/instances"
)

// BenchmarkRequireUser compares a signed-in request through the Registry's
// RequireUser (cookie tag, instance look-up, then the instance's
// authcode.Client) with one through an authcode.Client alone, on the same
// identity server, session held in memory, handler doing nothing.
//
//	go test -run x -bench RequireUser -benchmem ./instances/
func BenchmarkRequireUser(b *testing.B) {
	A := newInstance(b, "acme")
	a := newApp(b, instances.Config{})
	if err := a.reg.Add(context.Background(), A.URL(), A.secret); err != nil {
		b.Fatal(err)
	}
	regBrowser := a.signIn(A, erpnettest.Demo.Alice)

	ts := httptest.NewUnstartedServer(nil)
	ac, err := authcode.New(authcode.Config{Authority: A.URL(), ClientID: clientID, ClientSecret: A.secret,
		RedirectURL: "http://" + ts.Listener.Addr().String() + "/callback", Keys: [][]byte{make([]byte, 32)}})
	if err != nil {
		b.Fatal(err)
	}
	defer ac.Close()
	mux := http.NewServeMux()
	mux.Handle("/signin", ac.SignIn())
	mux.Handle("/callback", ac.Callback())
	ts.Config.Handler = mux
	ts.Start()
	defer ts.Close()
	acBrowser, err := A.SignIn(ts.URL+"/signin", erpnettest.Demo.Alice)
	if err != nil {
		b.Fatal(err)
	}

	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if authcode.SessionFromContext(r.Context()) == nil {
			b.Fatal("no session")
		}
	})
	for _, tc := range []struct {
		name    string
		h       http.Handler
		browser *http.Client
		base    string
	}{
		{"authcode", ac.RequireUser(next), acBrowser, ts.URL},
		{"instances", a.reg.RequireUser(next), regBrowser, a.ts.URL},
	} {
		b.Run(tc.name, func(b *testing.B) {
			u, _ := url.Parse(tc.base + "/me")
			req := httptest.NewRequest(http.MethodGet, u.String(), nil)
			for _, ck := range tc.browser.Jar.Cookies(u) {
				req.AddCookie(ck)
			}
			w := httptest.NewRecorder()
			tc.h.ServeHTTP(w, req)
			if w.Code != http.StatusOK {
				b.Fatalf("status %d", w.Code)
			}
			b.ReportAllocs()
			for b.Loop() {
				tc.h.ServeHTTP(w, req)
			}
		})
	}
}
