package authcode_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"

	"github.com/erpnetgo/auth/authcode"
	"github.com/erpnetgo/auth/erpnettest"
)

// A command-line app signs the user in through the browser and calls the
// Domain API as that user. Here a local ERP.net stand-in (package
// erpnettest) plays the instance, and its SignIn plays the browser: it
// fills in the sign-in form as alice and follows the redirect back to the
// app's loopback listener.
func Example() {
	idp, err := erpnettest.Start(erpnettest.Config{}) // a real app uses its instance URL
	if err != nil {
		log.Fatal(err)
	}
	defer idp.Close()

	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr}

	dir, err := os.MkdirTemp("", "example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	c, err := authcode.New(authcode.Config{
		Authority:  idp.URL(),
		ClientID:   erpnettest.Demo.CLIID, // a public client: no secret
		HTTPClient: hc,
		// The session is kept in a file (mode 0600): the next run reuses
		// it instead of opening the browser.
		Store: &authcode.FileStore{Path: filepath.Join(dir, "session.json")},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	ctx := context.Background()
	s, err := c.LoopbackSignIn(ctx, authcode.LoopbackOptions{
		OpenBrowser: func(u string) error { // nil opens the system browser
			_, err := idp.SignIn(u, erpnettest.Demo.Alice)
			return err
		},
		Output: io.Discard, // where "open this address" is printed; nil means os.Stderr
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("signed in as", s.Subject)

	resp, err := c.UserClient(ctx, s).Get(idp.DomainAPI() + "Crm_Sales_Customers?$top=1")
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
// Here a local ERP.net stand-in (package erpnettest) plays the instance
// and signs alice in through its form; a real app gives its instance URL
// (e.g. https://demodb.my.erp.net), its Trusted Application and its public
// callback URL instead.
func ExampleClient_RequireUser() {
	idp, err := erpnettest.Start(erpnettest.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer idp.Close()
	mux := http.NewServeMux()
	app := httptest.NewServer(mux) // the demo application accepts 127.0.0.1:<any port>/callback
	defer app.Close()

	c, err := authcode.New(authcode.Config{
		Authority:    idp.URL(),
		ClientID:     erpnettest.Demo.WebAppID,
		ClientSecret: erpnettest.Demo.WebAppSecret, // os.Getenv("ERPNET_CLIENT_SECRET")
		RedirectURL:  app.URL + "/callback",
		// Keys: [][]byte{key}, // the same 32 random bytes on every replica
	})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	mux.Handle("/signin", c.SignIn())
	mux.Handle("/callback", c.Callback())
	mux.Handle("POST /signout", c.SignOut())
	mux.Handle("/customers", c.RequireUser(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := authcode.SessionFromContext(r.Context())
		root, err := c.DomainAPI(r.Context()) // from ERP.net auto-discovery
		if err != nil {
			http.Error(w, "the ERP.net instance cannot be reached", http.StatusBadGateway)
			return
		}
		resp, err := c.UserClient(r.Context(), s).Get(root + "Crm_Sales_Customers?$top=10")
		if err != nil {
			http.Error(w, "the Domain API cannot be reached", http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		fmt.Fprintf(w, "%s: customers read as %s", s.Name, resp.Header.Get("X-Erpnet-Caller"))
	})))

	browser, err := idp.SignIn(app.URL+"/customers", erpnettest.Demo.Alice)
	if err != nil {
		log.Fatal(err)
	}
	resp, err := browser.Get(app.URL + "/customers")
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	page, _ := io.ReadAll(resp.Body)
	fmt.Println(string(page))
	// Output: Alice Anderson: customers read as user:alice
}
