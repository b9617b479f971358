// Command devserver runs an ERP.net-shaped development identity server (package erpnettest)
// on a fixed local port with the demo Trusted Applications and users, prints everything
// needed to try the SDK against it (client ids, secrets, redirect URIs, users, a PAT and a
// SAT), and serves until SIGINT or SIGTERM.
//
//	go run ./examples/devserver -addr 127.0.0.1:5080
//
// Then point an example at it, e.g. ERPNET_AUTHORITY=http://127.0.0.1:5080.
//
// Token lifetimes and faults can be set to try an app against short-lived tokens or an
// outage by hand:
//
//	go run ./examples/devserver -access-token-lifetime 2m -fault token=503x5
//
// A -fault flag (repeatable) reads ENDPOINT=KIND[xN][@DURATION]: the next N requests (default
// 1) to ENDPOINT get the fault KIND, one of
//
//	503, 429, 500, ...   that HTTP status; @DURATION sends Retry-After (e.g. token=429x3@2s)
//	drop                 the connection is closed without a response
//	malformed            truncated JSON (status 200)
//	oversized            a 10 MiB JSON body (status 200)
//	empty                an empty body (status 200)
//	slow                 the response is delayed by DURATION (e.g. jwks=slow@3s), then served
//
// ENDPOINT is one of discovery, jwks, authorize, signin, token, userinfo, revocation,
// introspect, endsession, autodiscovery and domainapi.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/erpnetgo/auth/erpnettest"
)

// options are the command line's settings.
type options struct {
	addr    string
	verbose bool
	cfg     erpnettest.Config
	faults  []fault
}

// fault is one parsed -fault flag.
type fault struct {
	spec     string
	endpoint string
	f        erpnettest.Fault
}

func main() {
	var o options
	flag.StringVar(&o.addr, "addr", "127.0.0.1:5080", "listen address (host:port); served over plain HTTP")
	flag.BoolVar(&o.verbose, "v", false, "log every request")
	flag.DurationVar(&o.cfg.AccessTokenLifetime, "access-token-lifetime", 0, "access token lifetime (default 1h)")
	flag.DurationVar(&o.cfg.IDTokenLifetime, "id-token-lifetime", 0, "ID token lifetime (default 5m)")
	flag.DurationVar(&o.cfg.RefreshTokenLifetime, "refresh-token-lifetime", 0, "refresh token lifetime (default 30 days, 24h for public clients)")
	flag.IntVar(&o.cfg.LicenseCount, "license-count", 0, "ERP.net API sessions allowed at once on the Domain API (0: unlimited)")
	flag.Func("fault", "inject a fault: ENDPOINT=KIND[xN][@DURATION], e.g. token=503x5 (repeatable; see go doc)", func(s string) error {
		f, err := parseFault(s)
		if err == nil {
			o.faults = append(o.faults, f)
		}
		return err
	})
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o, os.Stdout, nil); err != nil {
		fmt.Fprintln(os.Stderr, "devserver:", err)
		os.Exit(1)
	}
}

// run serves until ctx ends; ready, if not nil, gets the server once it listens.
func run(ctx context.Context, o options, out io.Writer, ready func(*erpnettest.Server)) error {
	level := slog.LevelInfo
	if o.verbose {
		level = slog.LevelDebug
	}
	o.cfg.Addr = o.addr
	o.cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	srv, err := erpnettest.Start(o.cfg)
	if err != nil {
		return err
	}
	defer srv.Close()
	for _, f := range o.faults {
		srv.InjectFault(f.endpoint, f.f)
	}
	pat := srv.MintPAT(erpnettest.Demo.Alice)
	sat := srv.MintSAT(erpnettest.Demo.WorkerID)
	printBanner(out, srv, o, pat, sat)
	if ready != nil {
		ready(srv)
	}
	<-ctx.Done()
	fmt.Fprintln(out, "\nshutting down")
	return srv.Close()
}

// endpoints are the names erpnettest knows (see its package documentation).
var endpoints = []string{"discovery", "jwks", "authorize", "signin", "token", "userinfo",
	"revocation", "introspect", "endsession", "autodiscovery", "domainapi"}

// parseFault reads ENDPOINT=KIND[xN][@DURATION].
func parseFault(spec string) (fault, error) {
	bad := func(format string, args ...any) (fault, error) {
		return fault{}, fmt.Errorf("fault %q: "+format, append([]any{spec}, args...)...)
	}
	ep, rest, ok := strings.Cut(strings.TrimSpace(spec), "=")
	if !ok || rest == "" {
		return bad("want ENDPOINT=KIND[xN][@DURATION], e.g. token=503x5")
	}
	norm := strings.NewReplacer("-", "", "_", "").Replace(strings.ToLower(ep))
	known := false
	for _, e := range endpoints {
		known = known || e == norm
	}
	if !known {
		return bad("unknown endpoint %q (want one of %s)", ep, strings.Join(endpoints, ", "))
	}
	var d time.Duration
	if i := strings.LastIndex(rest, "@"); i >= 0 {
		var err error
		if d, err = time.ParseDuration(rest[i+1:]); err != nil || d <= 0 {
			return bad("bad duration %q", rest[i+1:])
		}
		rest = rest[:i]
	}
	f := erpnettest.Fault{Times: 1}
	if i := strings.LastIndex(rest, "x"); i >= 0 {
		n, err := strconv.Atoi(rest[i+1:])
		if err != nil || n < 1 || n > 1_000_000 {
			return bad("bad count %q", rest[i+1:])
		}
		f.Times, rest = n, rest[:i]
	}
	switch rest {
	case "drop":
		f.Drop = true
	case "malformed":
		f.Malformed = true
	case "oversized":
		f.Oversized = true
	case "empty":
		f.Empty = true
	case "slow":
		if d == 0 {
			return bad("slow needs a duration, e.g. slow@2s")
		}
		f.Latency = d
		d = 0
	default:
		status, err := strconv.Atoi(rest)
		if err != nil || status < 100 || status > 599 {
			return bad("unknown kind %q (want an HTTP status, drop, malformed, oversized, empty or slow)", rest)
		}
		f.Status, f.RetryAfter, d = status, d, 0
	}
	if d != 0 {
		return bad("@DURATION goes with an HTTP status (Retry-After) or slow (latency)")
	}
	return fault{spec: spec, endpoint: norm, f: f}, nil
}

func printBanner(out io.Writer, srv *erpnettest.Server, o options, pat, sat string) {
	d := erpnettest.Demo
	fmt.Fprintf(out, "ERP.net development identity server (NOT for production)\n\n")
	fmt.Fprintf(out, "  Instance root   %s   (an app's Authority)\n", srv.URL())
	fmt.Fprintf(out, "  Issuer          %s\n", srv.Authority())
	fmt.Fprintf(out, "  Discovery       %s/.well-known/openid-configuration\n", srv.Authority())
	fmt.Fprintf(out, "  Auto-discovery  %s/sys/auto-discovery\n", srv.URL())
	fmt.Fprintf(out, "  Domain API      %sCrm_Sales_Customers\n\n", srv.DomainAPI())

	fmt.Fprintln(out, "Trusted Applications:")
	tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  client_id\ttype\tsecret\tsystem user\tscopes\tredirect URIs")
	fmt.Fprintf(tw, "  %s\tconfidential\t%s\tportal-system\t(all)\thttp://127.0.0.1:<any port>/callback, http://localhost:8080/callback\n", d.WebAppID, d.WebAppSecret)
	fmt.Fprintf(tw, "  %s\tconfidential\t%s\tworker-system\tread update\t-\n", d.WorkerID, d.WorkerSecret)
	fmt.Fprintf(tw, "  %s\tpublic\t(none)\t-\topenid profile read update offline_access\thttp://127.0.0.1:<any port>/callback\n", d.CLIID)
	_ = tw.Flush()
	fmt.Fprintf(out, "  (%s also accepts the post-logout URIs http://127.0.0.1:<any port>/ and /signed-out)\n", d.WebAppID)

	fmt.Fprintln(out, "\nUsers:")
	tw = tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  user\tpassword\tadministrator")
	fmt.Fprintf(tw, "  %s\t%s\ttrue\n", d.Alice, d.AlicePassword)
	fmt.Fprintf(tw, "  %s\t%s\tfalse\n", d.Bob, d.BobPassword)
	_ = tw.Flush()

	life := func(v time.Duration, def string) string {
		if v == 0 {
			return def
		}
		return v.String()
	}
	fmt.Fprintf(out, "\nToken lifetimes: access %s, ID %s, refresh %s\n",
		life(o.cfg.AccessTokenLifetime, "1h (default)"), life(o.cfg.IDTokenLifetime, "5m (default)"),
		life(o.cfg.RefreshTokenLifetime, "30 days / 24h public (default)"))
	if o.cfg.LicenseCount > 0 {
		fmt.Fprintf(out, "Licenses: %d ERP.net API sessions at once\n", o.cfg.LicenseCount)
	}
	for _, f := range o.faults {
		fmt.Fprintf(out, "Fault armed: %s\n", f.spec)
	}

	fmt.Fprintln(out, "\nReference tokens (valid one year, scopes read update):")
	tw = tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "  PAT\tuser %s\t%s\n", d.Alice, pat)
	fmt.Fprintf(tw, "  SAT\tapp %s (acts as worker-system)\t%s\n", d.WorkerID, sat)
	_ = tw.Flush()
	fmt.Fprintf(out, "\nTry:\n  curl -H 'X-Api-Key: %s' %sCrm_Sales_Customers\n", sat, srv.DomainAPI())
	fmt.Fprintln(out, "\nPress Ctrl+C to stop.")
}
