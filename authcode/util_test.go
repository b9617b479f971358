package authcode

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"testing"

	"github.com/stretchr/testify/require"
)

func newRecorder() *httptest.ResponseRecorder { return httptest.NewRecorder() }

func newRequest(method, target string, body io.Reader) *http.Request {
	r := httptest.NewRequest(method, target, body)
	r.Header.Set("Accept", "text/html")
	return r
}

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}

// pageReference returns the reference an error page shows ("Reference:
// <ref>"), failing the test when there is none.
func pageReference(t testing.TB, body string) string {
	t.Helper()
	m := refRE.FindStringSubmatch(body)
	require.NotNil(t, m, "the page shows a reference: %s", body)
	return m[1]
}

var refRE = regexp.MustCompile(`Reference: ([a-z0-9]+)<`)
