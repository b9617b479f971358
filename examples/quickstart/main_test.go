package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
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
