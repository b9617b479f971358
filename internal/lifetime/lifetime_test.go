package lifetime

import (
	"context"
	"errors"
	"testing"

	"github.com/erpnetgo/auth"
)

func TestCloseEndsContextAndWaits(t *testing.T) {
	g := New()
	started, ended := make(chan struct{}), make(chan struct{})
	if !g.Go(func() { close(started); <-g.Context().Done(); close(ended) }) {
		t.Fatal("Go on an open group reported false")
	}
	<-started
	bound, stop := g.Bind(context.Background())
	defer stop()
	if !g.Close() {
		t.Fatal("first Close reported false")
	}
	select {
	case <-ended:
	default:
		t.Fatal("Close returned before the goroutine ended")
	}
	<-bound.Done()
	if !errors.Is(context.Cause(bound), auth.ErrClosed) {
		t.Fatalf("bound context cause = %v", context.Cause(bound))
	}
	if g.Go(func() {}) || g.Close() || !g.Closed() {
		t.Fatal("a closed group ran a goroutine or closed twice")
	}
}
