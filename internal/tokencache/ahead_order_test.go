package tokencache

import (
	"context"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/erpnetgo/auth"
	iclock "github.com/erpnetgo/auth/internal/clock"
	"github.com/erpnetgo/auth/internal/hook"
	"github.com/erpnetgo/auth/internal/lifetime"
)

// A background refresh reports token.refresh_ahead once, however many
// callers see the refresh window, and before the token.issued of its
// request: a hook that pairs the two (a dashboard's "refreshes in flight")
// never sees the end of a refresh before its start.
func TestRefreshAheadIsReportedOnceBeforeItsRequest(t *testing.T) {
	var mu sync.Mutex
	var events []string
	refreshed := make(chan struct{}) // closed when the refresh's token.issued is reported
	rep := &hook.Reporter{Hooks: &auth.Hooks{Event: func(_ context.Context, e auth.Event) {
		switch e.Name {
		case "token.cache_hit", "token.wait":
			return
		case "token.refresh_ahead":
			// Give the refresh's request every chance to be reported first:
			// reported after it (as when the caller reported it after
			// starting the refresh), it would be appended first here.
			select {
			case <-refreshed:
			case <-time.After(time.Second):
			}
		}
		mu.Lock()
		events = append(events, e.Name)
		mu.Unlock()
	}}}
	now := time.Now()
	var clockMu sync.Mutex
	clock := func() time.Time { clockMu.Lock(); defer clockMu.Unlock(); return now }
	clk := iclock.From(clock)
	life := lifetime.New()
	t.Cleanup(func() { life.Close() })
	var n int
	c := New(func(ctx context.Context) (*oauth2.Token, error) {
		n++
		// The request's own event, as tokenep reports it, at its end.
		rep.Emit(ctx, auth.Event{Name: "token.issued"})
		if n == 2 {
			close(refreshed)
		}
		return &oauth2.Token{AccessToken: "t" + string(rune('0'+n)), Expiry: clock().Add(time.Hour)}, nil
	}, Options{Life: life, Report: rep, Clock: clk})
	ctx := context.Background()
	if _, err := c.Get(ctx); err != nil {
		t.Fatal(err)
	}
	clockMu.Lock()
	now = now.Add(58 * time.Minute) // into the refresh window
	clockMu.Unlock()
	iclock.Poke()
	for range 10 {
		if e, err := c.Get(ctx); err != nil || e.Token.AccessToken == "" {
			t.Fatalf("a caller in the refresh window got %v, %v; want a valid token", e, err)
		}
	}
	<-refreshed
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		got := append([]string(nil), events...)
		mu.Unlock()
		if len(got) == 3 {
			if want := []string{"token.issued", "token.refresh_ahead", "token.issued"}; !equal(got, want) {
				t.Fatalf("events %q, want %q", got, want)
			}
			return
		}
		if len(got) > 3 || time.Now().After(deadline) {
			t.Fatalf("events %q, want the first token, one refresh_ahead, its token", got)
		}
		time.Sleep(time.Millisecond)
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
