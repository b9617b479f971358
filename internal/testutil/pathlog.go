package testutil

import (
	"fmt"
	"net/http"
	"sync"
)

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
