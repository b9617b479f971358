package hybrid_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"sync/atomic"

	"github.com/erpnetgo/auth/erpnettest"
	"github.com/erpnetgo/auth/hybrid"
)

// The examples run against erpnettest, a local ERP.net stand-in whose demo
// Trusted Application (com.example/webapp) serves both flows: users sign
// in through it, and its System User is "portal-system".

// devPortal is the ERP.net stand-in plus an (initially empty) web server for
// the portal; the demo application accepts http://127.0.0.1:<any
// port>/callback as its redirect URI.
type devPortal struct {
	idp     *erpnettest.Server
	srv     *httptest.Server
	handler atomic.Pointer[http.Handler]
}

func startDevPortal() *devPortal {
	idp, err := erpnettest.Start(erpnettest.Config{})
	if err != nil {
		log.Fatal(err)
	}
	p := &devPortal{idp: idp}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if h := p.handler.Load(); h != nil {
			(*h).ServeHTTP(w, r)
		}
	}))
	return p
}

func (p *devPortal) serve(h http.Handler) { p.handler.Store(&h) }

func (p *devPortal) Close() {
	p.srv.Close()
	p.idp.Close()
}

// signedIn signs user in to the portal (erpnettest fills in the identity
// server's sign-in form) and returns a client with the session cookie.
func (p *devPortal) signedIn(user string) *http.Client {
	b, err := p.idp.SignIn(p.srv.URL+"/signin", user)
	if err != nil {
		log.Fatal(err)
	}
	return b
}

func post(b *http.Client, url string) string {
	resp, err := b.Post(url, "", nil)
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return string(body)
}

// One App serves both flows: users' pages read ERP.net as the user, and
// the application's own work runs as the System User.
func ExampleApp_WithUser() {
	portal := startDevPortal()
	defer portal.Close()

	app, err := hybrid.New(hybrid.Config{
		Authority:    portal.idp.URL(),
		ClientID:     erpnettest.Demo.WebAppID,
		ClientSecret: erpnettest.Demo.WebAppSecret,
		RedirectURL:  portal.srv.URL + "/callback",
	})
	if err != nil {
		log.Fatal(err)
	}
	defer app.Close()
	customers := portal.idp.DomainAPI() + "Crm_Sales_Customers?$top=1"

	mux := http.NewServeMux()
	mux.Handle("/signin", app.SignIn())
	mux.Handle("/callback", app.Callback())
	mux.Handle("POST /signout", app.SignOut())
	mux.Handle("/", app.WithUser(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, _ := hybrid.UserFrom(r.Context()) // WithUser put it there
		resp, err := u.UserClient().Get(customers)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		resp.Body.Close()
		fmt.Fprintf(w, "%s read as %s", u.Session().Subject, resp.Header.Get("X-Erpnet-Caller"))
	})))
	portal.serve(mux)

	resp, err := portal.signedIn(erpnettest.Demo.Alice).Get(portal.srv.URL + "/")
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	page, _ := io.ReadAll(resp.Body)
	fmt.Println(string(page))

	// Background work uses the System User, never a user's token.
	resp, err = app.Service().ServiceClient().Get(customers)
	if err != nil {
		log.Fatal(err)
	}
	resp.Body.Close()
	fmt.Println("background work read as", resp.Header.Get("X-Erpnet-Caller"))
	// Output:
	// alice read as user:alice
	// background work read as system:portal-system
}

// A user presses "Import now"; the import runs as the System User, and the
// audit log says who asked for it and who did it.
func ExampleApp_RunAsService() {
	portal := startDevPortal()
	defer portal.Close()

	// Audit records go to stdout here, without the fields that change
	// from run to run (time, run id, start, duration, issuer URL).
	audit := slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			switch a.Key {
			case slog.TimeKey, "run", "start", "duration", "issuer":
				return slog.Attr{}
			}
			return a
		},
	}))
	app, err := hybrid.New(hybrid.Config{
		Authority:     portal.idp.URL(),
		ClientID:      erpnettest.Demo.WebAppID,
		ClientSecret:  erpnettest.Demo.WebAppSecret,
		RedirectURL:   portal.srv.URL + "/callback",
		ServiceScopes: []string{"read"},
		AuditLogger:   audit,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer app.Close()
	customers := portal.idp.DomainAPI() + "Crm_Sales_Customers"

	mux := http.NewServeMux()
	mux.Handle("/signin", app.SignIn())
	mux.Handle("/callback", app.Callback())
	mux.Handle("POST /import", app.WithUser(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// fn gets the System User's API and a context without the
		// request's values: the user's token is out of its reach.
		var ranAs string
		err := app.RunAsService(r.Context(), r, "import", func(ctx context.Context, svc hybrid.ServiceAPI) error {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, customers, nil)
			if err != nil {
				return err
			}
			resp, err := svc.ServiceClient().Do(req)
			if err != nil {
				return err
			}
			resp.Body.Close()
			ranAs = resp.Header.Get("X-Erpnet-Caller")
			return nil
		})
		if err != nil {
			http.Error(w, "import failed", http.StatusBadGateway)
			return
		}
		fmt.Fprintln(w, "import ran as", ranAs)
	})))
	portal.serve(mux)

	fmt.Print(post(portal.signedIn(erpnettest.Demo.Alice), portal.srv.URL+"/import"))
	// Output:
	// level=INFO msg="hybrid: service job started" job=import trigger=user triggered_by=alice acting_as=system_user client_id=com.example/webapp
	// level=INFO msg="hybrid: service job finished" job=import trigger=user triggered_by=alice acting_as=system_user client_id=com.example/webapp outcome=ok
	// import ran as system:portal-system
}

// A user's token copied onto a request for the service client (or the
// reverse) is refused before anything is sent.
func ExampleErrIdentityMix() {
	portal := startDevPortal()
	defer portal.Close()
	app, err := hybrid.New(hybrid.Config{
		Authority:    portal.idp.URL(),
		ClientID:     erpnettest.Demo.WebAppID,
		ClientSecret: erpnettest.Demo.WebAppSecret,
		RedirectURL:  portal.srv.URL + "/callback",
	})
	if err != nil {
		log.Fatal(err)
	}
	defer app.Close()

	req, _ := http.NewRequest(http.MethodGet, portal.idp.DomainAPI()+"Crm_Sales_Customers", nil)
	req.Header.Set("Authorization", "Bearer a-token-of-someone-else")
	_, err = app.Service().ServiceClient().Do(req)
	fmt.Println(errors.Is(err, hybrid.ErrIdentityMix))
	var mix *hybrid.IdentityMixError
	if errors.As(err, &mix) {
		fmt.Println(mix.Client, "client refused a request carrying", mix.Found)
	}
	fmt.Println("API calls made:", portal.idp.Requests("domainapi"))
	// Output:
	// true
	// service client refused a request carrying Authorization
	// API calls made: 0
}

// Scheduled work that no user triggered runs with RunBackground.
func ExampleApp_RunBackground() {
	portal := startDevPortal()
	defer portal.Close()
	app, err := hybrid.New(hybrid.Config{
		Authority:     portal.idp.URL(),
		ClientID:      erpnettest.Demo.WebAppID,
		ClientSecret:  erpnettest.Demo.WebAppSecret,
		RedirectURL:   portal.srv.URL + "/callback",
		ServiceScopes: []string{"read"},
		AuditLogger:   slog.New(slog.DiscardHandler),
	})
	if err != nil {
		log.Fatal(err)
	}
	defer app.Close()

	err = app.RunBackground(context.Background(), "nightly-sync", func(ctx context.Context, svc hybrid.ServiceAPI) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, portal.idp.DomainAPI()+"Crm_Sales_Customers", nil)
		if err != nil {
			return err
		}
		resp, err := svc.ServiceClient().Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		fmt.Println(svc, "read as", resp.Header.Get("X-Erpnet-Caller"))
		return nil
	})
	fmt.Println("error:", err)
	// Output:
	// hybrid.ServiceAPI{system user of: com.example/webapp} read as system:portal-system
	// error: <nil>
}
