// Package retry is the SDK's one retry loop: capped exponential backoff with
// jitter that honours Retry-After and the caller's context.
package retry

import (
	"context"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Policy says how often and how patiently to retry. The zero value is usable:
// 4 attempts, 200 ms base, 5 s cap, Retry-After honoured up to 30 s.
type Policy struct {
	Attempts      int           // total attempts including the first; <=0 means 4
	Base          time.Duration // first backoff; <=0 means 200ms
	Cap           time.Duration // largest backoff; <=0 means 5s
	MaxRetryAfter time.Duration // longer Retry-After gives up; <=0 means 30s
}

func (p Policy) attempts() int {
	if p.Attempts <= 0 {
		return 4
	}
	return p.Attempts
}

// Backoff is the delay before retry number attempt (0 for the first retry):
// exponential, capped, with "equal jitter" (a random value between half and
// all of the step) so that many clients do not retry in lockstep.
func (p Policy) Backoff(attempt int) time.Duration {
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
	maxRA := p.MaxRetryAfter
	if maxRA <= 0 {
		maxRA = 30 * time.Second
	}
	n := p.attempts()
	for attempt := 0; ; attempt++ {
		out, err := fn(ctx, attempt)
		if err == nil || !out.Retry || attempt+1 >= n || ctx.Err() != nil {
			return attempt + 1, err
		}
		wait := p.Backoff(attempt)
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
