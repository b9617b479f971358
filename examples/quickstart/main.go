// Command quickstart walks through every flow of the SDK against the
// ERP.net-shaped dev identity server (package erpnettest), started
// in-process: service tokens
// (clientcreds), reference tokens (reftoken), a web sign-in with refresh
// and sign-out (authcode), a CLI loopback sign-in, and an app that does both
// kinds of work without mixing them (hybrid). It prints each step in a few
// lines and exits non-zero if any step fails.
//
//	go run ./examples/quickstart
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"time"

	"github.com/erpnetgo/auth/authcode"
	"github.com/erpnetgo/auth/clientcreds"
	"github.com/erpnetgo/auth/erpnettest"
	"github.com/erpnetgo/auth/reftoken"
)

const usage = `Usage: go run ./examples/quickstart

Walks through every flow of the SDK against the ERP.net-shaped dev identity server, started
in-process: service tokens (clientcreds), reference tokens (reftoken), a CLI loopback sign-in
and a web sign-in with refresh and sign-out (authcode), and an app doing both (hybrid). It
needs no ERP.net instance and no set-up, prints each step, and exits non-zero if one fails.
`

func main() {
	flag.Usage = func() { fmt.Fprint(flag.CommandLine.Output(), usage) }
	flag.Parse() // -h prints the usage; there are no flags
	if flag.NArg() > 0 {
		flag.Usage()
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := run(ctx, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "\nquickstart FAILED:", err)
		os.Exit(1)
	}
}

// step is one part of the walk-through.
type step struct {
	title string
	fn    func(context.Context) error
}

// qs is the state shared by the steps.
type qs struct {
	out io.Writer
	idp *erpnettest.Server
	app *httptest.Server // the web app's listener (the demo app accepts any 127.0.0.1 port)
	mux *http.ServeMux
	// portal is the hybrid app's listener.
	portal    *httptest.Server
	portalMux *http.ServeMux
}

func run(ctx context.Context, out io.Writer) error {
	q := &qs{out: out, mux: http.NewServeMux(), portalMux: http.NewServeMux()}
	q.app = httptest.NewServer(q.mux)
	defer q.app.Close()
	q.portal = httptest.NewServer(q.portalMux)
	defer q.portal.Close()
	// The demo web application accepts http://127.0.0.1:<any port>/callback
	// and .../ as its redirect and post-logout URIs: both listeners qualify.
	idp, err := erpnettest.Start(erpnettest.Config{})
	if err != nil {
		return err
	}
	defer idp.Close()
	q.idp = idp
	q.say("1. Dev identity server", "issuer %s (ERP.net shape: /id, /sys/auto-discovery, Domain API stand-in)", idp.Authority())

	steps := []step{
		{"2. Service token (clientcreds)", q.serviceToken},
		{"3. Reference tokens (reftoken)", q.referenceTokens},
		{"4. CLI sign-in on a loopback port (authcode)", q.loopback},
	}
	steps = append(steps, moreSteps(q)...)
	// Last, because it moves the identity server's clock forward an hour.
	steps = append(steps, step{fmt.Sprintf("%d. Web sign-in, refresh and sign-out (authcode)", len(steps)+2), q.webSignIn})
	for _, s := range steps {
		fmt.Fprintf(out, "\n%s\n", s.title)
		if err := s.fn(ctx); err != nil {
			return fmt.Errorf("%s: %w", s.title, err)
		}
	}
	fmt.Fprintln(out, "\nAll steps passed.")
	return nil
}

func (q *qs) say(title, format string, args ...any) {
	if title != "" {
		fmt.Fprintf(q.out, "%s\n", title)
	}
	fmt.Fprintf(q.out, "   "+format+"\n", args...)
}

func (q *qs) odata(set string) string { return q.idp.DomainAPI() + set }

// get calls url with hc and returns the caller the Domain API saw and how
// many records came back.
func get(ctx context.Context, hc *http.Client, url string) (caller string, n int, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", 0, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return "", 0, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return "", 0, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	var page struct {
		Value []json.RawMessage `json:"value"`
	}
	if err := json.Unmarshal(body, &page); err != nil {
		return "", 0, err
	}
	return resp.Header.Get("X-Erpnet-Caller"), len(page.Value), nil
}

func (q *qs) serviceToken(ctx context.Context) error {
	src, err := clientcreds.New(clientcreds.Config{
		Authority: q.idp.URL(), // the instance root: resolved through /sys/auto-discovery
		ClientID:  erpnettest.Demo.WorkerID, ClientSecret: erpnettest.Demo.WorkerSecret,
		Scopes: []string{"read"},
	})
	if err != nil {
		return err
	}
	defer src.Close()
	hc := src.Client(ctx)
	before := q.idp.Requests("token")
	for i := 0; i < 3; i++ {
		caller, n, err := get(ctx, hc, q.odata("Crm_Sales_Customers?$top=5"))
		if err != nil {
			return err
		}
		if i == 0 {
			q.say("", "read %d customers as %s", n, caller)
		}
	}
	if got := q.idp.Requests("token") - before; got != 1 {
		return fmt.Errorf("expected 1 token request for 3 calls, saw %d", got)
	}
	q.say("", "3 API calls, 1 token request: the token is cached and refreshed in the background")
	return nil
}

func (q *qs) referenceTokens(ctx context.Context) error {
	for _, c := range []struct {
		pat    bool
		header reftoken.Header
	}{
		{true, reftoken.Bearer},
		{false, reftoken.APIKey},
	} {
		raw := q.idp.MintSAT(erpnettest.Demo.WorkerID, "read")
		if c.pat {
			raw = q.idp.MintPAT(erpnettest.Demo.Alice, "read")
		}
		tok, err := reftoken.Parse(raw)
		if err != nil {
			return err
		}
		hc, err := tok.Client(reftoken.Config{Authority: q.idp.URL(), Header: c.header})
		if err != nil {
			return err
		}
		caller, n, err := get(ctx, hc, q.odata("Crm_Sales_Customers?$top=5"))
		if err != nil {
			return err
		}
		q.say("", "%v sent as %s: read %d customers as %s (printed token: %v)", kindName(c.pat), c.header, n, caller, tok)
		if c.pat {
			q.idp.RevokeToken(raw)
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, q.odata("Crm_Sales_Customers"), nil)
			resp, err := hc.Do(req)
			if err != nil {
				return err
			}
			resp.Body.Close()
			if err := reftoken.CheckResponse(resp); !errors.Is(err, reftoken.ErrTokenRejected) {
				return fmt.Errorf("revoked PAT: want ErrTokenRejected, got %v", err)
			}
			q.say("", "after revocation the same PAT gives ErrTokenRejected (no retry: it cannot be refreshed)")
		}
	}
	return nil
}

func kindName(pat bool) string {
	if pat {
		return "PAT (user alice)"
	}
	return "SAT (System User)"
}

func (q *qs) webSignIn(ctx context.Context) error {
	key := make([]byte, 32)
	rand.Read(key)
	ac, err := authcode.New(authcode.Config{
		Authority: q.idp.URL(), ClientID: erpnettest.Demo.WebAppID, ClientSecret: erpnettest.Demo.WebAppSecret,
		RedirectURL: q.app.URL + "/callback", PostLogoutRedirectURL: q.app.URL + "/",
		Keys: [][]byte{key}, // nil Store: sessions in memory
	})
	if err != nil {
		return err
	}
	defer ac.Close()
	q.mux.Handle("/signin", ac.SignIn())
	q.mux.Handle("/callback", ac.Callback())
	q.mux.Handle("/signout", ac.SignOut())
	q.mux.Handle("/customers", ac.RequireUser(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sess := authcode.SessionFromContext(r.Context())
		caller, n, err := get(r.Context(), ac.UserClient(r.Context(), sess), q.odata("Crm_Sales_Customers?$top=5"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		fmt.Fprintf(w, "%s read %d customers", caller, n)
	})))
	q.mux.HandleFunc("/{$}", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "home") })

	// Not signed in: the protected page sends the browser to sign in. Here
	// erpnettest plays the browser and fills in the sign-in form as alice.
	b, err := q.idp.SignIn(q.app.URL+"/customers", erpnettest.Demo.Alice)
	if err != nil {
		return err
	}
	page, err := fetch(ctx, b, http.MethodGet, q.app.URL+"/customers")
	if err != nil {
		return err
	}
	if !strings.Contains(page, "user:alice") {
		return fmt.Errorf("protected page after sign-in: %q", page)
	}
	q.say("", "GET /customers -> /signin -> identity server -> /callback (state, PKCE, nonce, ID token checked) -> /customers")
	q.say("", "page says: %q", page)
	for _, c := range b.Jar.Cookies(mustURL(q.app.URL)) {
		q.say("", "cookie %s holds a sealed session id (%d bytes), never a token", c.Name, len(c.Value))
	}

	// An hour later the access token has expired; the refresh token is
	// redeemed once, the rotated one saved before use.
	q.idp.Advance(61 * time.Minute)
	before := q.idp.Requests("token")
	page, err = fetch(ctx, b, http.MethodGet, q.app.URL+"/customers")
	if err != nil {
		return err
	}
	q.say("", "an hour later (server clock advanced): %d token request (the refresh), page still says %q", q.idp.Requests("token")-before, page)

	if _, err := fetch(ctx, b, http.MethodPost, q.app.URL+"/signout"); err != nil {
		return err
	}
	// The same browser is now signed out: an API-style request gets 401.
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, q.app.URL+"/customers", nil)
	req.Header.Set("Accept", "application/json")
	resp, err := b.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		return fmt.Errorf("after sign-out /customers answered %s, want 401", resp.Status)
	}
	q.say("", "POST /signout: refresh token revoked (%d revocation call), session deleted, end_session visited; /customers now answers 401",
		q.idp.Requests("revocation"))
	return nil
}

func (q *qs) loopback(ctx context.Context) error {
	ac, err := authcode.New(authcode.Config{Authority: q.idp.URL(), ClientID: erpnettest.Demo.CLIID})
	if err != nil {
		return err
	}
	defer ac.Close()
	sess, err := ac.LoopbackSignIn(ctx, authcode.LoopbackOptions{
		// A real CLI opens the system browser (the default); here erpnettest
		// plays the browser and fills in the sign-in form as bob.
		OpenBrowser: func(u string) error {
			_, err := q.idp.SignIn(u, erpnettest.Demo.Bob)
			return err
		},
		Timeout: 30 * time.Second,
		Output:  io.Discard, // the "open this address" line
	})
	if err != nil {
		return err
	}
	caller, n, err := get(ctx, ac.UserClient(ctx, sess), q.odata("General_Contacts"))
	if err != nil {
		return err
	}
	q.say("", "public client %s, redirect to 127.0.0.1 on a random port, PKCE, no secret", erpnettest.Demo.CLIID)
	q.say("", "read %d contacts as %s", n, caller)
	return nil
}

func fetch(ctx context.Context, hc *http.Client, method, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Accept", "text/html")
	resp, err := hc.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode >= 400 {
		return "", fmt.Errorf("%s %s: %s: %s", method, url, resp.Status, bytes.TrimSpace(body))
	}
	return string(body), nil
}
