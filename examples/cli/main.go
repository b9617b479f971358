// Command cli signs a user in from the command line through the system
// browser (a loopback redirect to 127.0.0.1, public client, PKCE) and calls
// the ERP.net Domain API once as that user, printing the caller and a few
// customers.
//
//	go run ./examples/cli -auto     # unattended, against the in-process dev server
//	go run ./examples/cli           # opens your browser; sign in as alice / alice-password
//
// Against a real instance (the Trusted Application must be a Public client
// with the redirect URI http://127.0.0.1/callback):
//
//	export ERPNET_AUTHORITY=https://demodb.my.erp.net
//	export ERPNET_CLIENT_ID=com.example/cli
//	go run ./examples/cli -session-file ~/.config/erpnet-cli/session.json
//
// With -session-file the session (with its refresh token) is kept in that
// file (an authcode.FileStore, mode 0600) and the next run signs in without
// the browser while the refresh token is still accepted.
//
// On a machine without a browser (a session over SSH, no xdg-open, or
// ERPNET_NO_BROWSER=1) it prints the sign-in address: open it in a browser
// anywhere, sign in, and paste the address the browser ends on (a page on
// 127.0.0.1 that does not load) back into the terminal.
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
	"os/exec"
	"os/signal"
	"runtime"
	"time"

	"github.com/erpnetgo/auth/authcode"
	"github.com/erpnetgo/auth/erpnettest"
)

func main() {
	auto := flag.Bool("auto", false, "dev server only: sign alice in without a browser, an HTTP client filling in the sign-in form (for unattended runs)")
	sessionFile := flag.String("session-file", "", "keep the session in this file (0600) and reuse it on the next run")
	timeout := flag.Duration("timeout", 5*time.Minute, "how long to wait for the browser sign-in")
	verbose := flag.Bool("v", false, "debug logging (never token values)")
	flag.Parse()
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Stdout, log, options{auto: *auto, sessionFile: *sessionFile, timeout: *timeout, in: os.Stdin}); err != nil {
		fmt.Fprintln(os.Stderr, "cli:", err)
		os.Exit(1)
	}
}

type options struct {
	auto        bool
	sessionFile string
	timeout     time.Duration
	in          io.Reader // where the address the browser ended on is pasted (os.Stdin)
}

func run(ctx context.Context, out io.Writer, log *slog.Logger, opts options) error {
	cfg := authcode.Config{Logger: log}
	if opts.sessionFile != "" {
		cfg.Store = &authcode.FileStore{Path: opts.sessionFile}
	}
	var openBrowser func(string) error // nil: the system browser
	if authority := os.Getenv("ERPNET_AUTHORITY"); authority != "" {
		if opts.auto {
			return errors.New("-auto only works with the in-process dev server (unset ERPNET_AUTHORITY)")
		}
		cfg.Authority = authority
		cfg.ClientID = os.Getenv("ERPNET_CLIENT_ID")
		cfg.DomainAPI = os.Getenv("ERPNET_DOMAIN_API") // empty: found by auto-discovery
	} else {
		idp, err := erpnettest.Start(erpnettest.Config{})
		if err != nil {
			return err
		}
		defer idp.Close()
		fmt.Fprintf(out, "Using the in-process dev identity server at %s (users alice/alice-password, bob/bob-password)\n", idp.URL())
		cfg.Authority, cfg.ClientID = idp.URL(), erpnettest.Demo.CLIID // a public client: no secret
		if opts.auto {
			// Nobody is at the keyboard: an HTTP client plays the browser,
			// filling in the dev server's sign-in form as alice.
			openBrowser = func(u string) error {
				_, err := idp.SignIn(u, erpnettest.Demo.Alice)
				return err
			}
		}
	}
	c, err := authcode.New(cfg)
	if err != nil {
		return err
	}
	defer c.Close()

	how := "through the browser"
	lopts := authcode.LoopbackOptions{OpenBrowser: openBrowser, Timeout: opts.timeout, Output: out}
	switch {
	case openBrowser != nil:
		how = "without a browser (an HTTP client filled in the sign-in form)"
	case noBrowser():
		// The browser is elsewhere: its redirect to 127.0.0.1 cannot reach
		// this machine, so the user pastes the address it ended on.
		lopts.OpenBrowser = func(string) error { return errors.New("no browser on this machine") }
		lopts.Paste = opts.in
	}
	start := time.Now()
	sess, err := c.LoopbackSignIn(ctx, lopts)
	if err != nil {
		return err
	}
	if sess.SignedInAt.Before(start) {
		how = "with the saved session (no browser needed)"
	}
	fmt.Fprintf(out, "Signed in as %s (%s) %s\n", sess.Subject, sess.Name, how)

	root, err := c.DomainAPI(ctx)
	if err != nil {
		return err
	}
	resp, err := c.UserClient(ctx, sess).Get(root + "Crm_Sales_Customers?$top=3")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		return fmt.Errorf("the Domain API answered %s: %s", resp.Status, b)
	}
	var body struct {
		Value []struct {
			Number, Name string
		} `json:"value"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 4<<20)).Decode(&body); err != nil {
		return fmt.Errorf("unexpected Domain API response: %w", err)
	}
	caller := resp.Header.Get("X-Erpnet-Caller")
	if caller == "" {
		caller = sess.Subject
	}
	fmt.Fprintf(out, "Domain API caller: %s\n", caller)
	for _, cust := range body.Value {
		fmt.Fprintf(out, "  %-8s %s\n", cust.Number, cust.Name)
	}
	return nil
}

// noBrowser reports whether no browser can open on this machine:
// ERPNET_NO_BROWSER=1 (0 says one can), a session over SSH without X
// forwarding, or (outside macOS and Windows) no xdg-open to open one.
func noBrowser() bool {
	if v := os.Getenv("ERPNET_NO_BROWSER"); v == "1" || v == "0" {
		return v == "1"
	}
	if (os.Getenv("SSH_CONNECTION") != "" || os.Getenv("SSH_TTY") != "") && os.Getenv("DISPLAY") == "" {
		return true
	}
	switch runtime.GOOS {
	case "darwin", "windows":
		return false
	}
	_, err := exec.LookPath("xdg-open")
	return err != nil
}
