package testutil

import (
	"context"
	"fmt"
	"sync"

	"github.com/erpnetgo/auth"
)

// Recorder is an auth.Hooks sink for tests: it keeps every event and call.
type Recorder struct {
	mu     sync.Mutex
	events []auth.Event
	calls  []string
}

// Hooks returns hooks that record into r; includeUser sets IncludeUser.
func (r *Recorder) Hooks(includeUser bool) *auth.Hooks {
	return &auth.Hooks{
		Event: func(_ context.Context, e auth.Event) {
			r.mu.Lock()
			r.events = append(r.events, e)
			r.mu.Unlock()
		},
		Call: func(ctx context.Context, op string) (context.Context, func(error)) {
			r.mu.Lock()
			r.calls = append(r.calls, op)
			r.mu.Unlock()
			return ctx, nil
		},
		IncludeUser: includeUser,
	}
}

// Count returns how many events of name were recorded.
func (r *Recorder) Count(name string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, e := range r.events {
		if e.Name == name {
			n++
		}
	}
	return n
}

// Calls returns how many identity-server calls of op were recorded.
func (r *Recorder) Calls(op string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, c := range r.calls {
		if c == op {
			n++
		}
	}
	return n
}

// Events returns a copy of the recorded events.
func (r *Recorder) Events() []auth.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]auth.Event(nil), r.events...)
}

// Dump prints every event with all its fields (errors included), for
// checks that no secret or user name appears in any of them.
func (r *Recorder) Dump() string {
	s := ""
	for _, e := range r.Events() {
		s += fmt.Sprintf("%+v\n", e)
	}
	return s
}
