// Command worker is a background job that acts as a Trusted Application's
// System User: every few seconds it reads customers from the ERP.net Domain
// API with a service token from clientcreds, logging with log/slog, until
// SIGINT or SIGTERM, when it stops cleanly.
//
// Against a real instance:
//
//	export ERPNET_AUTHORITY=https://demodb.my.erp.net   # instance root or its /id URL
//	export ERPNET_CLIENT_ID=com.example/worker          # the Trusted Application's ApplicationUri
//	export ERPNET_CLIENT_SECRET=...
//	export ERPNET_SCOPES="read"
//	go run ./examples/worker -every 10s
//
// Or, to rotate the secret without a restart, give the path of a file
// holding it (a mounted Kubernetes Secret, say) instead of the secret:
//
//	export ERPNET_CLIENT_SECRET_FILE=/var/run/secrets/erpnet/client-secret
//
// Store the new secret in ERP.net, then in the file: the next token
// request is refused once, the file is read again and the request repeated
// with the new secret. Until the file is updated the worker reports the
// refusal and keeps trying, instead of exiting.
//
// With ERPNET_AUTHORITY unset it starts the dev identity server in-process
// (package erpnettest, an ERP.net stand-in) and uses its demo worker
// application. -n stops after that many calls.
//
// The worker logs the figures an operator cares about (tokens fetched,
// ERP.net API sessions opened, retries) when it stops and on SIGUSR1; see
// README's "Operating it" for what healthy numbers look like.
//
// One Source per process, created at start-up and kept: the token is cached
// and refreshed in the background, so the job makes one token request an
// hour, not one per call (each new token would open a new ERP.net API session).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/erpnetgo/auth"
	"github.com/erpnetgo/auth/clientcreds"
	"github.com/erpnetgo/auth/erpnettest"
)

func main() {
	every := flag.Duration("every", 3*time.Second, "time between Domain API calls")
	n := flag.Int("n", 0, "stop after this many calls (0: run until interrupted)")
	verbose := flag.Bool("v", false, "debug logging (token fetches; never token values)")
	flag.Parse()
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, log, *every, *n); err != nil {
		log.Error("worker failed", "error", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, log *slog.Logger, every time.Duration, n int) error {
	cfg, cleanup, err := config(log)
	if err != nil {
		return err
	}
	defer cleanup()
	cfg.Logger = log
	var fig figures
	cfg.Hooks = fig.hooks()
	sig, stopSig := figuresSignal()
	defer stopSig()
	src, err := clientcreds.New(cfg)
	if err != nil {
		return err
	}
	defer src.Close()
	hc := src.Client(ctx)

	tick := time.NewTicker(every)
	defer tick.Stop()
	ok, failed := 0, 0
	// A worker that never got its job done exits non-zero, so that a
	// supervisor or a CI step notices.
	done := func() error {
		log.Info("done", "calls_ok", ok, "calls_failed", failed)
		fig.log(log, "figures")
		if ok == 0 && failed > 0 {
			return fmt.Errorf("no call succeeded (%d failed)", failed)
		}
		return nil
	}
	for i := 1; ; i++ {
		apiRoot, err := src.DomainAPI(ctx) // from ERP.net auto-discovery, cached
		if err == nil {
			err = call(ctx, hc, apiRoot, log)
		}
		if err != nil {
			switch {
			case errors.Is(err, context.Canceled):
			case errors.Is(err, auth.ErrMisconfigured) && cfg.ClientSecretFile != "" && secretRefused(err):
				// The admin stored a new secret; the mounted file may take a
				// minute to follow. Each call reads it again.
				failed++
				log.Warn("the identity server refused the client secret; waiting for ClientSecretFile to hold the new one", "path", cfg.ClientSecretFile)
			case errors.Is(err, auth.ErrMisconfigured):
				return err // retrying cannot help
			case errors.Is(err, auth.ErrLicenseExhausted):
				failed++
				log.Warn("all ERP.net licenses of this instance are in use; will try again", "error", err)
			default:
				failed++
				log.Warn("call failed; will try again", "error", err) // ErrTemporary and API errors
			}
		} else {
			ok++
		}
		if n > 0 && i >= n {
			return done()
		}
		if err := waitTick(ctx, tick.C, sig, func() { fig.log(log, "figures") }); err != nil {
			log.Info("stopping: signal received")
			return done()
		}
	}
}

// waitTick waits for the next tick, calling figures on every SIGUSR1 in
// between (which makes no API call); it returns ctx's error when ctx ends
// first.
func waitTick(ctx context.Context, tick <-chan time.Time, sig <-chan os.Signal, figures func()) error {
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-sig:
			figures()
		case <-tick:
			return nil
		}
	}
}

// config reads ERPNET_* or, when they are absent, starts the dev server.
func config(log *slog.Logger) (clientcreds.Config, func(), error) {
	if os.Getenv("ERPNET_AUTHORITY") != "" {
		cfg, err := clientcreds.ConfigFromEnv() // ERPNET_DOMAIN_API may name the API root
		return cfg, func() {}, err
	}
	srv, err := erpnettest.Start(erpnettest.Config{})
	if err != nil {
		return clientcreds.Config{}, nil, err
	}
	log.Info("ERPNET_AUTHORITY not set: using the in-process dev identity server", "url", srv.URL(), "client_id", erpnettest.Demo.WorkerID)
	cfg := clientcreds.Config{Authority: srv.URL(), ClientID: erpnettest.Demo.WorkerID,
		ClientSecret: erpnettest.Demo.WorkerSecret, Scopes: []string{"read"}}
	return cfg, func() { srv.Close() }, nil
}

// secretRefused reports whether err is the identity server refusing the
// client secret (invalid_client).
func secretRefused(err error) bool {
	var ae *auth.Error
	return errors.As(err, &ae) && ae.Code == "invalid_client"
}

func call(ctx context.Context, hc *http.Client, apiRoot string, log *slog.Logger) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, apiRoot+"Crm_Sales_Customers?$top=3", nil)
	if err != nil {
		return err
	}
	start := time.Now()
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("the Domain API answered %s", resp.Status)
	}
	var page struct {
		Value []map[string]any `json:"value"`
	}
	if err := json.Unmarshal(body, &page); err != nil {
		return fmt.Errorf("the Domain API response: %w", err)
	}
	log.Info("read customers", "count", len(page.Value), "caller", resp.Header.Get("X-Erpnet-Caller"),
		"took", time.Since(start).Round(time.Millisecond))
	return nil
}
