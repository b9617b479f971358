// Command portal is a customer portal built on package hybrid: one Trusted
// Application, both flows, never mixed.
//
//   - Users sign in (Authorization Code + PKCE) and see their customers,
//     read from the ERP.net Domain API with their own token.
//   - An import runs every minute (-import-every) as the Trusted
//     Application's System User (Client Credentials), in the background.
//   - A signed-in user can start the import now; it still runs as the
//     System User (hybrid.App.RunAsService), and the audit log records who
//     asked for it and who ran it.
//
// The page shows which identity did what, as the Domain API reports it:
// "read as user:alice", "import ran as system:portal-system (triggered by
// alice at 15:04:05)".
//
// With no ERPNET_* variables it starts the SDK's dev identity server
// (package erpnettest) in-process, whose demo web application accepts the
// portal on 127.0.0.1 at any port (sign in as alice / alice-password or
// bob / bob-password):
//
//	go run ./examples/portal            # then open http://127.0.0.1:8080/
//
// Against a real instance, with a confidential Trusted Application that
// has the redirect URI registered and SystemUserAllowed:
//
//	export ERPNET_AUTHORITY=https://demodb.my.erp.net
//	export ERPNET_CLIENT_ID=com.example/portal
//	export ERPNET_CLIENT_SECRET=...     # or ERPNET_CLIENT_SECRET_FILE=<path>: rotated without a restart
//	export ERPNET_REDIRECT_URL=http://127.0.0.1:8080/callback   # default: http://<addr>/callback
//	export ERPNET_POST_LOGOUT_URL=http://127.0.0.1:8080/signed-out   # optional, must be registered
//	export ERPNET_COOKIE_KEY=$(openssl rand -base64 32)            # optional: sessions survive restarts
//	export ERPNET_SERVICE_SCOPES=read                              # optional (default read)
//	go run ./examples/portal
//
// SIGINT or SIGTERM stops it cleanly: the server drains, the background
// import stops, token refreshes end.
package main

import (
	"context"
	"crypto/rand"
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
	"net/url"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/erpnetgo/auth"
	"github.com/erpnetgo/auth/erpnettest"
	"github.com/erpnetgo/auth/hybrid"
)

// importJob is the job name in the audit log.
const importJob = "import"

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "listen address")
	every := flag.Duration("import-every", time.Minute, "interval of the background import (0 disables it)")
	verbose := flag.Bool("v", false, "debug logging (never token values)")
	flag.Parse()
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, log, *addr, *every, nil); err != nil {
		log.Error("portal failed", "error", err)
		os.Exit(1)
	}
	log.Info("stopped")
}

// run serves the portal on addr until ctx ends. ready, if set, is called
// with the portal's base URL once it listens.
func run(ctx context.Context, log *slog.Logger, addr string, every time.Duration, ready func(base string)) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	base := baseURL(ln.Addr())
	cfg, cleanup, err := config(log, base)
	if err != nil {
		ln.Close()
		return err
	}
	defer cleanup()
	p, err := newPortal(cfg, log)
	if err != nil {
		ln.Close()
		return err
	}
	defer p.Close()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() { p.importLoop(ctx, every) })

	srv := &http.Server{Handler: p.Handler(), ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	log.Info("portal listening", "url", base+"/")
	if ready != nil {
		ready(base)
	}

	var serveErr error
	select {
	case <-ctx.Done():
		log.Info("stopping: signal received")
	case serveErr = <-served:
		served = nil
	}
	cancel() // stops the import loop
	shutdown, stop := context.WithTimeout(context.Background(), 10*time.Second)
	defer stop()
	err = srv.Shutdown(shutdown)
	if served != nil {
		serveErr = <-served
	}
	wg.Wait()
	if serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		return serveErr
	}
	return err
}

// baseURL is the portal's URL as a browser on this machine reaches it.
func baseURL(a net.Addr) string {
	host, port, _ := net.SplitHostPort(a.String())
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port)
}

// config reads ERPNET_* or, when ERPNET_AUTHORITY is absent, starts the dev
// identity server in-process. It returns the App's Config.
func config(log *slog.Logger, base string) (hybrid.Config, func(), error) {
	if os.Getenv("ERPNET_AUTHORITY") == "" {
		idp, err := erpnettest.Start(erpnettest.Config{})
		if err != nil {
			return hybrid.Config{}, nil, err
		}
		d := erpnettest.Demo
		log.Info("ERPNET_AUTHORITY not set: using the in-process dev identity server",
			"url", idp.URL(), "client_id", d.WebAppID,
			"users", d.Alice+"/"+d.AlicePassword+", "+d.Bob+"/"+d.BobPassword)
		return devAppConfig(idp, base), func() { idp.Close() }, nil
	}
	cfg := hybrid.Config{
		Authority:             strings.TrimSpace(os.Getenv("ERPNET_AUTHORITY")),
		ClientID:              strings.TrimSpace(os.Getenv("ERPNET_CLIENT_ID")),
		ClientSecret:          strings.TrimRight(os.Getenv("ERPNET_CLIENT_SECRET"), "\r\n"),
		ClientSecretFile:      strings.TrimSpace(os.Getenv("ERPNET_CLIENT_SECRET_FILE")), // instead: rotated without a restart
		RedirectURL:           strings.TrimSpace(os.Getenv("ERPNET_REDIRECT_URL")),
		PostLogoutRedirectURL: strings.TrimSpace(os.Getenv("ERPNET_POST_LOGOUT_URL")),
		UserScopes:            strings.Fields(os.Getenv("ERPNET_USER_SCOPES")),
		ServiceScopes:         strings.Fields(os.Getenv("ERPNET_SERVICE_SCOPES")),
		Logger:                log,
	}
	var missing []string
	for _, v := range []struct{ name, val string }{{"ERPNET_CLIENT_ID", cfg.ClientID},
		{"ERPNET_CLIENT_SECRET or ERPNET_CLIENT_SECRET_FILE", cfg.ClientSecret + cfg.ClientSecretFile}} {
		if v.val == "" {
			missing = append(missing, v.name)
		}
	}
	if len(missing) > 0 {
		return cfg, nil, fmt.Errorf("not set in the environment: %s", strings.Join(missing, ", "))
	}
	if cfg.RedirectURL == "" {
		cfg.RedirectURL = base + "/callback"
	}
	if len(cfg.ServiceScopes) == 0 {
		cfg.ServiceScopes = []string{"read"}
	}
	if k := os.Getenv("ERPNET_COOKIE_KEY"); k != "" {
		key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(k))
		if err != nil {
			return cfg, nil, errors.New("ERPNET_COOKIE_KEY must be base64 (e.g. openssl rand -base64 32)")
		}
		cfg.Keys = [][]byte{key}
	}
	cfg.DomainAPI = os.Getenv("ERPNET_DOMAIN_API") // empty: found by ERP.net auto-discovery
	return cfg, func() {}, nil
}

// devAppConfig is the App's Config for the dev identity server: its demo web
// application (the one Trusted Application that serves both flows) accepts
// http://127.0.0.1:<any port>/callback and /signed-out.
func devAppConfig(idp *erpnettest.Server, base string) hybrid.Config {
	key := make([]byte, 32)
	_, _ = rand.Read(key) // sessions end with the process, as the dev server's do
	return hybrid.Config{
		Authority:             idp.URL(),
		ClientID:              erpnettest.Demo.WebAppID,
		ClientSecret:          erpnettest.Demo.WebAppSecret,
		RedirectURL:           base + "/callback",
		PostLogoutRedirectURL: base + "/signed-out",
		ServiceScopes:         []string{"read"},
		Keys:                  [][]byte{key},
	}
}

// portal is the web application.
type portal struct {
	app      *hybrid.App
	log      *slog.Logger
	callback string // path of the redirect URL
	csp      string // Content-Security-Policy of the portal's own page

	importMu sync.Mutex // one import at a time
	mu       sync.Mutex
	imports  []importRun // newest first
}

// importRun is one import, as the page shows it.
type importRun struct {
	At        time.Time
	By        string // the user who triggered it; "" for the schedule
	Caller    string // the identity the Domain API saw (X-Erpnet-Caller)
	Customers int
	Err       string
}

const keepImports = 8

func newPortal(cfg hybrid.Config, log *slog.Logger) (*portal, error) {
	if cfg.Logger == nil {
		cfg.Logger = log
	}
	app, err := hybrid.New(cfg)
	if err != nil {
		return nil, err
	}
	cb := "/callback"
	if u, err := url.Parse(cfg.RedirectURL); err == nil && u.Path != "" {
		cb = u.Path
	}
	return &portal{app: app, log: log, callback: cb, csp: pageCSP(cfg.Authority)}, nil
}

// pageCSP is the Content-Security-Policy of the portal's page. Its forms
// post to the portal itself, but the Sign out form's answer is a redirect
// to the identity server's end-session endpoint, and browsers apply
// form-action to every redirect that follows a form submission: with
// form-action 'self' alone the browser blocks it, the identity server
// session stays, and the next visit signs the user straight back in. So
// form-action also allows the identity server's origin. ERP.net's identity
// server lives under the instance (https://demodb.my.erp.net/id), so the
// authority's origin is the one; list another origin here if your end-session
// endpoint is elsewhere.
func pageCSP(authority string) string {
	formAction := "'self'"
	if u, err := url.Parse(authority); err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != "" {
		formAction += " " + u.Scheme + "://" + u.Host
	}
	return "default-src 'none'; style-src 'unsafe-inline'; form-action " + formAction
}

// Close releases the App.
func (p *portal) Close() error { return p.app.Close() }

// Handler returns the portal's routes.
func (p *portal) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/signin", p.app.SignIn())
	mux.Handle(p.callback, p.app.Callback())
	mux.Handle("/signout", p.app.SignOut()) // a sign-out another site starts asks the user to confirm
	mux.Handle("GET /signed-out", p.app.GuardResponses(http.HandlerFunc(p.signedOut)))
	mux.Handle("POST /import", sameOrigin(p.app.WithUser(http.HandlerFunc(p.importNow))))
	mux.Handle("GET /{$}", p.app.WithUser(http.HandlerFunc(p.home)))
	// No icon: a 404 would be logged as an error in the browser's console.
	mux.HandleFunc("GET /favicon.ico", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })
	return mux
}

// sameOrigin refuses cross-site POSTs (the session cookie is SameSite=Lax,
// so they carry no session anyway; this is belt and braces).
func sameOrigin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if o := r.Header.Get("Origin"); o != "" && o != "http://"+r.Host && o != "https://"+r.Host {
			http.Error(w, "cross-origin request refused", http.StatusForbidden)
			return
		}
		if r.Header.Get("Sec-Fetch-Site") == "cross-site" {
			http.Error(w, "cross-site request refused", http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// customer is what the page lists.
type customer struct {
	Number string `json:"Number"`
	Name   string `json:"Name"`
	Active bool   `json:"Active"`
}

// home shows the user's customers, read with the user's own token, and the
// imports, run by the System User.
func (p *portal) home(w http.ResponseWriter, r *http.Request) {
	u, _ := hybrid.UserFrom(r.Context())
	data := struct {
		Name, Subject, ReadAs, Error string
		Customers                    []customer
		Imports                      []importRun
	}{Name: u.Session().Name, Subject: u.Session().Subject}
	if data.Name == "" {
		data.Name = data.Subject
	}
	var err error
	data.Customers, data.ReadAs, err = p.readCustomers(r.Context(), u.UserClient(), 20)
	switch {
	case errors.Is(err, auth.ErrReauthRequired):
		http.Redirect(w, r, "/signin", http.StatusFound)
		return
	case errors.Is(err, auth.ErrLicenseExhausted):
		p.log.Warn("all ERP.net licenses are in use", "error", err)
		data.Error = "All ERP.net licenses of this instance are in use; try again in a few minutes."
	case err != nil:
		p.log.Warn("reading customers as the user failed", "user", u.Session().Subject, "error", err)
		data.Error = err.Error()
	}
	p.mu.Lock()
	data.Imports = append([]importRun(nil), p.imports...)
	p.mu.Unlock()
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Security-Policy", p.csp)
	if err := pageTemplate.Execute(w, data); err != nil {
		p.log.Warn("rendering the page failed", "error", err)
	}
}

// importNow runs the import for the signed-in user, as the System User.
// The job gets a ServiceAPI only: the user's token stays in this handler.
func (p *portal) importNow(w http.ResponseWriter, r *http.Request) {
	u, _ := hybrid.UserFrom(r.Context())
	// The import goes on if the browser goes away; its context keeps no
	// request values either way.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), time.Minute)
	defer cancel()
	run := importRun{By: u.Session().Subject}
	err := p.app.RunAsService(ctx, r, importJob, func(ctx context.Context, svc hybrid.ServiceAPI) error {
		return p.importOnce(ctx, svc, &run)
	})
	if err != nil {
		p.log.Warn("import failed", "triggered_by", u.Session().Subject, "error", err)
	}
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// importLoop runs the import every interval, as the System User, until ctx
// ends. It runs once at start.
func (p *portal) importLoop(ctx context.Context, every time.Duration) {
	if every <= 0 {
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		run := importRun{}
		err := p.app.RunBackground(ctx, importJob, func(ctx context.Context, svc hybrid.ServiceAPI) error {
			return p.importOnce(ctx, svc, &run)
		})
		if err != nil && ctx.Err() == nil {
			p.log.Warn("scheduled import failed; will try again", "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// importOnce "imports" the customers: it reads them all as the System
// User (a real portal would store them, or write to ERP.net) and records
// the run.
func (p *portal) importOnce(ctx context.Context, svc hybrid.ServiceAPI, run *importRun) error {
	p.importMu.Lock()
	defer p.importMu.Unlock()
	run.At = time.Now()
	list, caller, err := p.readCustomers(ctx, svc.ServiceClient(), -1)
	run.Customers, run.Caller = len(list), caller
	if err != nil {
		if ctx.Err() != nil {
			return err // shutting down: not worth showing
		}
		run.Err = err.Error()
	}
	p.mu.Lock()
	p.imports = append([]importRun{*run}, p.imports...)
	if len(p.imports) > keepImports {
		p.imports = p.imports[:keepImports]
	}
	p.mu.Unlock()
	return err
}

// readCustomers reads customers through hc (a user's or the service's
// client) and returns them with the caller the Domain API reported.
func (p *portal) readCustomers(ctx context.Context, hc *http.Client, top int) ([]customer, string, error) {
	root, err := p.app.DomainAPI(ctx)
	if err != nil {
		return nil, "", err
	}
	u := root + "Crm_Sales_Customers"
	if top >= 0 {
		u += fmt.Sprintf("?$top=%d", top)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, "", err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	caller := resp.Header.Get("X-Erpnet-Caller")
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return nil, caller, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, caller, fmt.Errorf("the Domain API answered %s", resp.Status)
	}
	var page struct {
		Value []customer `json:"value"`
	}
	if err := json.Unmarshal(body, &page); err != nil {
		return nil, caller, fmt.Errorf("the Domain API response: %w", err)
	}
	return page.Value, caller, nil
}

func (p *portal) signedOut(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = io.WriteString(w, `<!doctype html><meta charset="utf-8"><title>Signed out</title>`+
		`<p>You are signed out (of the portal and of ERP.net).</p><p><a href="/">Sign in again</a></p>`)
}

var pageTemplate = template.Must(template.New("page").Funcs(template.FuncMap{
	"clock": func(t time.Time) string { return t.Format("15:04:05") },
}).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Customer portal</title>
<style>body{font-family:sans-serif;max-width:46em;margin:2em auto}table{border-collapse:collapse}
td,th{padding:.2em .8em;text-align:left;border-bottom:1px solid #ddd}.who{color:#555}.err{color:#b00}
form{display:inline}</style></head>
<body>
<p>Signed in as <strong>{{.Name}}</strong> ({{.Subject}})
<form method="post" action="/signout"><button>Sign out</button></form></p>

<h2>Your customers</h2>
{{if .Error}}<p class="err">{{.Error}}</p>{{else}}
<p class="who">read as {{.ReadAs}}, with your own token</p>
<table><tr><th>Number</th><th>Name</th><th>Active</th></tr>
{{range .Customers}}<tr><td>{{.Number}}</td><td>{{.Name}}</td><td>{{if .Active}}yes{{else}}no{{end}}</td></tr>
{{end}}</table>{{end}}

<h2>Imports</h2>
<p>The import runs every minute, and on demand, as the application's System User.</p>
<form method="post" action="/import"><button>Import now</button></form>
<ul>
{{range .Imports}}<li>{{if .Err}}<span class="err">import failed: {{.Err}}</span>{{else}}import ran as {{.Caller}}{{end}} {{/*
*/}}({{if .By}}triggered by {{.By}} at {{clock .At}}{{else}}scheduled, at {{clock .At}}{{end}}){{if not .Err}}: {{.Customers}} customers{{end}}</li>
{{else}}<li>no import yet</li>
{{end}}</ul>
</body></html>
`))
