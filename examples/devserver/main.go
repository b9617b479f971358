// Command devserver runs the ERP.net development identity server on a fixed local port with the
// demo Trusted Applications and users, prints everything needed to try the SDK against it
// (client ids, secrets, redirect URIs, users, a PAT and a SAT), and serves until SIGINT or
// SIGTERM.
//
//	go run ./examples/devserver -addr 127.0.0.1:5080
//
// Then point an example at it, e.g. ERPNET_AUTHORITY=http://127.0.0.1:5080/id.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"

	"github.com/erpnetgo/auth/internal/devserver"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:5080", "listen address (host:port); served over plain HTTP")
	verbose := flag.Bool("v", false, "log every request")
	flag.Parse()
	if err := run(*addr, *verbose, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "devserver:", err)
		os.Exit(1)
	}
}

func run(addr string, verbose bool, out io.Writer) error {
	level := slog.LevelInfo
	if verbose {
		level = slog.LevelDebug
	}
	cfg := devserver.Demo()
	cfg.BaseURL = "http://" + addr
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	srv, err := devserver.Start(cfg)
	if err != nil {
		return err
	}
	defer srv.Close()

	pat, err := srv.IssueReferenceToken(devserver.RefTokenRequest{
		Kind: devserver.PAT, Subject: devserver.DemoAlice, ClientID: devserver.DemoWebAppID,
	})
	if err != nil {
		return fmt.Errorf("minting the demo PAT: %w", err)
	}
	sat, err := srv.IssueReferenceToken(devserver.RefTokenRequest{Kind: devserver.SAT, Subject: devserver.DemoWorkerID})
	if err != nil {
		return fmt.Errorf("minting the demo SAT: %w", err)
	}
	printBanner(out, srv, cfg, pat, sat)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	fmt.Fprintln(out, "\nshutting down")
	return srv.Close()
}

// demoSecrets maps the demo client ids to their secrets (the Config only holds hashes).
var demoSecrets = map[string]string{
	devserver.DemoWebAppID: devserver.DemoWebAppSecret,
	devserver.DemoWorkerID: devserver.DemoWorkerSecret,
}

func printBanner(out io.Writer, srv *devserver.Server, cfg devserver.Config, pat, sat string) {
	fmt.Fprintf(out, "ERP.net development identity server (NOT for production)\n\n")
	fmt.Fprintf(out, "  Instance root   %s\n", srv.URL())
	fmt.Fprintf(out, "  Issuer          %s\n", srv.Issuer())
	fmt.Fprintf(out, "  Discovery       %s/.well-known/openid-configuration\n", srv.Issuer())
	fmt.Fprintf(out, "  Auto-discovery  %s/sys/auto-discovery\n", srv.URL())
	fmt.Fprintf(out, "  Domain API      %s/api/domain/odata/Crm_Sales_Customers\n\n", srv.URL())

	fmt.Fprintln(out, "Trusted Applications:")
	tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  client_id\ttype\tsecret\tsystem user\tscopes\tredirect URIs")
	for _, a := range cfg.Apps {
		secret := demoSecrets[a.ApplicationURI]
		if a.ClientType == devserver.Public {
			secret = "(none)"
		}
		su := "-"
		if a.SystemUserAllowed {
			su = a.SystemUser
		}
		scopes := strings.Join(a.Scopes, " ")
		if scopes == "" {
			scopes = "(all)"
		}
		redirects := strings.Join(a.RedirectURIs, ", ")
		if redirects == "" {
			redirects = "-"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\n", a.ApplicationURI, a.ClientType, secret, su, scopes, redirects)
	}
	_ = tw.Flush()

	fmt.Fprintln(out, "\nUsers:")
	tw = tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  user\tpassword\tname\tadministrator")
	for _, u := range cfg.Users {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%v\n", u.Username, u.Password, u.Name, u.Administrator)
	}
	_ = tw.Flush()

	fmt.Fprintln(out, "\nReference tokens (valid one year, scopes read update):")
	tw = tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "  PAT\tuser %s\t%s\n", devserver.DemoAlice, pat)
	fmt.Fprintf(tw, "  SAT\tapp %s (acts as %s)\t%s\n", devserver.DemoWorkerID, devserver.DemoWorkerSystemUser, sat)
	_ = tw.Flush()
	fmt.Fprintf(out, "\nTry:\n  curl -H 'X-Api-Key: %s' %s/api/domain/odata/Crm_Sales_Customers\n", sat, srv.URL())
	fmt.Fprintln(out, "\nPress Ctrl+C to stop.")
}
