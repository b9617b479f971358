package authcode_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"

	"github.com/erpnetgo/auth/authcode"
	"github.com/erpnetgo/auth/internal/devserver"
)

// A command-line app signs the user in through the browser and calls the
// Domain API as that user. Here the local development identity server signs
// alice in without a form, and a plain HTTP GET stands in for the browser.
func Example() {
	idp, err := devserver.Start(devserver.Demo())
	if err != nil {
		log.Fatal(err)
	}
	defer idp.Close()
	idp.SetAutoSignIn(devserver.DemoAlice)

	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr}

	c, err := authcode.New(authcode.Config{
		Authority:  idp.URL(),
		ClientID:   devserver.DemoCLIID, // a public client: no secret
		HTTPClient: hc,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	ctx := context.Background()
	res, err := c.LoopbackSignIn(ctx, authcode.LoopbackOptions{
		OpenBrowser: func(u string) error {
			resp, err := hc.Get(u) // follows the redirect to the loopback listener
			if err == nil {
				resp.Body.Close()
			}
			return err
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("signed in as", res.Session.Subject)

	resp, err := c.UserClient(ctx, res.Session).Get(idp.URL() + "/api/domain/odata/Crm_Sales_Customers?$top=1")
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	fmt.Println(resp.Status, "as", resp.Header.Get("X-Erpnet-Caller"))
	// Output:
	// signed in as alice
	// 200 OK as user:alice
}

// A web app mounts the handlers and protects its pages with RequireUser.
func ExampleClient_RequireUser() {
	c, err := authcode.New(authcode.Config{
		Authority:    "https://demodb.my.erp.net",
		ClientID:     "com.example/webapp",
		ClientSecret: os.Getenv("ERPNET_CLIENT_SECRET"),
		RedirectURL:  "https://app.example.com/callback",
		// CookieKeys: [][]byte{key}, // the same 32 random bytes on every replica
	})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	mux := http.NewServeMux()
	mux.Handle("/signin", c.SignIn())
	mux.Handle("/callback", c.Callback())
	mux.Handle("POST /signout", c.SignOut())
	mux.Handle("/customers", c.RequireUser(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := authcode.SessionFromContext(r.Context())
		resp, err := c.UserClient(r.Context(), s).Get("https://demodb.my.erp.net/api/domain/odata/Crm_Sales_Customers?$top=10")
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.Copy(w, resp.Body)
	})))
	_ = http.ListenAndServe // serve mux
}
