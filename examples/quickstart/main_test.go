package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/erpnetgo/auth/internal/testutil"
)

// TestQuickstart runs the whole walk-through, as `go run ./examples/quickstart` does.
func TestQuickstart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out bytes.Buffer
	if err := run(ctx, &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	for _, want := range []string{"system:worker-system", "pat:alice", "sat:worker-system", "user:bob", "user:alice", "system:portal-system", "All steps passed."} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "enrt_") && !strings.Contains(out.String(), "enrt_…(redacted)") {
		t.Error("a reference token was printed")
	}
}

// TestHelp: -h prints the usage and runs nothing (issue 23: it ran the
// whole walk-through).
func TestHelp(t *testing.T) {
	out, err := testutil.RunMain(t, "-h")
	if err != nil || !strings.Contains(out, "Usage: go run ./examples/quickstart") || strings.Contains(out, "Dev identity server") {
		t.Fatalf("quickstart -h: %v\n%s", err, out)
	}
}
