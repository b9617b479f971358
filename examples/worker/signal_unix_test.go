//go:build unix

package main

import (
	"context"
	"log/slog"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/erpnetgo/auth/internal/testutil"
)

// On SIGUSR1 a running worker logs its figures and goes on waiting.
func TestWorkerLogsFiguresOnSIGUSR1(t *testing.T) {
	var buf testutil.SyncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, slog.New(slog.NewTextHandler(&buf, nil)), time.Hour, 0) }()
	wait := func(what string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for !strings.Contains(buf.String(), what) {
			if time.Now().After(deadline) {
				t.Fatalf("no %q in the log:\n%s", what, buf.String())
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	wait("read customers") // the first call is done, the worker waits for its next tick
	for range 2 {
		before := strings.Count(buf.String(), "msg=figures tokens_fetched=1")
		if err := syscall.Kill(syscall.Getpid(), syscall.SIGUSR1); err != nil {
			t.Fatal(err)
		}
		waitFor(t, &buf, func(log string) bool { return strings.Count(log, "msg=figures tokens_fetched=1") > before })
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// Figures on demand make no API call (issue 23: each SIGUSR1 made one):
	// the second signal was handled after whatever the first one caused.
	if n := strings.Count(buf.String(), "read customers"); n != 1 {
		t.Fatalf("%d API calls for one tick and two SIGUSR1, want 1:\n%s", n, buf.String())
	}
}

func waitFor(t *testing.T, buf *testutil.SyncBuffer, ok func(log string) bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !ok(buf.String()) {
		if time.Now().After(deadline) {
			t.Fatalf("not in the log:\n%s", buf.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}
