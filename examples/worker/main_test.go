package main

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"
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
