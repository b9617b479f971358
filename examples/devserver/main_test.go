package main

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/erpnetgo/auth/erpnettest"
	"github.com/erpnetgo/auth/internal/testutil"
)

func TestMain(m *testing.M) { testutil.VerifyNoLeaks(m) }

func TestParseFault(t *testing.T) {
	good := map[string]erpnettest.Fault{
		"token=503x5":         {Status: 503, Times: 5},
		"token=503":           {Status: 503, Times: 1},
		"Token=429x3@2s":      {Status: 429, Times: 3, RetryAfter: 2 * time.Second},
		"jwks=slow@3s":        {Latency: 3 * time.Second, Times: 1},
		"domain-api=dropx2":   {Drop: true, Times: 2},
		"discovery=malformed": {Malformed: true, Times: 1},
		"token=oversized":     {Oversized: true, Times: 1},
		"end_session=emptyx4": {Empty: true, Times: 4},
	}
	for spec, want := range good {
		f, err := parseFault(spec)
		if err != nil {
			t.Errorf("%s: %v", spec, err)
			continue
		}
		if f.f != want {
			t.Errorf("%s: %+v, want %+v", spec, f.f, want)
		}
	}
	for _, spec := range []string{"", "token", "token=", "tokens=503", "token=600", "token=503x0", "token=503xx",
		"token=slow", "token=drop@1s", "token=503@-1s", "token=banana", "token=503@soon"} {
		if _, err := parseFault(spec); err == nil {
			t.Errorf("%q: no error", spec)
		}
	}
}

// The program starts the server with the flags' lifetimes and faults, prints the banner and
// stops when its context ends.
func TestRun(t *testing.T) {
	f, err := parseFault("token=503x2")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var out strings.Builder
	ready := make(chan *erpnettest.Server, 1)
	done := make(chan error, 1)
	o := options{addr: "127.0.0.1:0", faults: []fault{f}, cfg: erpnettest.Config{AccessTokenLifetime: 2 * time.Minute}}
	go func() { done <- run(ctx, o, &out, func(s *erpnettest.Server) { ready <- s }) }()
	var srv *erpnettest.Server
	select {
	case srv = <-ready:
	case err := <-done:
		t.Fatal(err)
	}
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {erpnettest.Demo.WorkerID}, "client_secret": {erpnettest.Demo.WorkerSecret}}
	var statuses []int
	for range 3 {
		resp, err := c.PostForm(srv.Authority()+"/connect/token", form)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		statuses = append(statuses, resp.StatusCode)
	}
	if statuses[0] != 503 || statuses[1] != 503 || statuses[2] != 200 {
		t.Errorf("token statuses = %v, want [503 503 200]", statuses)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	banner := out.String()
	for _, want := range []string{srv.URL(), erpnettest.Demo.WebAppSecret, erpnettest.Demo.AlicePassword,
		"access 2m0s", "Fault armed: token=503x2", "enrt_", "shutting down"} {
		if !strings.Contains(banner, want) {
			t.Errorf("banner lacks %q:\n%s", want, banner)
		}
	}
}
