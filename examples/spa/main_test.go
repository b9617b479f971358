package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/erpnetgo/auth/erpnettest"
)

// start runs the program and returns its URL and identity server.
func start(t *testing.T) (string, *erpnettest.Server) {
	t.Helper()
	t.Setenv("ERPNET_AUTHORITY", "")
	ctx, cancel := context.WithCancel(context.Background())
	type started struct {
		site string
		idp  *erpnettest.Server
	}
	ready := make(chan started, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, "127.0.0.1:0", slog.New(slog.DiscardHandler), func(site string, idp *erpnettest.Server) {
			ready <- started{site, idp}
		})
	}()
	var st started
	select {
	case st = <-ready:
	case err := <-done:
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return st.site, st.idp
}

type answer struct {
	status int
	header http.Header
	body   string
}

func call(t *testing.T, hc *http.Client, method, u string, hdr ...string) answer {
	t.Helper()
	req, _ := http.NewRequest(method, u, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header, string(b)}
}

func TestSPASignInCustomersSignOut(t *testing.T) {
	site, idp := start(t)
	browser, err := idp.SignIn(site+"/bff/login?returnUrl=%2F", erpnettest.Demo.Alice)
	if err != nil {
		t.Fatal(err)
	}
	page := call(t, browser, "GET", site+"/")
	if page.status != 200 || !strings.Contains(page.body, `<script src="/app.js" defer></script>`) ||
		!strings.Contains(page.header.Get("Content-Security-Policy"), "script-src 'self'") {
		t.Fatalf("the app's page: %d %v\n%s", page.status, page.header, page.body)
	}
	js := call(t, browser, "GET", site+"/app.js")
	if js.status != 200 || !strings.Contains(js.header.Get("Content-Type"), "javascript") || !strings.Contains(js.body, "'X-CSRF': '1'") {
		t.Fatalf("app.js: %d %v", js.status, js.header)
	}

	user := call(t, browser, "GET", site+"/bff/user", "X-CSRF", "1")
	var u struct {
		Sub, Name, Email string
		LogoutURL        string `json:"logoutUrl"`
	}
	if user.status != 200 || json.Unmarshal([]byte(user.body), &u) != nil || u.Sub != "alice" || u.Name != "Alice Anderson" || u.Email != "alice@example.com" {
		t.Fatalf("/bff/user: %d %s", user.status, user.body)
	}
	customers := call(t, browser, "GET", site+"/bff/api/Crm_Sales_Customers?$top=10", "X-CSRF", "1")
	if customers.status != 200 || !strings.Contains(customers.body, "Acme Manufacturing Ltd") || customers.header.Get("X-Erpnet-Caller") != "user:alice" {
		t.Fatalf("customers: %d %s", customers.status, customers.body)
	}
	if r := call(t, browser, "GET", site+"/bff/api/Crm_Sales_Customers"); r.status != 401 {
		t.Fatalf("without X-CSRF: %d", r.status)
	}

	// Sign out: the identity server ends its session and sends the browser
	// back to the app, signed out.
	out := call(t, browser, "GET", site+u.LogoutURL)
	if out.status != 200 || !strings.Contains(out.body, `id="sign-in"`) {
		t.Fatalf("after sign-out: %d\n%s", out.status, out.body)
	}
	if r := call(t, browser, "GET", site+"/bff/user", "X-CSRF", "1"); r.status != 401 || !strings.Contains(r.body, "login_required") {
		t.Fatalf("/bff/user after sign-out: %d %s", r.status, r.body)
	}
	if n := idp.Requests("endsession"); n != 1 {
		t.Fatalf("end-session requests: %d", n)
	}
}
