package bff

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/erpnetgo/auth/authcode"
	"github.com/erpnetgo/auth/erpnettest"
)

// upstream is a Domain API stand-in that records what reaches it; its
// handler decides the answer.
type upstream struct {
	srv  *httptest.Server
	mu   sync.Mutex
	reqs []seen
	h    http.HandlerFunc
}

type seen struct {
	method, rawPath, rawQuery, host, body string
	header                                http.Header
}

func newUpstream(t *testing.T, h http.HandlerFunc) *upstream {
	u := &upstream{h: h}
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		u.mu.Lock()
		u.reqs = append(u.reqs, seen{r.Method, r.URL.EscapedPath(), r.URL.RawQuery, r.Host, string(b), r.Header.Clone()})
		u.mu.Unlock()
		if u.h != nil {
			u.h(w, r)
		}
	}))
	t.Cleanup(u.srv.Close)
	return u
}

func (u *upstream) seen() []seen {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]seen(nil), u.reqs...)
}

// withUpstream makes up the Client's Domain API, at <up>/odata/.
func withUpstream(up *upstream) func(*setup) {
	return withClient(func(c *authcode.Config) { c.DomainAPI = up.srv.URL + "/odata/" })
}

func TestPathRules(t *testing.T) {
	for _, tc := range []struct {
		tail string
		ok   bool
	}{
		{"", true},
		{"Crm_Sales_Customers", true},
		{"Crm_Sales_Customers/", true},
		{"Crm_Sales_Customers(guid'0b8c2e0e-4f1a-4c6e-9d3a-2b8f0f0f0f0f')/Name", true},
		{"$metadata", true},
		{"General_Contacts%28%27a%20b%27%29", true},
		{"a.b/c..d/...x", true},
		{"..", false},
		{"../x", false},
		{"a/../../x", false},
		{"a/./b", false},
		{".", false},
		{"%2e%2e/x", false},
		{"%2E%2E/x", false},
		{"..%2fx", false},
		{"%2e%2e%2fx", false},
		{"%252e%252e%252fx", false},
		{"%25252e%25252e", false},
		{".%2e", false},
		{"..;/x", false},
		{".. /x", false},
		{"...", false},
		{"a//b", false},
		{"/x", false},
		{"%2f%2fevil.example/x", false},
		{"a\\..\\b", false},
		{"a%5c..%5cb", false},
		{"@evil.example", false},
		{"x%40evil.example", false},
		{"https:evil.example", false},
		{"https:%2f%2fevil.example", false},
		{"javascript:alert(1)", false},
		{"a%00b", false},
		{"a%0d%0aHost:%20evil", false},
		{"a%zz", false},
		{"\uff0e\uff0e/x", false},
		{"a\uff0fb", false},
	} {
		err := checkPath(tc.tail)
		assert.Equal(t, tc.ok, err == nil, "%q: %v", tc.tail, err)
	}
}

// rawRequest sends a request line as written (no client-side cleaning)
// and returns the status and body.
func rawRequest(t *testing.T, addr, method, target string, hdr ...string) (int, string) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer conn.Close()
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n", method, target, addr)
	for i := 0; i+1 < len(hdr); i += 2 {
		fmt.Fprintf(&b, "%s: %s\r\n", hdr[i], hdr[i+1])
	}
	b.WriteString("\r\n")
	_, err = io.WriteString(conn, b.String())
	require.NoError(t, err)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// Path escapes sent as written reach neither the Domain API nor anything
// else; the BFF answers 400 (or the router cleans the path and redirects
// away from /bff/api/).
func TestPathEscapesAreRefused(t *testing.T) {
	up := newUpstream(t, nil)
	w := newWorld(t, withUpstream(up))
	b := w.signedIn()
	// The cookie, as the browser would send it.
	u, _ := url.Parse(w.app.URL)
	var cookie string
	for _, c := range b.hc.Jar.Cookies(u) {
		cookie += c.Name + "=" + c.Value + "; "
	}
	addr := u.Host
	for _, target := range []string{
		"/bff/api/%2e%2e/%2e%2e/id/connect/token",
		"/bff/api/..%2f..%2fid%2fconnect%2ftoken",
		"/bff/api//evil.example/x",
		"/bff/api/%2f%2fevil.example/x",
		"/bff/api/@evil.example/x",
		"/bff/api/a%5c..%5c..%5cx",
		"/bff/api/https:%2f%2fevil.example/x",
		"/bff/api/%252e%252e/x",
		"http://evil.example/bff/api/Crm_Sales_Customers",
	} {
		status, body := rawRequest(t, addr, "GET", target, "Cookie", cookie, "X-CSRF", "1")
		assert.Contains(t, []int{http.StatusBadRequest, http.StatusMovedPermanently, http.StatusTemporaryRedirect}, status, "%s: %s", target, body)
		if status == http.StatusBadRequest {
			assert.Contains(t, body, `"invalid_path"`, target)
		}
	}
	// The handler on its own (a router that does not clean paths).
	for _, target := range []string{"/bff/api/../x", "/bff/api/a/../../x", "/bff/api//x", "/bff/api/a\\b"} {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.URL = &url.URL{Path: target}
		req.Header.Set("X-CSRF", "1")
		w.bff.ServeHTTP(rec, req)
		assert.Equal(t, http.StatusBadRequest, rec.Code, target)
	}
	assert.Empty(t, up.seen(), "nothing forwarded")
}

func TestMethodAllowlist(t *testing.T) {
	up := newUpstream(t, nil)
	w := newWorld(t, withUpstream(up))
	b := w.signedIn()
	for _, m := range []string{"PROPFIND", "OPTIONS", "MERGE", "CONNECT"} {
		r := b.do(m, "/bff/api/Crm_Sales_Customers", nil, "X-CSRF", "1")
		assert.Equal(t, http.StatusMethodNotAllowed, r.status, m)
		assert.Equal(t, "GET, HEAD, POST, PUT, PATCH, DELETE", r.header.Get("Allow"))
	}
	status, _ := rawRequest(t, strings.TrimPrefix(w.app.URL, "http://"), "TRACE", "/bff/api/x", "X-CSRF", "1")
	assert.Equal(t, http.StatusMethodNotAllowed, status)
	assert.Empty(t, up.seen())
	for _, m := range []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"} {
		r := b.do(m, "/bff/api/Crm_Sales_Customers", nil, "X-CSRF", "1")
		assert.Equal(t, http.StatusOK, r.status, m)
	}
	assert.Len(t, up.seen(), 6)

	// Config.Methods replaces the list.
	w2 := newWorld(t, withUpstream(up), withBFF(func(c *Config) { c.Methods = []string{"GET", "MERGE"} }))
	b2 := w2.signedIn()
	assert.Equal(t, http.StatusOK, b2.do("MERGE", "/bff/api/x", nil, "X-CSRF", "1").status)
	assert.Equal(t, http.StatusMethodNotAllowed, b2.do("DELETE", "/bff/api/x", nil, "X-CSRF", "1").status)
}

// The browser's credentials and the BFF's own header never travel on;
// the user's token does; the Domain API's cookies never come back.
func TestHeaderRules(t *testing.T) {
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Set-Cookie", "ASP.NET_SessionId=abc; path=/")
		w.Header().Set("OData-Version", "4.0")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		_, _ = io.WriteString(w, `{"ok":true}`)
	})
	w := newWorld(t, withUpstream(up))
	b := w.signedIn()
	r := b.do(http.MethodPost, "/bff/api/Crm_Sales_Customers?$select=Name", strings.NewReader(`{"Name":"x"}`),
		"X-CSRF", "1", "Content-Type", "application/json", "Authorization", "Basic eDp5", "X-Api-Key", "enrt_"+strings.Repeat("A", 64),
		"Api-Key", "other", "Origin", w.app.URL, "Referer", w.app.URL+"/customers", "Sec-Fetch-Site", "same-origin",
		"Sec-Fetch-Mode", "cors", "Prefer", "return=representation", "X-Forwarded-For", "10.0.0.1",
		"X-HTTP-Method-Override", "DELETE", "X-HTTP-Method", "DELETE", "X-Method-Override", "DELETE")
	require.Equal(t, http.StatusCreated, r.status, r.body)
	assert.Equal(t, `{"ok":true}`, r.body)
	assert.Empty(t, r.header.Values("Set-Cookie"), "the Domain API's cookies stay out of the app's origin")
	assert.Equal(t, "4.0", r.header.Get("OData-Version"))
	assert.Equal(t, "nosniff", r.header.Get("X-Content-Type-Options"))
	got := up.seen()
	require.Len(t, got, 1)
	s := got[0]
	assert.Equal(t, "POST", s.method)
	assert.Equal(t, "/odata/Crm_Sales_Customers", s.rawPath)
	assert.Equal(t, "$select=Name", s.rawQuery)
	assert.Equal(t, strings.TrimPrefix(up.srv.URL, "http://"), s.host)
	assert.Equal(t, `{"Name":"x"}`, s.body)
	assert.True(t, strings.HasPrefix(s.header.Get("Authorization"), "Bearer eyJ"), "the user's access token")
	for _, k := range []string{"Cookie", "X-Api-Key", "Api-Key", "X-Csrf", "Origin", "Referer", "Sec-Fetch-Site", "Sec-Fetch-Mode", "X-Forwarded-For",
		"X-Http-Method-Override", "X-Http-Method", "X-Method-Override"} { // a method override would bypass the allowlist
		assert.Empty(t, s.header.Values(k), k)
	}
	assert.Equal(t, "return=representation", s.header.Get("Prefer"))
	assert.Equal(t, "application/json", s.header.Get("Content-Type"))
	w.requireNoTokens()
}

func TestRedirectsAndErrors(t *testing.T) {
	var mode string
	var mu sync.Mutex
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		m := mode
		mu.Unlock()
		switch m {
		case "inside":
			http.Redirect(w, r, "/odata/General_Contacts?$top=1", http.StatusFound)
		case "outside":
			http.Redirect(w, r, "https://elsewhere.example/x", http.StatusFound)
		case "500":
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = io.WriteString(w, `{"error":{"code":"","message":"Business rule failed"}}`)
		}
	})
	w := newWorld(t, withUpstream(up))
	b := w.signedIn()
	set := func(m string) { mu.Lock(); mode = m; mu.Unlock() }

	set("inside")
	r := b.get("/bff/api/Crm_Sales_Customers")
	assert.Equal(t, http.StatusFound, r.status)
	assert.Equal(t, "/bff/api/General_Contacts?$top=1", r.header.Get("Location"), "a redirect within the Domain API stays with the BFF")
	set("outside")
	r = b.get("/bff/api/Crm_Sales_Customers")
	assert.Equal(t, "https://elsewhere.example/x", r.header.Get("Location"))
	set("500")
	r = b.get("/bff/api/Crm_Sales_Customers")
	assert.Equal(t, http.StatusInternalServerError, r.status, "business errors come back as they are")
	assert.Contains(t, r.body, "Business rule failed")

	up.srv.Close() // the Domain API is down
	r = b.get("/bff/api/Crm_Sales_Customers")
	assert.Equal(t, http.StatusBadGateway, r.status)
	assert.Equal(t, "bad_gateway", r.json(t)["error"])
	assert.NotContains(t, r.body, "dial")
	assert.NotContains(t, r.body, "127.0.0.1")
}

// The identity server is down when a refresh is due: 503, and the user
// stays signed in.
func TestIdentityServerDownAtRefresh(t *testing.T) {
	w := newWorld(t)
	b := w.signedIn()
	w.advance(2 * time.Hour)
	w.idp.InjectFault("token", erpnettest.Fault{Status: http.StatusServiceUnavailable, Times: 20})
	r := b.get("/bff/api/Crm_Sales_Customers")
	assert.Equal(t, http.StatusServiceUnavailable, r.status, r.body)
	assert.Equal(t, "temporarily_unavailable", r.json(t)["error"])
	w.idp.ClearFaults()
	r = b.get("/bff/api/Crm_Sales_Customers")
	assert.Equal(t, http.StatusOK, r.status, r.body)
}

// The response streams: the browser reads the first part before the
// Domain API has written the second.
func TestResponseStreams(t *testing.T) {
	release := make(chan struct{})
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "first\n")
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		_, _ = io.WriteString(w, "second\n")
	})
	w := newWorld(t, withUpstream(up))
	b := w.signedIn()
	req, _ := http.NewRequest(http.MethodGet, w.app.URL+"/bff/api/big", nil)
	req.Header.Set("X-CSRF", "1")
	resp, err := b.hc.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	line, err := br.ReadString('\n')
	require.NoError(t, err)
	assert.Equal(t, "first\n", line, "read before the Domain API wrote the rest")
	close(release)
	rest, err := io.ReadAll(br)
	require.NoError(t, err)
	assert.Equal(t, "second\n", string(rest))
}
