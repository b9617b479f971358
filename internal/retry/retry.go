// Package retry is the SDK's one retry loop: capped exponential backoff with
// jitter that honours Retry-After and the caller's context.
package retry

import (
	"context"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/erpnetgo/auth"
)

// Policy is the retry settings callers give in their Config (auth.Retry).
// The zero value is usable: 4 attempts, 200 ms base, 5 s cap, Retry-After
// honoured up to 30 s.
type Policy = auth.Retry

// MaxRetryAfter is the policy's longest wait for a Retry-After.
func MaxRetryAfter(p Policy) time.Duration {
	if p.MaxRetryAfter <= 0 {
		return 30 * time.Second
	}
	return p.MaxRetryAfter
}

// Hold remembers when a server said to come back (Retry-After), so that
// later calls fail fast without a request until then. The zero value holds
// nothing; it is safe for concurrent use.
type Hold struct{ until atomic.Int64 } // unix nanoseconds

// Set holds calls for d from now (never shortening a longer hold).
func (h *Hold) Set(d time.Duration) {
	if h == nil || d <= 0 {
		return
	}
	t := time.Now().Add(d).UnixNano()
	for {
		old := h.until.Load()
		if old >= t || h.until.CompareAndSwap(old, t) {
			return
		}
	}
}

// Remaining is how long calls are still held; 0 when not held.
func (h *Hold) Remaining() time.Duration {
	if h == nil {
		return 0
	}
	u := h.until.Load()
	if u == 0 {
		return 0
	}
	return max(0, time.Duration(u-time.Now().UnixNano()))
}

func attempts(p Policy) int {
	if p.Attempts <= 0 {
		return 4
	}
	return p.Attempts
}

// Backoff is the delay before retry number attempt (0 for the first retry):
// exponential, capped, with "equal jitter" (a random value between half and
// all of the step) so that many clients do not retry in lockstep.
func Backoff(p Policy, attempt int) time.Duration {
	base, maxd := p.Base, p.Cap
	if base <= 0 {
		base = 200 * time.Millisecond
	}
	if maxd <= 0 {
		maxd = 5 * time.Second
	}
	d := base
	for i := 0; i < attempt && d < maxd; i++ {
		d *= 2
	}
	if d > maxd {
		d = maxd
	}
	half := d / 2
	return half + rand.N(half+1)
}

// Outcome is what one attempt reports back to Do.
type Outcome struct {
	// Retry says the failure is transient and another attempt may succeed.
	Retry bool
	// RetryAfter is the server's requested wait, 0 if none.
	RetryAfter time.Duration
}

// Do calls fn until it succeeds, reports a failure that must not be retried,
// runs out of attempts, or ctx ends. It returns the last error and the number
// of attempts made. It never sleeps past ctx's deadline: when the next wait
// would overrun it, Do gives up at once with the last error.
func Do(ctx context.Context, p Policy, fn func(ctx context.Context, attempt int) (Outcome, error)) (int, error) {
	maxRA := MaxRetryAfter(p)
	n := attempts(p)
	for attempt := 0; ; attempt++ {
		out, err := fn(ctx, attempt)
		if err == nil || !out.Retry || attempt+1 >= n || ctx.Err() != nil {
			return attempt + 1, err
		}
		wait := Backoff(p, attempt)
		if out.RetryAfter > 0 {
			if out.RetryAfter > maxRA {
				return attempt + 1, err
			}
			wait = max(wait, out.RetryAfter)
		}
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait {
			return attempt + 1, err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return attempt + 1, err
		case <-t.C:
		}
	}
}

// Retryable reports whether an HTTP status is worth another attempt.
func Retryable(status int) bool {
	return status == http.StatusTooManyRequests || status >= 500 && status != http.StatusNotImplemented
}

// ParseRetryAfter reads a Retry-After header (delta-seconds or an HTTP date).
// It returns 0 for an absent or unparseable value.
func ParseRetryAfter(h string, now time.Time) time.Duration {
	h = strings.TrimSpace(h)
	if h == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(h, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		if secs > 24*3600 {
			secs = 24 * 3600
		}
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(h); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}
