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

// On SIGUSR1 a running worker logs its figures and goes on.
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
	if err := syscall.Kill(syscall.Getpid(), syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	wait("msg=figures tokens_fetched=1")
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
