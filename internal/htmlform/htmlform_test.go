package htmlform

import (
	"context"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/erpnetgo/auth/internal/testutil"
)

func TestMain(m *testing.M) { testutil.VerifyNoLeaks(m) }

func TestParse(t *testing.T) {
	page := []byte(`<form method="get" action="/search"><input name="q"></form>
<FORM METHOD='POST' action="/login?x=1&amp;y=2"><input type="hidden" name="csrf" value="a&amp;b">
<input name=user value=bob><input type="password" name="pw"><input type="checkbox" name="c" value="on">
<input type="submit" name="go" value="Go"></FORM><form method="post" action="/second"></form>`)
	f := Parse(page)
	if f == nil || f.Action != "/login?x=1&y=2" {
		t.Fatalf("form: %+v", f)
	}
	want := url.Values{"csrf": {"a&b"}, "user": {"bob"}, "pw": {""}}
	if f.Values.Encode() != want.Encode() {
		t.Errorf("values %v, want %v (checkbox and submit left out)", f.Values, want)
	}
	if Parse([]byte(`<p>no form</p>`)) != nil {
		t.Error("a page without a POST form has a form")
	}
	if got := Text([]byte("<style>p{}</style><p>Hello,\n  <b>world</b> &amp; all</p>")); got != "Hello, world & all" {
		t.Errorf("Text = %q", got)
	}
}

// Walk follows redirects, posts the form after fill, stops where stop says and keeps
// queries out of its errors.
func TestWalk(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/start", func(w http.ResponseWriter, r *http.Request) {
		http.SetCookie(w, &http.Cookie{Name: "c", Value: "1"})
		http.Redirect(w, r, "/form", http.StatusFound)
	})
	mux.HandleFunc("GET /form", func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`<form method="post" action="/form"><input type="hidden" name="h" value="v"></form>`))
	})
	mux.HandleFunc("POST /form", func(w http.ResponseWriter, r *http.Request) {
		if c, err := r.Cookie("c"); err != nil || c.Value != "1" || r.PostFormValue("h") != "v" || r.PostFormValue("user") != "bob" {
			http.Error(w, "bad post", http.StatusBadRequest)
			return
		}
		http.Redirect(w, r, "https://app.example/cb?code=secret-code", http.StatusFound)
	})
	mux.HandleFunc("/broken", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "down", http.StatusServiceUnavailable) })
	ts := httptest.NewServer(mux)
	defer ts.Close()
	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	defer hc.CloseIdleConnections()
	offSite := func(_, to *url.URL) bool { return to.Host != strings.TrimPrefix(ts.URL, "http://") }
	fills := 0
	end, _, err := Walk(context.Background(), hc, ts.URL+"/start", offSite, func(f *Form) error {
		fills++
		f.Values.Set("user", "bob")
		return nil
	})
	if err != nil || end == nil || end.Query().Get("code") != "secret-code" || fills != 1 {
		t.Fatalf("Walk = %v, %v after %d fills", end, err, fills)
	}
	_, _, err = Walk(context.Background(), hc, ts.URL+"/broken?code=secret-code", offSite, nil)
	if err == nil || !strings.Contains(err.Error(), "503") || strings.Contains(err.Error(), "secret-code") {
		t.Errorf("error %v: want the status, without the query", err)
	}
}
