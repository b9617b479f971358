package retry

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"
)

func TestBackoffIsCappedWithJitter(t *testing.T) {
	p := Policy{Base: 100 * time.Millisecond, Cap: time.Second}
	for attempt := 0; attempt < 10; attempt++ {
		step := min(100*time.Millisecond<<attempt, time.Second)
		for i := 0; i < 50; i++ {
			d := Backoff(p, attempt)
			if d < step/2 || d > step {
				t.Fatalf("attempt %d: %v outside [%v, %v]", attempt, d, step/2, step)
			}
		}
	}
}

func TestDoStopsOnSuccessFinalErrorOrAttempts(t *testing.T) {
	fast := Policy{Attempts: 3, Base: time.Millisecond, Cap: time.Millisecond}
	boom := errors.New("boom")
	calls := 0
	n, err := Do(context.Background(), fast, func(context.Context, int) (Outcome, error) {
		calls++
		return Outcome{Retry: true}, boom
	})
	if n != 3 || calls != 3 || !errors.Is(err, boom) {
		t.Fatalf("n=%d calls=%d err=%v", n, calls, err)
	}
	calls = 0
	n, err = Do(context.Background(), fast, func(context.Context, int) (Outcome, error) {
		calls++
		return Outcome{}, boom
	})
	if n != 1 || calls != 1 || !errors.Is(err, boom) {
		t.Fatalf("final error retried: n=%d", n)
	}
	n, err = Do(context.Background(), fast, func(_ context.Context, a int) (Outcome, error) {
		if a < 1 {
			return Outcome{Retry: true}, boom
		}
		return Outcome{}, nil
	})
	if n != 2 || err != nil {
		t.Fatalf("n=%d err=%v", n, err)
	}
}

func TestDoHonoursRetryAfterAndContext(t *testing.T) {
	p := Policy{Base: time.Millisecond, Cap: time.Millisecond, MaxRetryAfter: time.Second}
	start := time.Now()
	Do(context.Background(), p, func(_ context.Context, a int) (Outcome, error) {
		if a == 0 {
			return Outcome{Retry: true, RetryAfter: 150 * time.Millisecond}, errors.New("429")
		}
		return Outcome{}, nil
	})
	if time.Since(start) < 150*time.Millisecond {
		t.Fatal("Retry-After not honoured")
	}
	// A Retry-After beyond MaxRetryAfter gives up at once.
	n, _ := Do(context.Background(), p, func(context.Context, int) (Outcome, error) {
		return Outcome{Retry: true, RetryAfter: time.Hour}, errors.New("429")
	})
	if n != 1 {
		t.Fatalf("waited for an hour-long Retry-After: n=%d", n)
	}
	// A wait that would overrun the deadline gives up at once.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	start = time.Now()
	n, _ = Do(ctx, p, func(context.Context, int) (Outcome, error) {
		return Outcome{Retry: true, RetryAfter: 500 * time.Millisecond}, errors.New("429")
	})
	if n != 1 || time.Since(start) > 400*time.Millisecond {
		t.Fatalf("slept past the deadline: n=%d", n)
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Duration{
		"":        0,
		"0":       0,
		"-3":      0,
		"abc":     0,
		" 5 ":     5 * time.Second,
		"9999999": 24 * time.Hour,
		now.Add(90 * time.Second).Format(http.TimeFormat): 90 * time.Second,
		now.Add(-time.Minute).Format(http.TimeFormat):     0,
	} {
		if got := ParseRetryAfter(in, now); got != want {
			t.Errorf("%q: got %v want %v", in, got, want)
		}
	}
	if !Retryable(429) || !Retryable(503) || Retryable(501) || Retryable(400) || Retryable(401) {
		t.Fatal("Retryable")
	}
}
