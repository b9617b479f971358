package instances_test

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"

	"github.com/erpnetgo/auth/authcode"
	"github.com/erpnetgo/auth/erpnettest"
	"github.com/erpnetgo/auth/instances"
)

// A vendor's app serves two ERP.net instances: one Trusted Application
// registration on each (the same client_id, a secret each), users of both
// signing in through one callback, and each instance's System User for
// background work. Local ERP.net stand-ins (package erpnettest) play the
// instances here.
func Example() {
	const clientID = "com.example/vendor"
	start := func(secret string) *erpnettest.Server {
		srv, err := erpnettest.Start(erpnettest.Config{Apps: []erpnettest.App{{
			ID: clientID, Secret: secret, SystemUser: "vendor-system",
			RedirectURIs: []string{"http://127.0.0.1/callback"},
		}}})
		if err != nil {
			log.Fatal(err)
		}
		return srv
	}
	acme, globex := start("acme-secret"), start("globex-secret")
	defer acme.Close()
	defer globex.Close()

	app := httptest.NewUnstartedServer(nil)
	reg, err := instances.New(instances.Config{
		ClientID:    clientID,
		RedirectURL: "http://" + app.Listener.Addr().String() + "/callback",
		Keys:        [][]byte{[]byte("0123456789abcdef0123456789abcdef")}, // from a secret store in real life
	})
	if err != nil {
		log.Fatal(err)
	}
	defer reg.Close()
	ctx := context.Background()
	// At start-up, from the app's own list; later through Marketplace
	// events, or Add and Remove at any time.
	_ = reg.Add(ctx, acme.URL(), "acme-secret")
	_ = reg.Add(ctx, globex.URL(), "globex-secret")

	mux := http.NewServeMux()
	mux.Handle("/signin", reg.SignIn())     // /signin?instance=<root>
	mux.Handle("/callback", reg.Callback()) // every instance's sign-ins, and Marketplace events
	mux.Handle("/me", reg.RequireUser(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := authcode.SessionFromContext(r.Context())
		fmt.Fprintf(w, "%s at %t", s.Subject, s.Issuer == acme.Authority())
	})))
	app.Config.Handler = mux
	app.Start()
	defer app.Close()

	// alice signs in at acme (erpnettest's SignIn plays her browser).
	browser, err := acme.SignIn(app.URL+"/signin?instance="+acme.URL(), "alice")
	if err != nil {
		log.Fatal(err)
	}
	resp, err := browser.Get(app.URL + "/me")
	if err != nil {
		log.Fatal(err)
	}
	var who, atAcme string
	fmt.Fscanf(resp.Body, "%s at %s", &who, &atAcme)
	resp.Body.Close()
	fmt.Println("signed in:", who, "at acme:", atAcme)

	// Background work at each instance, as its System User.
	for _, srv := range []*erpnettest.Server{acme, globex} {
		src, err := reg.Service(ctx, srv.URL())
		if err != nil {
			log.Fatal(err)
		}
		api, _ := src.DomainAPI(ctx)
		resp, err := src.Client(ctx).Get(api + "Crm_Sales_Customers?$top=1")
		if err != nil {
			log.Fatal(err)
		}
		resp.Body.Close()
		fmt.Println(resp.Status, resp.Header.Get("X-Erpnet-Caller"))
	}
	// Output:
	// signed in: alice at acme: true
	// 200 OK system:vendor-system
	// 200 OK system:vendor-system
}
