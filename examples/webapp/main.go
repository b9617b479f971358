// Command webapp is a small web site whose users sign in with their ERP.net
// account (Authorization Code + PKCE, package authcode) and see customers
// read from the Domain API as themselves.
//
//	go run ./examples/webapp            # then open http://127.0.0.1:8080
//
// With no ERPNET_* variables it starts the dev identity server in-process
// (package erpnettest; sign in as alice / alice-password or bob /
// bob-password on its form) and uses the demo web application, which
// accepts the site on 127.0.0.1 at any port. Against a real instance:
//
//	export ERPNET_AUTHORITY=https://demodb.my.erp.net     # instance root or its /id URL
//	export ERPNET_CLIENT_ID=com.example/webapp            # the Trusted Application's ApplicationUri
//	export ERPNET_CLIENT_SECRET=...     # or ERPNET_CLIENT_SECRET_FILE=<path>: rotated without a restart
//	export ERPNET_REDIRECT_URL=http://127.0.0.1:8080/callback   # registered with the application
//	export ERPNET_POST_LOGOUT_URL=http://127.0.0.1:8080/        # optional, registered too
//	export ERPNET_COOKIE_KEY=$(openssl rand -base64 32)         # optional: sessions survive restarts
//	go run ./examples/webapp
//
// Routes: / (home), /signin, /callback, POST /signout, /signed-out (where
// the identity server returns after sign-out), /customers (signed-in users
// only; when every ERP.net license of the instance is in use it says so in
// plain words, with 503 and Retry-After).
//
// # Two replicas sharing sessions (-redis)
//
// With -redis host:port (or a redis:// URL) the sessions live in Redis
// (package authcode/redisstore), sealed, so that replicas behind a load
// balancer share their users' sign-ins and refresh each session once.
// Replicas can share a session only if they also share the identity server
// that issued its tokens, so -redis requires ERPNET_AUTHORITY: run one dev
// identity server for both, instead of one in-process server each. Step by
// step, on one machine:
//
// Step 1. Start Redis in a terminal:
//
//	redis-server --port 6379    # or: docker run --rm -p 6379:6379 redis
//
// Step 2. Start the one identity server in a second terminal (the demo web
// application and users, on 127.0.0.1:5080):
//
//	go run ./examples/devserver
//
// Step 3. Write the replicas' shared settings to a file, once: the cookie
// key is generated here, so that both replicas get the same one.
//
//	cat > replicas.env <<EOF
//	export ERPNET_AUTHORITY=http://127.0.0.1:5080
//	export ERPNET_CLIENT_ID=com.example/webapp
//	export ERPNET_CLIENT_SECRET=webapp-secret
//	export ERPNET_POST_LOGOUT_URL=http://127.0.0.1:8080/signed-out
//	export ERPNET_COOKIE_KEY=$(openssl rand -base64 32)
//	EOF
//
// Step 4. Start the two replicas, in a third and a fourth terminal:
//
//	. ./replicas.env && go run ./examples/webapp -addr 127.0.0.1:8080 -redis 127.0.0.1:6379
//	. ./replicas.env && go run ./examples/webapp -addr 127.0.0.1:8081 -redis 127.0.0.1:6379
//
// Step 5. Open http://127.0.0.1:8080/customers and sign in as alice /
// alice-password. Then open http://127.0.0.1:8081/customers: the same user,
// without signing in again (browsers send a host's cookies to each of its
// ports, as they would send them to either replica behind one load
// balancer). Sign out on 8081 and reload 8080: signed out there too.
//
// Each replica redirects back to its own /callback (ERPNET_REDIRECT_URL
// unset); behind a load balancer, set ERPNET_REDIRECT_URL and
// ERPNET_POST_LOGOUT_URL to the public URL. ERPNET_SESSION_KEY (base64 of
// 16, 24 or 32 bytes, the same on every replica) seals the sessions in Redis;
// unset, a key is derived from ERPNET_COOKIE_KEY.
package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"html/template"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/erpnetgo/auth"
	"github.com/erpnetgo/auth/authcode"
	"github.com/erpnetgo/auth/erpnettest"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "listen address")
	verbose := flag.Bool("v", false, "debug logging (never token values)")
	flag.Parse()
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *addr, log, nil); err != nil {
		log.Error("webapp failed", "error", err)
		os.Exit(1)
	}
}

// run serves the site on addr until ctx ends. ready, if not nil, is called
// with the site's URL and the dev identity server (nil against a real
// instance) once it listens.
func run(ctx context.Context, addr string, log *slog.Logger, ready func(siteURL string, idp *erpnettest.Server)) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	siteURL := "http://" + ln.Addr().String()
	cfg, idp, err := config(siteURL, log)
	if err != nil {
		ln.Close()
		return err
	}
	if idp != nil {
		defer idp.Close()
	}
	cfg.Logger = log

	// ---- Session store: swap it here (e.g. a shared Redis store for replicas). ----
	store, closeStore, err := newStore(ctx, log)
	if err != nil {
		ln.Close()
		return err
	}
	defer closeStore()
	cfg.Store = store
	// --------------------------------------------------------------------------------

	ac, err := authcode.New(cfg)
	if err != nil {
		ln.Close()
		return err
	}
	defer ac.Close()

	srv := &http.Server{Handler: (&site{auth: ac, log: log}).routes(), ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	log.Info("webapp listening", "url", siteURL)
	if ready != nil {
		ready(siteURL, idp)
	}
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}

// newStore returns the session store and a function that releases it. The
// default MemoryStore keeps sessions in this process only; replicas behind a
// load balancer need a shared store (see authcode/redisstore).
func newStore(ctx context.Context, log *slog.Logger) (authcode.Store, func(), error) {
	if *redisAddr != "" { // -redis, see redis.go
		return newRedisStore(ctx, log, *redisAddr)
	}
	return nil, func() {}, nil // nil: authcode keeps sessions in memory
}

// config reads ERPNET_* or, when ERPNET_AUTHORITY is absent, starts the dev
// identity server with the demo web application registered for siteURL.
func config(siteURL string, log *slog.Logger) (authcode.Config, *erpnettest.Server, error) {
	keys, err := cookieKeys()
	if err != nil {
		return authcode.Config{}, nil, err
	}
	if authority := os.Getenv("ERPNET_AUTHORITY"); authority != "" {
		cfg := authcode.Config{
			Authority:             authority,
			ClientID:              os.Getenv("ERPNET_CLIENT_ID"),
			ClientSecret:          os.Getenv("ERPNET_CLIENT_SECRET"),
			ClientSecretFile:      os.Getenv("ERPNET_CLIENT_SECRET_FILE"), // instead: rotated without a restart
			RedirectURL:           os.Getenv("ERPNET_REDIRECT_URL"),
			PostLogoutRedirectURL: os.Getenv("ERPNET_POST_LOGOUT_URL"),
			DomainAPI:             os.Getenv("ERPNET_DOMAIN_API"), // empty: found by auto-discovery
			Keys:                  keys,
		}
		if cfg.RedirectURL == "" {
			cfg.RedirectURL = siteURL + "/callback"
		}
		return cfg, nil, nil
	}
	if *redisAddr != "" {
		// Replicas share sessions only if they share the identity server
		// that issued the sessions' tokens: an in-process one per replica
		// cannot work.
		return authcode.Config{}, nil, errors.New("-redis needs ERPNET_AUTHORITY (one identity server for every replica): " +
			"run `go run ./examples/devserver` and point the replicas at it (see the recipe in `go doc ./examples/webapp`)")
	}
	// The demo web application accepts http://127.0.0.1:<any port>/callback
	// and /signed-out.
	idp, err := erpnettest.Start(erpnettest.Config{})
	if err != nil {
		return authcode.Config{}, nil, err
	}
	d := erpnettest.Demo
	log.Info("ERPNET_AUTHORITY not set: using the in-process dev identity server",
		"url", idp.URL(), "client_id", d.WebAppID, "users", d.Alice+"/"+d.AlicePassword+", "+d.Bob+"/"+d.BobPassword)
	return authcode.Config{
		Authority:             idp.URL(),
		ClientID:              d.WebAppID,
		ClientSecret:          d.WebAppSecret,
		RedirectURL:           siteURL + "/callback",
		PostLogoutRedirectURL: siteURL + "/signed-out",
		Keys:                  keys,
	}, idp, nil
}

// cookieKeys reads ERPNET_COOKIE_KEY (base64 of 16, 24 or 32 bytes); none
// means a random key per process (authcode logs a warning).
func cookieKeys() ([][]byte, error) {
	v := os.Getenv("ERPNET_COOKIE_KEY")
	if v == "" {
		return nil, nil
	}
	k, err := base64.StdEncoding.DecodeString(v)
	if err != nil {
		return nil, errors.New("ERPNET_COOKIE_KEY must be base64 (e.g. openssl rand -base64 32)")
	}
	return [][]byte{k}, nil
}

type site struct {
	auth *authcode.Client
	log  *slog.Logger
}

func (s *site) routes() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/signin", s.auth.SignIn())
	mux.Handle("/callback", s.auth.Callback())
	// The sign-out button POSTs here; SignOut itself refuses a sign-out
	// another site starts (it asks the user to confirm), so no logout CSRF.
	mux.Handle("/signout", s.auth.SignOut())
	mux.Handle("GET /customers", s.auth.RequireUser(http.HandlerFunc(s.customers)))
	mux.HandleFunc("GET /{$}", s.home)
	// Where the identity server returns after sign-out (the registered
	// post-logout redirect URI): the home page, saying so.
	mux.HandleFunc("GET /signed-out", s.home)
	mux.HandleFunc("GET /favicon.ico", noFavicon)
	return mux
}

var pages = template.Must(template.New("layout").Parse(`{{define "top"}}<!doctype html>
<html><head><meta charset="utf-8"><title>ERP.net sign-in example</title>
<style>body{font-family:sans-serif;max-width:46em;margin:2em auto}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.3em .6em}</style>
</head><body><h1>ERP.net sign-in example</h1>
{{if .User}}<form method="post" action="/signout">Signed in as <b>{{.User}}</b> <button>Sign out</button></form>{{end}}
{{end}}
{{define "home"}}{{template "top" .}}
{{if .User}}<p><a href="/customers">Customers</a></p>
{{else}}{{if .SignedOut}}<p><b>You are signed out.</b></p>{{end}}<p><a href="/signin?return_to=%2Fcustomers">Sign in</a> to see the customers.</p>{{end}}
</body></html>{{end}}
{{define "customers"}}{{template "top" .}}
<h2>Customers</h2>
{{if .Error}}<p>{{.Error}}</p>{{else}}
<table><tr><th>Number</th><th>Name</th><th>Active</th></tr>
{{range .Customers}}<tr><td>{{.Number}}</td><td>{{.Name}}</td><td>{{.Active}}</td></tr>{{end}}
</table><p>Read from the Domain API as <code>{{.Caller}}</code>.</p>{{end}}
<p><a href="/">Home</a></p></body></html>{{end}}`))

func (s *site) home(w http.ResponseWriter, r *http.Request) {
	data := map[string]any{"SignedOut": r.URL.Path == "/signed-out"}
	sess, err := s.auth.UserSession(r)
	switch {
	case err == nil:
		data["User"] = displayName(sess)
	case !errors.Is(err, authcode.ErrNoSession):
		s.log.Warn("cannot read the session", "error", err)
	}
	render(w, "home", data)
}

type customer struct {
	Number string
	Name   string
	Active bool
}

func (s *site) customers(w http.ResponseWriter, r *http.Request) {
	sess := authcode.SessionFromContext(r.Context())
	data := map[string]any{"User": displayName(sess)}
	root, err := s.auth.DomainAPI(r.Context())
	var resp *http.Response
	if err == nil {
		resp, err = s.auth.UserClient(r.Context(), sess).Get(root + "Crm_Sales_Customers?$top=10")
	}
	if errors.Is(err, auth.ErrReauthRequired) {
		http.Redirect(w, r, "/signin?return_to=%2Fcustomers", http.StatusFound)
		return
	}
	if errors.Is(err, auth.ErrLicenseExhausted) {
		// Every license slot of the instance is taken: say so in plain
		// words; retrying at once would only take a slot someone else needs.
		s.log.Warn("all ERP.net licenses are in use", "error", err)
		data["Error"] = "All ERP.net licenses of this instance are in use; try again in a few minutes."
		w.Header().Set("Retry-After", "120")
		renderStatus(w, http.StatusServiceUnavailable, "customers", data)
		return
	}
	if err != nil {
		s.log.Warn("Domain API call failed", "error", err)
		data["Error"] = "The Domain API cannot be reached right now."
		render(w, "customers", data)
		return
	}
	defer resp.Body.Close()
	var body struct {
		Value []customer `json:"value"`
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		data["Error"] = fmt.Sprintf("The Domain API answered %s: %s", resp.Status, b)
	} else if err := json.NewDecoder(io.LimitReader(resp.Body, 4<<20)).Decode(&body); err != nil {
		data["Error"] = "The Domain API sent an unexpected response."
	}
	data["Customers"] = body.Value
	data["Caller"] = resp.Header.Get("X-Erpnet-Caller")
	if data["Caller"] == "" {
		data["Caller"] = sess.Subject
	}
	render(w, "customers", data)
}

// noFavicon answers the browser's favicon request with no content: a 404
// would be logged as an error in the browser's console on every page.
func noFavicon(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Cache-Control", "max-age=86400")
	w.WriteHeader(http.StatusNoContent)
}

func displayName(s *authcode.Session) string {
	if s.Name != "" {
		return s.Name
	}
	return s.Subject
}

func render(w http.ResponseWriter, name string, data any) { renderStatus(w, http.StatusOK, name, data) }

func renderStatus(w http.ResponseWriter, status int, name string, data any) {
	var b bytes.Buffer
	if err := pages.ExecuteTemplate(&b, name, data); err != nil {
		http.Error(w, "template error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(b.Bytes())
}
