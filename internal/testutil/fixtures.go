package testutil

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"

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

// PathLog is a RoundTripper that records "METHOD path status" of every
// request it carries, for tests that check which endpoints a client used.
type PathLog struct {
	Base http.RoundTripper // nil: http.DefaultTransport

	mu  sync.Mutex
	log []string
}

// RoundTrip implements http.RoundTripper.
func (l *PathLog) RoundTrip(req *http.Request) (*http.Response, error) {
	base := l.Base
	if base == nil {
		base = http.DefaultTransport
	}
	resp, err := base.RoundTrip(req)
	status := 0
	if err == nil {
		status = resp.StatusCode
	}
	l.mu.Lock()
	l.log = append(l.log, fmt.Sprintf("%s %s %d", req.Method, req.URL.Path, status))
	l.mu.Unlock()
	return resp, err
}

// List returns the requests recorded so far.
func (l *PathLog) List() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.log...)
}

// SecretMount is a directory laid out as the kubelet mounts a Kubernetes
// Secret: the file is a symlink through ..data to a timestamped directory,
// and an update swaps ..data atomically to a new directory.
type SecretMount struct {
	tb  testing.TB
	dir string
	gen int
}

// NewSecretMount mounts secret in a temporary directory.
func NewSecretMount(tb testing.TB, secret string) *SecretMount {
	tb.Helper()
	m := &SecretMount{tb: tb, dir: tb.TempDir()}
	m.Write(secret)
	if err := os.Symlink(filepath.Join("..data", "client-secret"), m.Path()); err != nil {
		tb.Fatal(err)
	}
	return m
}

// Path is the path an app reads the secret from.
func (m *SecretMount) Path() string { return filepath.Join(m.dir, "client-secret") }

// Write puts secret, with the trailing newline editors add, in a new
// timestamped directory (mode 0400, as with defaultMode: 0400) and swaps
// ..data to it.
func (m *SecretMount) Write(secret string) {
	m.tb.Helper()
	m.gen++
	ts := fmt.Sprintf("..2026_01_01_00_00_%02d.%d", m.gen, m.gen)
	if err := os.Mkdir(filepath.Join(m.dir, ts), 0o755); err != nil {
		m.tb.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(m.dir, ts, "client-secret"), []byte(secret+"\n"), 0o400); err != nil {
		m.tb.Fatal(err)
	}
	tmp := filepath.Join(m.dir, "..data_tmp")
	if err := os.Symlink(ts, tmp); err != nil {
		m.tb.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(m.dir, "..data")); err != nil {
		m.tb.Fatal(err)
	}
}
