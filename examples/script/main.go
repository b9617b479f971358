// Command script is the smallest program that calls the ERP.net Domain API with a reference
// token (PAT or SAT): it lists up to ten customers and prints who the server says the caller is.
//
// Against a real instance:
//
//	export ERPNET_URL=https://demodb.my.erp.net   # the instance root
//	export ERPNET_TOKEN=enrt_...                   # a PAT or SAT
//	go run ./examples/script
//
// ERPNET_HEADER=apikey sends the token as X-Api-Key instead of Authorization: Bearer.
//
// With ERPNET_TOKEN unset, the program starts the development identity server (package
// erpnettest) in-process, mints a PAT for the demo user alice and uses that, saying so. It
// exits with status 1 and the error (never the token) on failure.
package main

import (
	"context"
	"encoding/json"
	"errors"
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
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	err := run(ctx, os.Stdout)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

// run does the work, reading the ERPNET_* environment variables.
func run(ctx context.Context, out io.Writer) error {
	getenv := os.Getenv
	root := strings.TrimRight(getenv("ERPNET_URL"), "/")
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
		if root != "" {
			fmt.Fprintln(out, "ERPNET_URL is ignored without ERPNET_TOKEN.")
		}
		root = srv.URL()
		fmt.Fprintf(out, "ERPNET_TOKEN is not set: using an in-process dev server at %s with a PAT minted for %q.\n",
			root, erpnettest.Demo.Alice)
	} else {
		var err error
		if tok, err = reftoken.FromEnv("ERPNET_TOKEN"); err != nil {
			return err
		}
		if root == "" {
			return errors.New("ERPNET_URL (the instance root, e.g. https://demodb.my.erp.net) is required with ERPNET_TOKEN")
		}
	}

	client, err := tok.Client(reftoken.Config{Authority: root, Header: header})
	if err != nil {
		return err
	}
	defer client.CloseIdleConnections()

	req, err := http.NewRequestWithContext(ctx, http.MethodGet, root+"/api/domain/odata/Crm_Sales_Customers?$top=10", nil)
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
