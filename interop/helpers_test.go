package interop_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/erpnetgo/auth/internal/testutil"
)

func TestMain(m *testing.M) { testutil.VerifyNoLeaks(m) }

// exchange is one request to the identity server, as the SDK sent it, and
// the JSON answer.
type exchange struct {
	Path   string
	Form   url.Values
	Header http.Header
	Status int
	Resp   map[string]any
}

// recorder is the identity-server transport of the SDK under test: it
// records every request and response.
type recorder struct {
	base http.RoundTripper
	mu   sync.Mutex
	log  []exchange
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	ex := exchange{Path: req.URL.Path, Header: req.Header.Clone()}
	if req.Body != nil {
		b, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, err
		}
		ex.Form, _ = url.ParseQuery(string(b))
		req.Body = io.NopCloser(bytes.NewReader(b))
	}
	resp, err := r.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(b))
	ex.Status = resp.StatusCode
	_ = json.Unmarshal(b, &ex.Resp)
	r.mu.Lock()
	r.log = append(r.log, ex)
	r.mu.Unlock()
	return resp, nil
}

func (r *recorder) all() []exchange {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]exchange(nil), r.log...)
}

// grants returns the token requests with grant_type g.
func (r *recorder) grants(g string) []exchange {
	var out []exchange
	for _, e := range r.all() {
		if e.Form.Get("grant_type") == g {
			out = append(out, e)
		}
	}
	return out
}

// to returns the requests to paths ending in suffix.
func (r *recorder) to(suffix string) []exchange {
	var out []exchange
	for _, e := range r.all() {
		if strings.HasSuffix(e.Path, suffix) {
			out = append(out, e)
		}
	}
	return out
}

// str returns a string field of a JSON answer.
func (e exchange) str(k string) string { s, _ := e.Resp[k].(string); return s }

// assertNoRedemptionTwice fails if the SDK presented one refresh token in
// two refresh grants.
func assertNoRedemptionTwice(t *testing.T, rec *recorder) {
	t.Helper()
	seen := map[string]bool{}
	for _, g := range rec.grants("refresh_token") {
		rt := g.Form.Get("refresh_token")
		require.NotEmpty(t, rt)
		require.False(t, seen[rt], "a refresh token was redeemed twice")
		seen[rt] = true
	}
}

// browser is a user agent for the app: a cookie jar, no redirects followed.
type browser struct {
	t  *testing.T
	hc *http.Client
}

func newBrowser(t *testing.T) *browser {
	jar, _ := cookiejar.New(nil)
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &browser{t: t, hc: &http.Client{Jar: jar, Transport: tr, Timeout: 20 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

type response struct {
	*http.Response
	body string
}

func (b *browser) do(method, u string) *response {
	b.t.Helper()
	req, err := http.NewRequest(method, u, nil)
	require.NoError(b.t, err)
	req.Header.Set("Accept", "text/html,*/*;q=0.8")
	resp, err := b.hc.Do(req)
	require.NoError(b.t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(b.t, err)
	return &response{Response: resp, body: string(body)}
}

func (b *browser) get(u string) *response { b.t.Helper(); return b.do(http.MethodGet, u) }

// request returns a request to u carrying the browser's cookies, for
// Client.UserSession.
func (b *browser) request(u string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, u, nil)
	pu, _ := url.Parse(u)
	for _, c := range b.hc.Jar.Cookies(pu) {
		r.AddCookie(c)
	}
	return r
}

// discoveryDoc fetches the identity server's discovery document.
func discoveryDoc(t *testing.T, hc *http.Client, issuer string) map[string]any {
	t.Helper()
	resp, err := hc.Get(issuer + "/.well-known/openid-configuration")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var d map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&d))
	return d
}

// redeem presents refreshToken to tokenURL directly (not through the SDK)
// and returns the HTTP status and OAuth error code.
func redeem(ctx context.Context, t *testing.T, hc *http.Client, tokenURL, clientID, secret, refreshToken string) (int, string) {
	t.Helper()
	form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refreshToken}}
	if secret == "" {
		form.Set("client_id", clientID)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, tokenURL, strings.NewReader(form.Encode()))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if secret != "" {
		req.SetBasicAuth(url.QueryEscape(clientID), url.QueryEscape(secret))
	}
	resp, err := hc.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var body struct {
		Error string `json:"error"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body.Error
}
