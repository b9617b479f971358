package auth_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/erpnetgo/auth"
	"github.com/erpnetgo/auth/authcode"
	"github.com/erpnetgo/auth/clientcreds"
	"github.com/erpnetgo/auth/erpnettest"
)

// budgetClock is an app's clock that the test moves with the server's.
type budgetClock struct{ off atomic.Int64 }

func (c *budgetClock) Now() time.Time { return time.Now().Add(time.Duration(c.off.Load())) }

// budgetRun is one scenario of README's license budget: some servers,
// one API call a minute for each caller, three hours.
type budgetRun struct {
	t       *testing.T
	clk     budgetClock
	servers []*erpnettest.Server
	maxHeld int
	// ahead counts background refreshes started and not yet landed: the
	// simulated minute ends only when they have, as it would in real time.
	ahead atomic.Int64
}

// hooks follow the apps' background refreshes (token.refresh_ahead, then
// the token request that ends it).
func (r *budgetRun) hooks() *auth.Hooks {
	return &auth.Hooks{Event: func(_ context.Context, e auth.Event) {
		switch e.Name {
		case "token.refresh_ahead":
			r.ahead.Add(1)
		case "token.issued", "token.failed":
			for n := r.ahead.Load(); n > 0 && !r.ahead.CompareAndSwap(n, n-1); n = r.ahead.Load() {
			}
		}
	}}
}

// settle waits until every background refresh started has landed.
func (r *budgetRun) settle(minute int) {
	deadline := time.Now().Add(30 * time.Second)
	for r.ahead.Load() > 0 {
		if time.Now().After(deadline) {
			r.t.Fatalf("minute %d: a background refresh never landed", minute)
		}
		time.Sleep(time.Millisecond)
	}
}

const budgetMinutes = 180

func newBudgetRun(t *testing.T, servers int) *budgetRun {
	r := &budgetRun{t: t}
	for range servers {
		r.servers = append(r.servers, erpnettest.NewServer(t))
	}
	return r
}

// run calls each caller once a minute for three hours of both clocks.
func (r *budgetRun) run(callers ...func() error) {
	for minute := 0; minute < budgetMinutes; minute++ {
		for i, call := range callers {
			if err := call(); err != nil {
				r.t.Fatalf("minute %d, caller %d: %v", minute, i, err)
			}
		}
		r.settle(minute)
		for _, s := range r.servers {
			r.maxHeld = max(r.maxHeld, s.LicensesInUse())
		}
		r.clk.off.Add(int64(time.Minute))
		for _, s := range r.servers {
			s.Advance(time.Minute)
		}
	}
}

func (r *budgetRun) opened() int { return r.servers[0].SessionsOpened() }

func apiCall(hc *http.Client, url string) error {
	resp, err := hc.Get(url + "Crm_Sales_Customers?$top=1")
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("the Domain API answered %s", resp.Status)
	}
	return nil
}

// worker returns a caller that is one worker process with one Source.
func (r *budgetRun) worker(srv *erpnettest.Server) func() error {
	src, err := clientcreds.New(clientcreds.Config{Authority: srv.URL(), ClientID: erpnettest.Demo.WorkerID,
		ClientSecret: erpnettest.Demo.WorkerSecret, Now: r.clk.Now, Hooks: r.hooks()})
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() { src.Close() })
	hc := src.Client(context.Background())
	return func() error { return apiCall(hc, srv.DomainAPI()) }
}

// users returns one caller per user, each signed in to a web app built
// on authcode and calling the Domain API as the user.
func (r *budgetRun) users(srv *erpnettest.Server, names ...string) []func() error {
	mux := http.NewServeMux()
	ts := httptest.NewServer(mux)
	r.t.Cleanup(ts.Close)
	c, err := authcode.New(authcode.Config{Authority: srv.URL(), ClientID: erpnettest.Demo.WebAppID,
		ClientSecret: erpnettest.Demo.WebAppSecret, RedirectURL: ts.URL + "/callback",
		Keys: [][]byte{bytes.Repeat([]byte{5}, 32)}, Now: r.clk.Now, Hooks: r.hooks()})
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() { c.Close() })
	mux.Handle("/signin", c.SignIn())
	mux.Handle("/callback", c.Callback())
	mux.Handle("/api", c.RequireUser(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if err := apiCall(c.UserClient(req.Context(), authcode.SessionFromContext(req.Context())), srv.DomainAPI()); err != nil {
			http.Error(w, "API call failed", http.StatusBadGateway)
		}
	})))
	var out []func() error
	for _, name := range names {
		browser, err := srv.SignIn(ts.URL+"/signin", name)
		if err != nil {
			r.t.Fatal(err)
		}
		out = append(out, func() error {
			resp, err := browser.Get(ts.URL + "/api")
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("the app answered %s", resp.Status)
			}
			return nil
		})
	}
	return out
}

// budgetRow reads the figures of one row of README's license budget table.
func budgetRow(t *testing.T, readme, app string) (opened, held int) {
	t.Helper()
	m := regexp.MustCompile(`(?m)^\| ` + regexp.QuoteMeta(app) + ` \| (\d+)[^|]*\| (\d+)[^|]*\|`).FindStringSubmatch(readme)
	if m == nil {
		t.Fatalf("README's license budget has no row %q", app)
	}
	opened, _ = strconv.Atoi(m[1])
	held, _ = strconv.Atoi(m[2])
	return opened, held
}

// TestLicenseBudget checks README's "License budget" table against the
// ERP.net sessions erpnettest counts for each kind of app over three
// hours, one API call a minute per caller.
func TestLicenseBudget(t *testing.T) {
	if testing.Short() {
		t.Skip("three simulated hours")
	}
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	// check compares a run, per caller of each server, with app's row.
	check := func(t *testing.T, app string, r *budgetRun, perServer int) {
		t.Helper()
		wantOpened, wantHeld := budgetRow(t, readme, app)
		opened, held := r.opened()/perServer, r.maxHeld/perServer
		if opened != wantOpened || held != wantHeld {
			t.Errorf("%s: %d sessions opened, at most %d license slots held; README says %d and %d", app, opened, held, wantOpened, wantHeld)
		}
	}
	t.Run("worker", func(t *testing.T) {
		r := newBudgetRun(t, 1)
		r.run(r.worker(r.servers[0]))
		check(t, "a worker process (one `clientcreds.Source`)", r, 1)
	})
	t.Run("web app", func(t *testing.T) {
		r := newBudgetRun(t, 1)
		r.run(r.users(r.servers[0], erpnettest.Demo.Alice, erpnettest.Demo.Bob)...)
		check(t, "a web app (`authcode`, `hybrid`, a BFF), per active user", r, 2)
	})
	t.Run("vendor", func(t *testing.T) {
		r := newBudgetRun(t, 3)
		var callers []func() error
		for _, s := range r.servers {
			callers = append(callers, r.worker(s))
		}
		r.run(callers...)
		for i, s := range r.servers[1:] {
			if s.SessionsOpened() != r.opened() {
				t.Errorf("instance %d opened %d sessions, instance 0 %d", i+1, s.SessionsOpened(), r.opened())
			}
		}
		check(t, "a vendor serving N instances, one worker each: per instance", r, 1)
	})
	t.Run("source per call", func(t *testing.T) {
		r := newBudgetRun(t, 1)
		srv := r.servers[0]
		r.run(func() error {
			src, err := clientcreds.New(clientcreds.Config{Authority: srv.URL(), ClientID: erpnettest.Demo.WorkerID,
				ClientSecret: erpnettest.Demo.WorkerSecret, Now: r.clk.Now})
			if err != nil {
				return err
			}
			defer src.Close()
			return apiCall(src.Client(context.Background()), srv.DomainAPI())
		})
		check(t, "wrong: a new `Source` (a new token) per call", r, 1)
	})
	if t.Failed() {
		t.Log(strings.Repeat("-", 20), "update README's license budget from the figures above")
	}
}
