// Command vendor is a software vendor's app serving several ERP.net
// instances at once (package instances): users of each instance sign in
// through one callback, each sees their own instance's customers, the
// app's System User reads every instance, and a new customer installing
// the app from the ERP.net Marketplace is served at once.
//
//	go run ./examples/vendor            # then open http://127.0.0.1:8080
//
// With no ERPNET_* variables it starts two in-process dev identity servers
// (package erpnettest), "acme" and "globex", with the vendor's Trusted
// Application registered on each under one client_id and a different
// secret, plus a third, "initech", on which the app is not installed yet,
// and an ERP.net Marketplace stand-in: the home page's "Install on
// initech" button has the Marketplace deliver an "installed" event to the
// app, which then serves initech without a restart. Sign in as alice /
// alice-password or bob / bob-password.
//
// Against real instances, list them in a file, one "<instance root>
// <client secret>" per line, and run:
//
//	export ERPNET_CLIENT_ID=com.example/vendor                  # the same on every instance
//	export ERPNET_INSTANCES=instances.txt                       # e.g. https://acme.my.erp.net s3cret
//	export ERPNET_REDIRECT_URL=https://app.example.com/callback # registered on every instance
//	export ERPNET_POST_LOGOUT_URL=https://app.example.com/signed-out  # optional, registered too
//	export ERPNET_COOKIE_KEY=$(openssl rand -base64 32)         # optional: sessions survive restarts
//	go run ./examples/vendor -addr 127.0.0.1:8080
//
// Marketplace events for the listing whose redirect URI is
// ERPNET_REDIRECT_URL then arrive at /callback and add or remove
// instances (kept in memory here: a real app gives instances.Config a
// Secrets store over its database).
//
// Routes: / (home), /signin?instance=<root>, /callback (sign-ins and
// Marketplace events), POST /signout, /signed-out, /customers (signed-in
// users, their instance's customers), /service (every instance, as its
// System User).
package main

import (
	"bufio"
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
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/erpnetgo/auth"
	"github.com/erpnetgo/auth/authcode"
	"github.com/erpnetgo/auth/erpnettest"
	"github.com/erpnetgo/auth/instances"
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
		log.Error("vendor failed", "error", err)
		os.Exit(1)
	}
}

// clientID is the demo Trusted Application's ApplicationUri.
const clientID = "com.example/vendor"

// demo is what run starts in-process when no ERPNET_* variable is set:
// instances and the Marketplace stand-in.
type demo struct {
	instances map[string]*erpnettest.Server // by name: acme, globex, initech
	secrets   map[string]string
	market    *erpnettest.Marketplace
}

func (d *demo) close() {
	for _, s := range d.instances {
		s.Close()
	}
	d.market.Close()
}

// run serves the app on addr until ctx ends. ready, if not nil, is called
// with the app's URL and the in-process demo (nil against real instances)
// once it listens.
func run(ctx context.Context, addr string, log *slog.Logger, ready func(appURL string, d *demo)) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	appURL := "http://" + ln.Addr().String()
	cfg, known, d, err := config(appURL, log)
	if err != nil {
		ln.Close()
		return err
	}
	if d != nil {
		defer d.close()
	}
	a := &vendorApp{log: log, known: known, demo: d, appURL: appURL}
	cfg.Logger = log
	cfg.OnEvent = a.onEvent
	reg, err := instances.New(cfg)
	if err != nil {
		ln.Close()
		return err
	}
	defer reg.Close()
	a.reg = reg
	for _, in := range known {
		if err := reg.Add(ctx, in.root, in.secret); err != nil {
			ln.Close()
			return fmt.Errorf("adding %s: %w", in.root, err)
		}
	}

	srv := &http.Server{Handler: a.routes(), ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	log.Info("vendor app listening", "url", appURL, "instances", len(known))
	if ready != nil {
		ready(appURL, d)
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

// known is an instance the app is configured with.
type known struct {
	name, root, secret string
}

// config reads ERPNET_* or, without them, starts the demo.
func config(appURL string, log *slog.Logger) (instances.Config, []known, *demo, error) {
	keys, err := cookieKeys()
	if err != nil {
		return instances.Config{}, nil, nil, err
	}
	if file := os.Getenv("ERPNET_INSTANCES"); file != "" {
		list, err := readInstances(file)
		if err != nil {
			return instances.Config{}, nil, nil, err
		}
		cfg := instances.Config{
			ClientID:              os.Getenv("ERPNET_CLIENT_ID"),
			RedirectURL:           os.Getenv("ERPNET_REDIRECT_URL"),
			PostLogoutRedirectURL: os.Getenv("ERPNET_POST_LOGOUT_URL"),
			MarketplaceURL:        os.Getenv("ERPNET_MARKETPLACE_URL"), // empty: https://marketplace.erp.net
			Keys:                  keys,
		}
		if cfg.RedirectURL == "" {
			cfg.RedirectURL = appURL + "/callback"
		}
		return cfg, list, nil, nil
	}
	d := &demo{instances: map[string]*erpnettest.Server{}, secrets: map[string]string{}}
	var list []known
	for _, name := range []string{"acme", "globex", "initech"} {
		secret := name + "-vendor-secret"
		srv, err := erpnettest.Start(erpnettest.Config{Apps: []erpnettest.App{{
			ID: clientID, Name: "Vendor app", Secret: secret, SystemUser: name + "-system",
			// Loopback redirect URIs without a port match any port.
			RedirectURIs: []string{"http://127.0.0.1/callback"}, PostLogoutURIs: []string{"http://127.0.0.1/signed-out"},
		}}})
		if err != nil {
			d.close()
			return instances.Config{}, nil, nil, err
		}
		d.instances[name], d.secrets[name] = srv, secret
		if name != "initech" { // installed later, through the Marketplace
			list = append(list, known{name: name, root: srv.URL(), secret: secret})
		}
	}
	if d.market, err = erpnettest.StartMarketplace(erpnettest.MarketplaceConfig{}); err != nil {
		d.close()
		return instances.Config{}, nil, nil, err
	}
	log.Info("ERPNET_INSTANCES not set: using in-process dev identity servers",
		"acme", d.instances["acme"].URL(), "globex", d.instances["globex"].URL(),
		"initech (not installed yet)", d.instances["initech"].URL(),
		"users", erpnettest.Demo.Alice+"/"+erpnettest.Demo.AlicePassword+", "+erpnettest.Demo.Bob+"/"+erpnettest.Demo.BobPassword)
	return instances.Config{
		ClientID:              clientID,
		RedirectURL:           appURL + "/callback",
		PostLogoutRedirectURL: appURL + "/signed-out",
		MarketplaceURL:        d.market.URL(),
		ServiceScopes:         []string{"read"},
		Keys:                  keys,
	}, list, d, nil
}

// readInstances reads "<root> <secret>" lines; blank lines and # comments
// are skipped. Secrets are never logged.
func readInstances(file string) ([]known, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var list []known
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		root, secret, ok := strings.Cut(line, " ")
		if !ok {
			return nil, fmt.Errorf("%s:%d: want \"<instance root> <client secret>\"", file, n)
		}
		list = append(list, known{name: root, root: root, secret: strings.TrimSpace(secret)})
	}
	return list, sc.Err()
}

// cookieKeys reads ERPNET_COOKIE_KEY (base64 of 16, 24 or 32 bytes); none
// means a random key per process (package instances logs a warning).
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

type vendorApp struct {
	reg    *instances.Registry
	log    *slog.Logger
	demo   *demo
	appURL string

	mu    sync.Mutex
	known []known // grows with Marketplace installs
}

// onEvent is where a vendor provisions (or drops) its own data for an
// instance; here it keeps the list the home page shows.
func (a *vendorApp) onEvent(_ context.Context, e instances.Event) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.known = slices.DeleteFunc(a.known, func(k known) bool { return k.root == e.Root })
	if e.Type == "installed" {
		a.known = append(a.known, known{name: a.nameOf(e.Root), root: e.Root})
	}
	a.log.Info("Marketplace event", "event", e.Type, "instance", e.Root)
	return nil
}

func (a *vendorApp) nameOf(root string) string {
	if a.demo != nil {
		for name, s := range a.demo.instances {
			if s.URL() == root {
				return name
			}
		}
	}
	return root
}

func (a *vendorApp) instanceList() []known {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.known)
}

func (a *vendorApp) routes() http.Handler {
	mux := http.NewServeMux()
	signIn := a.reg.SignIn() // ?instance=<root>
	mux.HandleFunc("/signin", func(w http.ResponseWriter, r *http.Request) {
		if r.FormValue("instance") == "" {
			// RequireUser sends browsers here without knowing their
			// instance: let them choose it on the home page.
			http.Redirect(w, r, "/", http.StatusFound)
			return
		}
		signIn.ServeHTTP(w, r)
	})
	mux.Handle("/callback", a.reg.Callback()) // every instance's sign-ins, and Marketplace events
	mux.Handle("POST /signout", a.reg.SignOut())
	mux.Handle("GET /customers", a.reg.RequireUser(http.HandlerFunc(a.customers)))
	mux.HandleFunc("GET /service", a.service)
	mux.HandleFunc("GET /{$}", a.home)
	mux.HandleFunc("GET /signed-out", a.home)
	if a.demo != nil {
		mux.HandleFunc("POST /demo/install", a.install)
	}
	mux.HandleFunc("GET /favicon.ico", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })
	return mux
}

var pages = template.Must(template.New("layout").Parse(`{{define "top"}}<!doctype html>
<html><head><meta charset="utf-8"><title>ERP.net vendor example</title>
<style>body{font-family:sans-serif;max-width:52em;margin:2em auto}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.3em .6em}</style>
</head><body><h1>ERP.net vendor example</h1>
{{if .User}}<form method="post" action="/signout">Signed in as <b>{{.User}}</b> at <code>{{.At}}</code> <button>Sign out</button></form>{{end}}
{{end}}
{{define "home"}}{{template "top" .}}
{{if .SignedOut}}<p><b>You are signed out.</b></p>{{end}}
<h2>Instances served</h2><table><tr><th>Instance</th><th>Root</th><th></th></tr>
{{range .Instances}}<tr><td>{{.Name}}</td><td><code>{{.Root}}</code></td><td><a href="/signin?instance={{.Root}}&amp;return_to=%2Fcustomers">Sign in here</a></td></tr>{{end}}
</table>
<p><a href="/customers">Customers (as the signed-in user)</a> · <a href="/service">Every instance (as its System User)</a></p>
{{if .Demo}}<form method="post" action="/demo/install"><p>The app is not installed on <b>initech</b> yet.
<button>Install on initech through the Marketplace</button></p></form>{{end}}
</body></html>{{end}}
{{define "customers"}}{{template "top" .}}
<h2>Customers of {{.At}}</h2>
{{if .Error}}<p>{{.Error}}</p>{{else}}
<table><tr><th>Number</th><th>Name</th></tr>
{{range .Customers}}<tr><td>{{.Number}}</td><td>{{.Name}}</td></tr>{{end}}
</table><p>Read from the Domain API as <code>{{.Caller}}</code>.</p>{{end}}
<p><a href="/">Home</a></p></body></html>{{end}}
{{define "service"}}{{template "top" .}}
<h2>Every instance, as its System User</h2>
<table><tr><th>Instance</th><th>Customers</th><th>Read as</th></tr>
{{range .Rows}}<tr><td>{{.Name}}</td><td>{{.Count}}</td><td><code>{{.Caller}}</code></td></tr>{{end}}
</table><p><a href="/">Home</a></p></body></html>{{end}}`))

func (a *vendorApp) home(w http.ResponseWriter, r *http.Request) {
	data := map[string]any{"SignedOut": r.URL.Path == "/signed-out", "Instances": a.rows(), "Demo": a.demo != nil && !a.served("initech")}
	if s, err := a.reg.UserSession(r); err == nil {
		data["User"], data["At"] = displayName(s), strings.TrimSuffix(s.Issuer, "/id")
	}
	render(w, "home", data)
}

type row struct{ Name, Root, Caller, Count string }

func (a *vendorApp) rows() []row {
	var out []row
	for _, k := range a.instanceList() {
		out = append(out, row{Name: k.name, Root: k.root})
	}
	return out
}

func (a *vendorApp) served(name string) bool {
	return slices.ContainsFunc(a.instanceList(), func(k known) bool { return k.name == name })
}

type customer struct{ Number, Name string }

// customers lists the customers of the instance the user signed in at,
// as that user.
func (a *vendorApp) customers(w http.ResponseWriter, r *http.Request) {
	s := authcode.SessionFromContext(r.Context())
	data := map[string]any{"User": displayName(s), "At": strings.TrimSuffix(s.Issuer, "/id")}
	api, err := a.reg.DomainAPI(r.Context(), s)
	var resp *http.Response
	if err == nil {
		resp, err = a.reg.UserClient(r.Context(), s).Get(api + "Crm_Sales_Customers?$top=10")
	}
	if errors.Is(err, auth.ErrReauthRequired) {
		http.Redirect(w, r, "/", http.StatusFound)
		return
	}
	if err != nil {
		a.log.Warn("Domain API call failed", "error", err)
		data["Error"] = "The Domain API cannot be reached right now."
		render(w, "customers", data)
		return
	}
	defer resp.Body.Close()
	list, err := decode(resp)
	if err != nil {
		data["Error"] = err.Error()
	}
	data["Customers"], data["Caller"] = list, resp.Header.Get("X-Erpnet-Caller")
	render(w, "customers", data)
}

// service reads every instance as its System User: one Source per
// instance, built on first use.
func (a *vendorApp) service(w http.ResponseWriter, r *http.Request) {
	data := map[string]any{}
	if s, err := a.reg.UserSession(r); err == nil {
		data["User"], data["At"] = displayName(s), strings.TrimSuffix(s.Issuer, "/id")
	}
	var rows []row
	for _, k := range a.instanceList() {
		rw := row{Name: k.name, Root: k.root, Count: "?"}
		src, err := a.reg.Service(r.Context(), k.root)
		var api string
		if err == nil {
			api, err = src.DomainAPI(r.Context())
		}
		var resp *http.Response
		if err == nil {
			resp, err = src.Client(r.Context()).Get(api + "Crm_Sales_Customers")
		}
		if err != nil {
			a.log.Warn("service call failed", "instance", k.root, "error", err)
			rw.Caller = "(unavailable)"
		} else {
			list, derr := decode(resp)
			resp.Body.Close()
			if derr == nil {
				rw.Count = fmt.Sprint(len(list))
			}
			rw.Caller = resp.Header.Get("X-Erpnet-Caller")
		}
		rows = append(rows, rw)
	}
	data["Rows"] = rows
	render(w, "service", data)
}

// install has the Marketplace stand-in deliver an "installed" event for
// initech, as the real Marketplace does when a customer installs the app.
func (a *vendorApp) install(w http.ResponseWriter, r *http.Request) {
	d := a.demo
	st, err := d.market.Deliver(a.appURL+"/callback", erpnettest.LifecycleEvent{
		Event: "installed", Instance: d.instances["initech"].URL(), ClientSecret: d.secrets["initech"],
		ApplicationURI: clientID, RedirectURI: a.appURL + "/callback",
	})
	if err != nil || st != http.StatusOK {
		a.log.Warn("Marketplace install failed", "status", st, "error", err)
		http.Error(w, "the install event was refused", http.StatusBadGateway)
		return
	}
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

func decode(resp *http.Response) ([]customer, error) {
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		return nil, fmt.Errorf("the Domain API answered %s: %s", resp.Status, b)
	}
	var body struct {
		Value []customer `json:"value"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 4<<20)).Decode(&body); err != nil {
		return nil, errors.New("the Domain API sent an unexpected response")
	}
	return body.Value, nil
}

func displayName(s *authcode.Session) string {
	if s.Name != "" {
		return s.Name
	}
	return s.Subject
}

func render(w http.ResponseWriter, name string, data any) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if err := pages.ExecuteTemplate(w, name, data); err != nil {
		http.Error(w, "template error", http.StatusInternalServerError)
	}
}
