package browsertest

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/erpnetgo/auth/erpnettest"
)

// The single-page app (examples/spa) and its backend-for-frontend
// (package bff), in Chromium. The app runs against an identity server of
// this test process (erpnettest, given to the app as ERPNET_AUTHORITY), so
// that the tests can read its counters (token requests, Domain API calls,
// ERP.net sessions) and move its clock; no assertion depends on how long
// anything takes.

// startSPA runs examples/spa on a free port against a new identity server
// and returns both.
func startSPA(t *testing.T) (site string, idp *erpnettest.Server) {
	t.Helper()
	idp = erpnettest.NewServer(t)
	bin := example(t, "spa")
	sites := make(chan string, 1)
	env := []string{
		"ERPNET_AUTHORITY=" + idp.URL(),
		"ERPNET_CLIENT_ID=" + erpnettest.Demo.WebAppID,
		"ERPNET_CLIENT_SECRET=" + erpnettest.Demo.WebAppSecret,
	}
	p := start(t, bin, []string{"-addr", "127.0.0.1:0"}, env, nil, func(line string) {
		if m := listeningRe.FindStringSubmatch(line); m != nil {
			trySend(sites, m[1])
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	select {
	case site = <-sites:
	case <-p.done:
		t.Fatalf("spa exited before listening: %v\n%s", p.err, p.stderr.String())
	case <-ctx.Done():
		t.Fatalf("spa did not report its address:\n%s", p.stderr.String())
	}
	waitHTTP(ctx, t, site+"/")
	return site, idp
}

// ---- the scan of every response the browser receives ----

// scanner keeps every response header and body the browser received in
// the tabs it watches, to look for credentials in them.
type scanner struct {
	t    *testing.T
	mu   sync.Mutex
	seen []scanned
	urls map[network.RequestID]string
	wg   sync.WaitGroup
}

type scanned struct{ url, text string }

func newScanner(t *testing.T) *scanner {
	return &scanner{t: t, urls: map[network.RequestID]string{}}
}

func (s *scanner) add(url, text string) {
	s.mu.Lock()
	s.seen = append(s.seen, scanned{url, text})
	s.mu.Unlock()
}

func headersText(h network.Headers) string {
	var b strings.Builder
	for k, v := range h {
		fmt.Fprintf(&b, "%s: %v\n", k, v)
	}
	return b.String()
}

// watch scans the responses of the tab of ctx: headers of every response
// (redirects and raw wire headers included) and every body.
func (s *scanner) watch(ctx context.Context) {
	err := chromedp.Listen(ctx, func(ev any) {
		switch ev := ev.(type) {
		case *network.EventRequestWillBeSent:
			s.mu.Lock()
			s.urls[ev.RequestID] = ev.Request.URL
			s.mu.Unlock()
			if r := ev.RedirectResponse; r != nil {
				s.add(r.URL, headersText(r.Headers))
			}
		case *network.EventResponseReceived:
			s.add(ev.Response.URL, headersText(ev.Response.Headers))
		case *network.EventResponseReceivedExtraInfo:
			s.add("(raw headers)", headersText(ev.Headers)+ev.HeadersText)
		case *network.EventLoadingFinished:
			s.mu.Lock()
			u := s.urls[ev.RequestID]
			s.mu.Unlock()
			s.wg.Add(1)
			go func() { // fn must not run commands itself
				defer s.wg.Done()
				res, err := chromedp.Call(ctx, network.GetResponseBody, network.GetResponseBodyParams{RequestID: ev.RequestID})
				if err == nil {
					s.add(u, string(res.Body))
				}
			}()
		}
	})
	if err != nil {
		s.t.Fatal(err)
	}
}

var (
	jwtShape = regexp.MustCompile(`eyJ[A-Za-z0-9_-]{4,}\.eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*`)
	// endSession matches the redirect to the identity server's end-session
	// endpoint; its id_token_hint is the one credential OpenID
	// RP-Initiated Logout puts in the browser's hands.
	endSession  = regexp.MustCompile(`/id/connect/endsession\?[^\s"'<>]*`)
	idTokenHint = regexp.MustCompile(`id_token_hint=[^&\s"'<>]*&?`)
	tokenWords  = regexp.MustCompile(`(?i)"(access_token|refresh_token|id_token)"|enrt_`)
)

// check fails the test if any response carried an access, refresh or ID
// token (anything shaped like a JWT, or a token field) or a reference
// token. It needs at least the bodies of the BFF's answers it names.
func (s *scanner) check(mustHaveBodiesOf ...string) {
	s.t.Helper()
	s.wg.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	have := map[string]bool{}
	for _, r := range s.seen {
		text := endSession.ReplaceAllStringFunc(r.text, func(u string) string { return idTokenHint.ReplaceAllString(u, "") })
		if m := jwtShape.FindString(text); m != "" {
			s.t.Errorf("a JWT reached the browser in the response of %s: %.40s...", r.url, m)
		}
		if m := tokenWords.FindString(text); m != "" {
			s.t.Errorf("%s in the response of %s", m, r.url)
		}
		for _, p := range mustHaveBodiesOf {
			if strings.Contains(r.url, p) && r.text != "" {
				have[p] = true
			}
		}
	}
	for _, p := range mustHaveBodiesOf {
		if !have[p] {
			s.t.Errorf("the scan saw no body of %s (%d responses seen): it would prove nothing", p, len(s.seen))
		}
	}
	if len(s.seen) < 10 {
		s.t.Errorf("only %d responses scanned", len(s.seen))
	}
}

// ---- the app in a tab ----

// spaTab is a tab showing the app.
type spaTab struct {
	*tab
	site string
}

// waitCustomers waits until the app shows the customers list.
func (st *spaTab) waitCustomers() {
	st.t.Helper()
	st.do(chromedp.WaitVisible(`#customers tbody tr`))
	txt := st.text()
	for _, want := range []string{"Signed in as Alice Anderson", "Acme Manufacturing Ltd", "Read from the Domain API as user:alice."} {
		if !strings.Contains(txt, want) {
			st.t.Fatalf("the app lacks %q at %s:\n%s", want, st.url(), txt)
		}
	}
}

// waitSignedOut waits until the app offers to sign in, and returns why.
func (st *spaTab) waitSignedOut() string {
	st.t.Helper()
	st.do(chromedp.WaitVisible(`#sign-in`))
	if st.has(`#customers tbody tr`) && st.eval(`document.getElementById("signed-in").hidden ? "hidden" : "shown"`) == "shown" {
		st.t.Fatalf("signed out, yet the customers show:\n%s", st.text())
	}
	return st.eval(`document.getElementById("why").textContent`)
}

// evalAwait evaluates a promise-valued expression in the page and returns
// the string it resolves to.
func (st *spaTab) evalAwait(expr string) string {
	st.t.Helper()
	ctx, cancel := context.WithTimeout(st.ctx, hangGuard)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[string](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		st.t.Fatalf("browser: evaluating %s: %v", expr, err)
	}
	return v
}

// fetch runs fetch(path, init) in the page and returns the status and
// the body.
func (st *spaTab) fetch(path, init string) (int, string) {
	st.t.Helper()
	if init == "" {
		init = "{}"
	}
	v := st.evalAwait(`fetch(` + jsString(path) + `, ` + init + `).then(async r => JSON.stringify({s: r.status, b: await r.text()}))`)
	var out struct {
		S int
		B string
	}
	if err := json.Unmarshal([]byte(v), &out); err != nil {
		st.t.Fatal(err)
	}
	return out.S, out.B
}

const withCSRF = `{headers: {"X-CSRF": "1"}}`

// spaSignIn opens the app signed out, follows its Sign in link through the
// identity server's form as alice and waits for the customers.
func spaSignIn(t *testing.T, b *browser, st *spaTab) {
	t.Helper()
	// The app asks /bff/user first: 401 while signed out (Chromium logs the
	// failed load).
	b.allow(`status of 401 .*\(` + regexp.QuoteMeta(st.site+"/bff/user") + `\)$`)
	st.requireStatus(st.nav(chromedp.Navigate(st.site+"/")), 200, "the app")
	if why := st.waitSignedOut(); why != "You are not signed in." {
		t.Fatalf("signed-out app says %q", why)
	}
	st.requireStatus(st.nav(chromedp.Click(`#sign-in`)), 200, "Sign in")
	st.requireStatus(st.signIn(alice, alicePassword), 200, "the sign-in form")
	if u := st.url(); u != st.site+"/" {
		t.Fatalf("the sign-in landed at %s, want %s/", u, st.site)
	}
	st.waitCustomers()
}

// newSPA starts the app, an identity server, Chromium with the scanner on
// its first tab, and signs alice in.
func newSPA(t *testing.T) (*browser, *scanner, *spaTab, *erpnettest.Server) {
	site, idp := startSPA(t)
	b := newBrowser(t)
	sc := newScanner(t)
	sc.watch(b.ctx)
	st := &spaTab{b.tab(b.ctx), site}
	spaSignIn(t, b, st)
	return b, sc, st, idp
}

// TestSPASignInAPISignOut: sign-in through /bff/login, /bff/user, API
// calls with and without the anti-forgery header, no cookie readable by
// scripts, sign-out through the identity server, Back after sign-out; no
// response the browser got carries a token.
func TestSPASignInAPISignOut(t *testing.T) {
	b, sc, st, idp := newSPA(t)
	site := st.site
	if n := idp.Requests("token"); n != 1 {
		t.Fatalf("token requests after sign-in: %d, want 1 (the code exchange)", n)
	}

	status, body := st.fetch("/bff/user", withCSRF)
	var user map[string]any
	if status != 200 || json.Unmarshal([]byte(body), &user) != nil || user["sub"] != alice || user["name"] != aliceName || user["email"] != "alice@example.com" {
		t.Fatalf("/bff/user: %d %s", status, body)
	}
	logoutURL, _ := user["logoutUrl"].(string)
	if !strings.HasPrefix(logoutURL, "/bff/logout?sid=") {
		t.Fatalf("logoutUrl %q", logoutURL)
	}
	if c := st.eval(`document.cookie`); c != "" {
		t.Fatalf("scripts can read cookies: %q (the session cookie must be HttpOnly)", c)
	}

	// Without the header: 401, nothing reaches the Domain API.
	b.allow(`status of 401 .*\(` + regexp.QuoteMeta(site+"/bff/") + `(api/Crm_Sales_Customers|user)\)$`)
	api := idp.Requests("domainapi")
	for _, p := range []string{"/bff/api/Crm_Sales_Customers", "/bff/user"} {
		if status, body := st.fetch(p, `{}`); status != 401 || !strings.Contains(body, "antiforgery_required") {
			t.Fatalf("%s without X-CSRF: %d %s", p, status, body)
		}
	}
	if status, _ := st.fetch("/bff/api/Crm_Sales_Customers", `{method: "POST", headers: {"Content-Type": "application/json"}, body: "{}"}`); status != 401 {
		t.Fatalf("POST without X-CSRF: %d", status)
	}
	if n := idp.Requests("domainapi"); n != api {
		t.Fatalf("calls without the header reached the Domain API: %d -> %d", api, n)
	}
	// With it: the Domain API's answer.
	if status, body := st.fetch("/bff/api/Crm_Sales_Customers?$top=2", withCSRF); status != 200 || !strings.Contains(body, "Acme Manufacturing Ltd") {
		t.Fatalf("with X-CSRF: %d %s", status, body)
	}
	if n := idp.Requests("domainapi"); n != api+1 {
		t.Fatalf("Domain API calls: %d, want %d", n, api+1)
	}

	// Sign out: the app's link (logoutUrl), the identity server's
	// end-session endpoint, back to the app, signed out.
	st.requireStatus(st.nav(chromedp.Click(`#sign-out`)), 200, "Sign out")
	if u := st.url(); u != site+"/" {
		t.Fatalf("sign-out ended at %s", u)
	}
	if why := st.waitSignedOut(); why != "You are not signed in." {
		t.Fatalf("after sign-out the app says %q", why)
	}
	if n := len(b.requested(idp.URL() + "/id/connect/endsession?")); n != 1 {
		t.Fatalf("end-session requests: %d (%q)", n, b.requested(""))
	}
	if status, body := st.fetch("/bff/user", withCSRF); status != 401 || !strings.Contains(body, "login_required") {
		t.Fatalf("/bff/user after sign-out: %d %s", status, body)
	}
	// Back shows no customers (the app's page is not kept in the
	// back/forward cache, and the session is gone).
	st.nav(chromedp.NavigateBack())
	st.waitSignedOut()

	sc.check(site+"/bff/user", site+"/bff/api/Crm_Sales_Customers")
}

// TestSPAForgeryAndPathEscapes: a cross-site form POST to the API and to
// the sign-out is refused with a plain page, and path escapes and methods
// off the allowlist are refused; none of it reaches the Domain API or the
// identity server.
func TestSPAForgeryAndPathEscapes(t *testing.T) {
	b, sc, st, idp := newSPA(t)
	site := st.site
	// Another site (localhost is another site than 127.0.0.1) with forms
	// aimed at the app.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	evil := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!doctype html><title>Another site</title>
<form id="api" method="post" action="%[1]s/bff/api/Crm_Sales_Customers"><input name="Name" value="Forged"><button>Create</button></form>
<form id="logout" method="post" action="%[1]s/bff/logout"><button>Sign out</button></form>`, site)
	}), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = evil.Serve(ln) }()
	t.Cleanup(func() { _ = evil.Close() })
	evilURL := "http://localhost:" + fmt.Sprint(ln.Addr().(*net.TCPAddr).Port) + "/"
	b.allow(`status of 40\d .*\(` + regexp.QuoteMeta(site+"/bff/"))

	api, tokens := idp.Requests("domainapi"), idp.Requests("token")
	for _, form := range []string{"#api", "#logout"} {
		st.requireStatus(st.nav(chromedp.Navigate(evilURL)), 200, "the other site")
		resp := st.nav(chromedp.Click(form + ` button`))
		st.requireStatus(resp, 401, "cross-site form POST "+form)
		txt := st.text()
		if !strings.Contains(txt, "cannot be opened directly or from another site") || goErrorText.MatchString(txt) {
			t.Fatalf("cross-site form POST %s: the page says:\n%s", form, txt)
		}
	}
	// Still signed in, nothing created.
	st.requireStatus(st.nav(chromedp.Navigate(site+"/")), 200, "the app")
	st.waitCustomers()
	if strings.Contains(st.text(), "Forged") {
		t.Fatal("the forged customer was created")
	}
	if n := idp.Requests("domainapi"); n != api+1 { // the list the app loaded again
		t.Fatalf("Domain API calls: %d, want %d", n, api+1)
	}
	api++

	for _, p := range []string{
		"/bff/api/..%2f..%2fid%2fconnect%2ftoken",
		"/bff/api/%2e%2e%2f%2e%2e%2fid/connect/token",
		"/bff/api/%252e%252e/x",
		"/bff/api/%2f%2fevil.example/x",
		"/bff/api/@evil.example/x",
		"/bff/api/a%5c..%5c..%5cx",
		"/bff/api/https:%2f%2fevil.example/",
	} {
		status, body := st.fetch(p, withCSRF)
		if status < 300 || strings.Contains(body, "Acme") {
			t.Errorf("%s: %d %s", p, status, body)
		}
	}
	// An empty segment: http.ServeMux redirects to the cleaned path, which
	// stays under the Domain API root (the BFF refuses "//" itself behind
	// a router that does not clean paths).
	if status, body := st.fetch("/bff/api//evil.example/x", withCSRF); status != 404 || !strings.Contains(body, "evil.example/x") {
		t.Errorf("//evil.example/x: %d %s", status, body)
	}
	api++
	if status, _ := st.fetch("/bff/api/Crm_Sales_Customers", `{method: "PROPFIND", headers: {"X-CSRF": "1"}}`); status != 405 {
		t.Errorf("PROPFIND: %d, want 405", status)
	}
	if n := idp.Requests("domainapi"); n != api {
		t.Fatalf("Domain API calls: %d, want %d", n, api)
	}
	if n := idp.Requests("token"); n != tokens {
		t.Fatalf("token requests: %d, want %d", n, tokens)
	}
	sc.check(site + "/bff/api/Crm_Sales_Customers")
}

// TestSPAParallelCallsAtExpiry: the access token expires (the identity
// server's clock moves past it; the app's does not know yet), then the
// page makes 20 calls at once: all succeed with one refresh.
func TestSPAParallelCallsAtExpiry(t *testing.T) {
	_, sc, st, idp := newSPA(t)
	tokens := idp.Requests("token")
	idp.Advance(61 * time.Minute)
	v := st.evalAwait(`Promise.all(Array.from({length: 20}, () =>
		fetch("/bff/api/Crm_Sales_Customers?$top=1", {headers: {"X-CSRF": "1"}}).then(r => r.status))).then(rs => rs.join(","))`)
	if want := strings.TrimSuffix(strings.Repeat("200,", 20), ","); v != want {
		t.Fatalf("statuses: %s", v)
	}
	if n := idp.Requests("token") - tokens; n != 1 {
		t.Fatalf("token requests for 20 calls at expiry: %d, want 1 refresh", n)
	}
	st.requireStatus(st.nav(chromedp.Reload()), 200, "reload")
	st.waitCustomers()
	if n := idp.Requests("token") - tokens; n != 1 {
		t.Fatalf("token requests after reload: %d, want still 1", n)
	}
	sc.check(st.site + "/bff/api/Crm_Sales_Customers")
}

// TestSPARevokedUser: a password change revokes the user's sign-ins; the
// next API call tells the app to sign in again, and the user can.
func TestSPARevokedUser(t *testing.T) {
	b, sc, st, idp := newSPA(t)
	site := st.site
	b.allow(`status of 401 .*\(` + regexp.QuoteMeta(site+"/bff/"))
	idp.RevokeUser(alice)
	st.do(chromedp.Click(`#reload`))
	if why := st.waitSignedOut(); why != "Your session has ended. Please sign in again." {
		t.Fatalf("after revocation the app says %q", why)
	}
	if status, body := st.fetch("/bff/user", withCSRF); status != 401 || !strings.Contains(body, "reauth_required") {
		t.Fatalf("/bff/user after revocation: %d %s", status, body)
	}
	api := idp.Requests("domainapi")
	if status, _ := st.fetch("/bff/api/Crm_Sales_Customers", withCSRF); status != 401 {
		t.Fatalf("API after revocation: %d", status)
	}
	if n := idp.Requests("domainapi"); n != api {
		t.Fatal("a call with the dead session reached the Domain API")
	}
	// Signing in again works: the identity server's own session ended
	// too, so its form shows.
	st.requireStatus(st.nav(chromedp.Click(`#sign-in`)), 200, "Sign in again")
	st.requireStatus(st.signIn(alice, alicePassword), 200, "the sign-in form")
	st.waitCustomers()
	sc.check(site + "/bff/api/Crm_Sales_Customers")
}

// TestSPAThreeTabsOneSession: three tabs of one browser use one session,
// and so one ERP.net session (one license), however many calls they make.
func TestSPAThreeTabsOneSession(t *testing.T) {
	b, sc, st, idp := newSPA(t)
	tabs := []*spaTab{st}
	for range 2 {
		ctx := b.newTab()
		sc.watch(ctx)
		nt := &spaTab{b.tab(ctx), st.site}
		nt.requireStatus(nt.nav(chromedp.Navigate(st.site+"/")), 200, "the app in another tab")
		nt.waitCustomers()
		tabs = append(tabs, nt)
	}
	var logout string
	for i, tb := range tabs {
		tb.do(chromedp.Click(`#reload`))
		tb.waitCustomers()
		status, body := tb.fetch("/bff/user", withCSRF)
		var u struct {
			LogoutURL string `json:"logoutUrl"`
		}
		if status != 200 || json.Unmarshal([]byte(body), &u) != nil {
			t.Fatalf("tab %d /bff/user: %d %s", i+1, status, body)
		}
		if logout == "" {
			logout = u.LogoutURL
		} else if u.LogoutURL != logout {
			t.Fatalf("tab %d has another session", i+1)
		}
	}
	if n := idp.SessionsOpened(); n != 1 {
		t.Fatalf("ERP.net sessions opened by three tabs: %d, want 1", n)
	}
	if n := idp.LicensesInUse(); n != 1 {
		t.Fatalf("licenses in use: %d, want 1", n)
	}
	if n := idp.Requests("token"); n != 1 {
		t.Fatalf("token requests: %d, want 1", n)
	}
	sc.check(st.site + "/bff/api/Crm_Sales_Customers")
}
