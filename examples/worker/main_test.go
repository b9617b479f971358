package main

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/erpnetgo/auth"
	"github.com/erpnetgo/auth/erpnettest"
)

func TestWorkerCallsDomainAPIAsSystemUser(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	if err := run(context.Background(), log, 10*time.Millisecond, 3); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(buf.String(), "caller=system:worker-system"); n != 3 {
		t.Fatalf("want 3 calls as the System User, log:\n%s", buf.String())
	}
	// The figures an operator reads: one token, one API session.
	want := "tokens_fetched=1 token_failures=0 token_retries=0 api_sessions_opened=1 cache_hits=2 api_retries=0"
	if !strings.Contains(buf.String(), want) {
		t.Fatalf("figures %q missing from the log:\n%s", want, buf.String())
	}
}

func TestWorkerStopsWhenContextEnds(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, slog.New(slog.DiscardHandler), time.Hour, 0) }()
	time.Sleep(200 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("worker did not stop")
	}
}

// TestWorkerFailsWhenItNeverGetsAToken: with the token endpoint down for
// good, the worker reports every failed call and ends with an error (the
// program exits 1), not with success.
func TestWorkerFailsWhenItNeverGetsAToken(t *testing.T) {
	srv := erpnettest.NewServer(t)
	srv.InjectFault("token", erpnettest.Fault{Status: http.StatusServiceUnavailable, Times: 1000})
	t.Setenv("ERPNET_AUTHORITY", srv.URL())
	t.Setenv("ERPNET_CLIENT_ID", erpnettest.Demo.WorkerID)
	t.Setenv("ERPNET_CLIENT_SECRET", erpnettest.Demo.WorkerSecret)
	t.Setenv("ERPNET_SCOPES", "read")
	var buf bytes.Buffer
	err := run(context.Background(), slog.New(slog.NewTextHandler(&buf, nil)), time.Millisecond, 2)
	if err == nil || !strings.Contains(err.Error(), "no call succeeded (2 failed)") {
		t.Fatalf("run = %v, want no call succeeded (2 failed); log:\n%s", err, buf.String())
	}
	if !strings.Contains(buf.String(), "calls_ok=0 calls_failed=2") {
		t.Errorf("no honest summary in the log:\n%s", buf.String())
	}
	if srv.Requests("domainapi") != 0 {
		t.Errorf("the Domain API was called %d times without a token", srv.Requests("domainapi"))
	}
}

// TestWorkerStopsOnHTTPSToPlainHTTP: https:// for a server that speaks
// plain http can never work: the worker says so and stops, instead of
// retrying forever (issue 23).
func TestWorkerStopsOnHTTPSToPlainHTTP(t *testing.T) {
	srv := erpnettest.NewServer(t)
	t.Setenv("ERPNET_AUTHORITY", strings.Replace(srv.URL(), "http://", "https://", 1))
	t.Setenv("ERPNET_CLIENT_ID", erpnettest.Demo.WorkerID)
	t.Setenv("ERPNET_CLIENT_SECRET", erpnettest.Demo.WorkerSecret)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var buf bytes.Buffer
	err := run(ctx, slog.New(slog.NewTextHandler(&buf, nil)), time.Millisecond, 0)
	if !errors.Is(err, auth.ErrMisconfigured) || !strings.Contains(err.Error(), "speaks plain http") {
		t.Fatalf("run = %v, want a misconfiguration that says the server speaks plain http; log:\n%s", err, buf.String())
	}
	if strings.Contains(buf.String(), "will try again") {
		t.Errorf("the worker retried a misconfiguration:\n%s", buf.String())
	}
}
