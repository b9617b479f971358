package main

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/erpnetgo/auth"
	"github.com/erpnetgo/auth/erpnettest"
	"github.com/erpnetgo/auth/internal/testutil"
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

// TestWorkerSurvivesSecretRotation: the worker reads its secret from a
// file (ERPNET_CLIENT_SECRET_FILE); the admin stores a new secret and the
// file is replaced while it runs: the next token comes with one refused
// request and one good one, every call succeeds, and no restart is needed.
func TestWorkerSurvivesSecretRotation(t *testing.T) {
	srv := erpnettest.NewServer(t, erpnettest.Config{AccessTokenLifetime: 2 * time.Second})
	file := filepath.Join(t.TempDir(), "client-secret")
	if err := os.WriteFile(file, []byte(erpnettest.Demo.WorkerSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("ERPNET_AUTHORITY", srv.URL())
	t.Setenv("ERPNET_CLIENT_ID", erpnettest.Demo.WorkerID)
	t.Setenv("ERPNET_CLIENT_SECRET", "")
	t.Setenv("ERPNET_CLIENT_SECRET_FILE", file)
	t.Setenv("ERPNET_SCOPES", "read")
	const rotated = "rotated-w0rker-s3cret"
	rotate := make(chan struct{})
	go func() {
		defer close(rotate)
		for srv.Requests("domainapi") == 0 {
			time.Sleep(10 * time.Millisecond)
		}
		srv.SetSecret(erpnettest.Demo.WorkerID, rotated)
		tmp := file + ".tmp"
		os.WriteFile(tmp, []byte(rotated+"\n"), 0o600)
		os.Rename(tmp, file) // an atomic replace
	}()
	var buf testutil.SyncBuffer
	err := run(context.Background(), slog.New(slog.NewTextHandler(&buf, nil)), 100*time.Millisecond, 40)
	<-rotate
	if err != nil {
		t.Fatalf("run: %v\n%s", err, buf.String())
	}
	out := buf.String()
	for _, want := range []string{"calls_ok=40 calls_failed=0", "token_failures=0", "ClientSecretFile holds a new one"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	for _, secret := range []string{erpnettest.Demo.WorkerSecret, rotated} {
		if strings.Contains(out, secret) {
			t.Fatal("a secret reached the log")
		}
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
