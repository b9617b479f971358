// Command script is the smallest program that calls the ERP.net Domain API with a reference
// token (PAT or SAT): it lists up to ten customers and prints who the server says the caller is.
//
// Against a real instance:
//
//	export ERPNET_AUTHORITY=https://demodb.my.erp.net   # the instance root (or its /id URL)
//	export ERPNET_TOKEN=enrt_...                         # a PAT or SAT
//	go run ./examples/script
//
// ERPNET_HEADER=apikey sends the token as X-Api-Key instead of Authorization: Bearer;
// ERPNET_DOMAIN_API names the Domain API root when it is not <instance root>/api/domain/odata/.
//
// With ERPNET_TOKEN unset, the program starts the development identity server (package
// erpnettest) in-process, mints a PAT for the demo user alice and uses that, saying so. It
// exits with status 1 and the error (never the token) on failure.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/erpnetgo/auth/erpnettest"
	"github.com/erpnetgo/auth/reftoken"
)

func main() {
	flag.Usage = func() {
		fmt.Fprint(flag.CommandLine.Output(), usage)
	}
	flag.Parse() // -h prints the usage; there are no flags
	if flag.NArg() > 0 {
		flag.Usage()
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	err := run(ctx, os.Stdout)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

const usage = `Usage: go run ./examples/script

Lists up to ten customers from the ERP.net Domain API with a reference token (PAT or SAT).

Environment:
  ERPNET_AUTHORITY   the instance root, e.g. https://demodb.my.erp.net (or its /id URL)
  ERPNET_TOKEN       the token, enrt_...; unset: an in-process dev server and a PAT for alice
  ERPNET_HEADER      bearer (default) or apikey (sends X-Api-Key)
  ERPNET_DOMAIN_API  the Domain API root, when it is not <instance root>/api/domain/odata/
`

// run does the work, reading the ERPNET_* environment variables.
func run(ctx context.Context, out io.Writer) error {
	getenv := os.Getenv
	authority := strings.TrimRight(getenv("ERPNET_AUTHORITY"), "/")
	domainAPI := getenv("ERPNET_DOMAIN_API")
	header := reftoken.Bearer
	switch h := strings.ToLower(getenv("ERPNET_HEADER")); h {
	case "", "bearer":
	case "apikey", "api-key", "x-api-key":
		header = reftoken.APIKey
	default:
		return fmt.Errorf("ERPNET_HEADER must be bearer or apikey, not %q", h)
	}

	var tok reftoken.Token
	if getenv("ERPNET_TOKEN") == "" {
		srv, err := erpnettest.Start(erpnettest.Config{})
		if err != nil {
			return fmt.Errorf("starting the dev server: %w", err)
		}
		defer srv.Close()
		raw := srv.MintPAT(erpnettest.Demo.Alice, "read")
		if tok, err = reftoken.Parse(raw); err != nil {
			return err
		}
		if authority != "" {
			fmt.Fprintln(out, "ERPNET_AUTHORITY is ignored without ERPNET_TOKEN.")
		}
		authority, domainAPI = srv.URL(), ""
		fmt.Fprintf(out, "ERPNET_TOKEN is not set: using an in-process dev server at %s with a PAT minted for %q.\n",
			authority, erpnettest.Demo.Alice)
	} else {
		var err error
		if tok, err = reftoken.FromEnv("ERPNET_TOKEN"); err != nil {
			return err
		}
		if authority == "" {
			return errors.New("ERPNET_AUTHORITY (the instance root, e.g. https://demodb.my.erp.net) is required with ERPNET_TOKEN")
		}
	}

	client, err := tok.Client(reftoken.Config{Authority: authority, DomainAPI: domainAPI, Header: header})
	if err != nil {
		return err
	}
	defer client.CloseIdleConnections()
	if domainAPI == "" { // as reftoken.Config documents it
		domainAPI = strings.TrimSuffix(authority, "/id") + "/api/domain/odata/"
	}
	if !strings.HasSuffix(domainAPI, "/") {
		domainAPI += "/"
	}

	req, err := http.NewRequestWithContext(ctx, http.MethodGet, domainAPI+"Crm_Sales_Customers?$top=10", nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := reftoken.CheckResponse(resp); err != nil {
		return err
	}
	var page struct {
		Value []struct {
			Number, Name string
		} `json:"value"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 8<<20)).Decode(&page); err != nil {
		return fmt.Errorf("decoding the customer list: %w", err)
	}
	caller := resp.Header.Get("X-Erpnet-Caller")
	if caller == "" {
		caller = "(not reported by this server)"
	}
	fmt.Fprintf(out, "Caller: %s (token sent as %s)\n", caller, header)
	fmt.Fprintf(out, "%d customers:\n", len(page.Value))
	for _, c := range page.Value {
		fmt.Fprintf(out, "  %-8s %s\n", c.Number, c.Name)
	}
	return nil
}
