package bff_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/erpnetgo/auth/authcode"
	"github.com/erpnetgo/auth/bff"
	"github.com/erpnetgo/auth/erpnettest"
)

// An app serving a single-page app and its backend-for-frontend, against
// the test identity server; a user signs in and the SPA's scripts ask who
// they are and list customers, all with the anti-forgery header.
func Example() {
	idp, err := erpnettest.Start(erpnettest.Config{})
	if err != nil {
		panic(err)
	}
	defer idp.Close()

	mux := http.NewServeMux()
	site := httptest.NewServer(mux)
	defer site.Close()
	ac, err := authcode.New(authcode.Config{
		Authority:             idp.URL(),
		ClientID:              erpnettest.Demo.WebAppID,
		ClientSecret:          erpnettest.Demo.WebAppSecret,
		RedirectURL:           site.URL + "/callback",
		PostLogoutRedirectURL: site.URL + "/",
		Keys:                  [][]byte{make([]byte, 32)}, // use 32 random bytes, the same on every replica
	})
	if err != nil {
		panic(err)
	}
	defer ac.Close()
	b, err := bff.New(bff.Config{Client: ac, Claims: []string{"email"}})
	if err != nil {
		panic(err)
	}
	mux.Handle("/callback", ac.Callback())
	mux.Handle("/bff/", b)
	mux.Handle("/", http.NotFoundHandler()) // the SPA's files

	// The browser signs in through /bff/login.
	browser, err := idp.SignIn(site.URL+"/bff/login?returnUrl=/", erpnettest.Demo.Alice)
	if err != nil {
		panic(err)
	}
	// The SPA's scripts.
	call := func(path string, v any) int {
		req, _ := http.NewRequest(http.MethodGet, site.URL+path, nil)
		req.Header.Set("X-CSRF", "1")
		resp, err := browser.Do(req)
		if err != nil {
			panic(err)
		}
		defer resp.Body.Close()
		_ = json.NewDecoder(resp.Body).Decode(v)
		return resp.StatusCode
	}
	var user struct {
		Sub, Name, Email string
		LogoutURL        string `json:"logoutUrl"`
	}
	fmt.Println(call("/bff/user", &user), user.Sub, user.Name, user.Email)
	var customers struct{ Value []struct{ Name string } }
	fmt.Println(call("/bff/api/Crm_Sales_Customers?$top=2", &customers), len(customers.Value), customers.Value[0].Name)
	// Output:
	// 200 alice Alice Anderson alice@example.com
	// 200 2 Acme Manufacturing Ltd
}
