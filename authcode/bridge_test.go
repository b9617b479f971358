package authcode_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/erpnetgo/auth/authcode"
	"github.com/erpnetgo/auth/erpnettest"
)

// Two Clients of two identity servers sharing a cookie name and keys (as
// a multi-instance app's do): a sign-in attempt started by one is never
// opened by the other, so the other never redeems a code for it, even
// when no iss parameter gives the mix-up away.
func TestAttemptBoundToAuthority(t *testing.T) {
	a := erpnettest.NewServer(t, erpnettest.Config{OmitIss: true})
	b := erpnettest.NewServer(t, erpnettest.Config{OmitIss: true})
	keys := [][]byte{[]byte("0123456789abcdef0123456789abcdef")}
	newClient := func(idp *erpnettest.Server) *authcode.Client {
		c, err := authcode.New(authcode.Config{
			Authority: idp.URL(), ClientID: erpnettest.Demo.WebAppID, ClientSecret: erpnettest.Demo.WebAppSecret,
			RedirectURL: "http://127.0.0.1:8080/callback", Keys: keys,
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	ca, cb := newClient(a), newClient(b)
	rec := httptest.NewRecorder()
	ca.SignIn().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "http://127.0.0.1:8080/signin", nil))
	loc, err := url.Parse(rec.Header().Get("Location"))
	if rec.Code != http.StatusFound || err != nil {
		t.Fatalf("sign-in: %d %q", rec.Code, rec.Header().Get("Location"))
	}
	req := httptest.NewRequest(http.MethodGet, "http://127.0.0.1:8080/callback?"+url.Values{
		"code": {"a-code"}, "state": {loc.Query().Get("state")}}.Encode(), nil)
	for _, ck := range rec.Result().Cookies() {
		req.AddCookie(ck)
	}
	rec = httptest.NewRecorder()
	cb.Callback().ServeHTTP(rec, req)
	if rec.Code != http.StatusBadRequest {
		t.Fatalf("A's attempt at B's callback: %d; want 400", rec.Code)
	}
	if n := b.Requests("token"); n != 0 {
		t.Fatalf("B redeemed a code for A's attempt (%d token requests)", n)
	}
}
