// Command spa is a single-page app (plain HTML and JavaScript, embedded in
// the program: no build step, nothing loaded from a CDN) served with its
// backend-for-frontend (package bff): users sign in with their ERP.net
// account, the page lists customers from the Domain API through /bff/api/,
// and no token ever reaches the browser.
//
//	go run ./examples/spa            # then open http://127.0.0.1:8080
//
// With no ERPNET_* variables it starts the dev identity server in-process
// (package erpnettest; sign in as alice / alice-password or bob /
// bob-password on its form) and uses the demo web application, which
// accepts the site on 127.0.0.1 at any port. Against a real instance, a
// Trusted Application of type Confidential:
//
//	export ERPNET_AUTHORITY=https://demodb.my.erp.net     # instance root or its /id URL
//	export ERPNET_CLIENT_ID=com.example/spa               # the Trusted Application's ApplicationUri
//	export ERPNET_CLIENT_SECRET=...
//	export ERPNET_REDIRECT_URL=http://127.0.0.1:8080/callback   # default <site>/callback; registered
//	export ERPNET_POST_LOGOUT_URL=http://127.0.0.1:8080/        # default <site>/; registered too
//	export ERPNET_COOKIE_KEY=$(openssl rand -base64 32)         # optional: sessions survive restarts
//	go run ./examples/spa
//
// Routes: / (the app: index.html, app.js, app.css), /callback (the sign-in
// callback), /bff/ (the backend-for-frontend: /bff/login, /bff/user,
// /bff/logout, /bff/api/...).
package main

import (
	"context"
	"embed"
	"encoding/base64"
	"errors"
	"flag"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/erpnetgo/auth/authcode"
	"github.com/erpnetgo/auth/bff"
	"github.com/erpnetgo/auth/erpnettest"
)

//go:embed static
var static embed.FS

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
		log.Error("spa failed", "error", err)
		os.Exit(1)
	}
}

// run serves the app on addr until ctx ends. ready, if not nil, is called
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
	ac, err := authcode.New(cfg)
	if err != nil {
		ln.Close()
		return err
	}
	defer ac.Close()
	// The backend-for-frontend: the app's scripts see the user's name and
	// e-mail, never a token.
	b, err := bff.New(bff.Config{Client: ac, Claims: []string{"email"}})
	if err != nil {
		ln.Close()
		return err
	}

	mux := http.NewServeMux()
	mux.Handle("/callback", ac.Callback())
	mux.Handle("/bff/", b)
	mux.Handle("/", app())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	log.Info("spa listening", "url", siteURL)
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

// app serves the embedded files, under a Content-Security-Policy that
// allows only the app's own scripts, styles and connections.
func app() http.Handler {
	files, _ := fs.Sub(static, "static")
	fsrv := http.FileServerFS(files)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "same-origin")
		h.Set("Cache-Control", "no-cache")
		if r.URL.Path == "/" || r.URL.Path == "/index.html" {
			// Not kept for Back after sign-out (nor in the back/forward
			// cache): the page is rebuilt from /bff/user.
			h.Set("Cache-Control", "no-store")
		}
		if r.URL.Path == "/favicon.ico" {
			h.Set("Cache-Control", "max-age=86400")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		fsrv.ServeHTTP(w, r)
	})
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
			RedirectURL:           envOr("ERPNET_REDIRECT_URL", siteURL+"/callback"),
			PostLogoutRedirectURL: envOr("ERPNET_POST_LOGOUT_URL", siteURL+"/"),
			DomainAPI:             os.Getenv("ERPNET_DOMAIN_API"), // empty: found by auto-discovery
			Keys:                  keys,
		}
		return cfg, nil, nil
	}
	// The demo web application accepts http://127.0.0.1:<any port>/callback
	// and http://127.0.0.1:<any port>/.
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
		PostLogoutRedirectURL: siteURL + "/",
		Keys:                  keys,
	}, idp, nil
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
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
