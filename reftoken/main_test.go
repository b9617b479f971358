package reftoken_test

import (
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/erpnetgo/auth/internal/testutil"
)

func TestMain(m *testing.M) { testutil.VerifyNoLeaks(m) }

// sent is one request as it left the reftoken Transport.
type sent struct {
	Method, URL string
	Header      http.Header
	UserInfo    bool
}

// recorder is a base RoundTripper that records what the reftoken Transport hands it and checks
// that no request carries two credentials.
type recorder struct {
	t    testing.TB
	next *http.Transport
	mu   sync.Mutex
	reqs []sent
}

func newRecorder(t testing.TB) *recorder {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	t.Cleanup(tr.CloseIdleConnections)
	return &recorder{t: t, next: tr}
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	creds := 0
	for k := range req.Header {
		switch strings.ToLower(k) {
		case "authorization", "x-api-key", "api-key":
			creds++
		}
	}
	if creds > 1 {
		r.t.Errorf("request to %s carries %d credential headers", req.URL.Redacted(), creds)
	}
	r.mu.Lock()
	r.reqs = append(r.reqs, sent{Method: req.Method, URL: req.URL.String(), Header: req.Header.Clone(), UserInfo: req.URL.User != nil})
	r.mu.Unlock()
	return r.next.RoundTrip(req)
}

func (r *recorder) CloseIdleConnections() { r.next.CloseIdleConnections() }

func (r *recorder) sent() []sent {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]sent(nil), r.reqs...)
}

func (r *recorder) last() sent {
	s := r.sent()
	if len(s) == 0 {
		r.t.Fatal("no request was sent")
	}
	return s[len(s)-1]
}

// hexToken is a well-formed token used where no server is involved.
const hexToken = "enrt_0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF"

// assertNoSecret fails when out contains the token, its hex body, or the body in lower case.
func assertNoSecret(t testing.TB, what, out, token string) {
	t.Helper()
	body := strings.TrimPrefix(token, "enrt_")
	for _, s := range []string{token, body, strings.ToLower(body), body[:16], body[len(body)-16:]} {
		if strings.Contains(out, s) {
			t.Errorf("%s leaks the token: %q", what, out)
			return
		}
	}
}
