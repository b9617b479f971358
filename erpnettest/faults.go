package erpnettest

import (
	"bytes"
	"cmp"
	"net/http"
	"slices"
	"strconv"
	"time"
)

// Fault is a failure injected into requests to one endpoint (Server.InjectFault). Each
// request to the endpoint takes the next queued fault; requests find the endpoint healthy
// again once the queue is empty.
type Fault struct {
	// Status is the HTTP status to answer with, e.g. 503, 429 or 500, with the endpoint's
	// usual error body (an OAuth error, or a Domain API error). Zero with no broken body:
	// the request is served normally after Latency.
	Status int
	// Times is how many consecutive requests get the fault; zero means one.
	Times int
	// RetryAfter, when positive, is sent as the Retry-After header, in whole seconds
	// rounded up.
	RetryAfter time.Duration
	// Latency delays the response (it ends early when the client gives up or the server
	// closes). Alone it slows requests that are then served normally.
	Latency time.Duration
	// Drop closes the connection without sending any response.
	Drop bool
	// Malformed sends truncated JSON, Oversized a 10 MiB JSON document and Empty no body at
	// all (at most one of them), with Status, or 200 when Status is zero.
	Malformed, Oversized, Empty bool
}

// InjectFault queues f (f.Times times) for the named endpoint (see the package
// documentation for the names), after any faults already queued there. An unknown endpoint
// or an inconsistent Fault fails the test (or panics for a Server made by Start).
func (s *Server) InjectFault(endpoint string, f Fault) {
	s.tb.Helper()
	i := s.endpoint(endpoint)
	if i < 0 {
		return
	}
	bodies := len(slices.DeleteFunc([]bool{f.Malformed, f.Oversized, f.Empty}, func(b bool) bool { return !b }))
	for _, bad := range []struct {
		is  bool
		msg string
	}{
		{bodies > 1, "at most one of Malformed, Oversized and Empty"},
		{f.Status != 0 && (f.Status < 100 || f.Status > 599), "Status " + strconv.Itoa(f.Status) + " is not an HTTP status"},
		{f.Times < 0 || f.Latency < 0 || f.RetryAfter < 0, "Times, Latency and RetryAfter must not be negative"},
		{f.Drop && (f.Status != 0 || bodies > 0 || f.RetryAfter > 0), "a dropped connection has no status, body or Retry-After"},
	} {
		if bad.is {
			s.fail("InjectFault(%q): %s", endpoint, bad.msg)
			return
		}
	}
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	for range max(f.Times, 1) {
		s.faults.q[i] = append(s.faults.q[i], f)
	}
}

// ClearFaults drops every queued fault of every endpoint.
func (s *Server) ClearFaults() {
	s.faults.mu.Lock()
	s.faults.q = map[int][]Fault{}
	s.faults.mu.Unlock()
}

func (s *Server) nextFault(i int) (Fault, bool) {
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	q := s.faults.q[i]
	if len(q) == 0 {
		return Fault{}, false
	}
	s.faults.q[i] = q[1:]
	return q[0], true
}

// applyFault performs f on a request to endpoint i and reports whether it has been answered
// (or dropped).
func (s *Server) applyFault(w http.ResponseWriter, r *http.Request, i int, f Fault) bool {
	name := endpoints[i].name
	t := time.NewTimer(f.Latency)
	defer t.Stop()
	select {
	case <-t.C:
	case <-r.Context().Done():
		f.Drop = true
	case <-s.done:
		f.Drop = true
	}
	if f.Drop {
		// The client gave up, the server is closing, or the fault drops the connection.
		s.log.Info("erpnettest: fault: dropping connection", "endpoint", name)
		if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
			_ = conn.Close()
			return true
		}
		panic(http.ErrAbortHandler) // not hijackable: abort as net/http documents
	}
	if f.Status == 0 && !f.Malformed && !f.Oversized && !f.Empty {
		return false // latency only
	}
	status := cmp.Or(f.Status, http.StatusOK)
	h := w.Header()
	if f.RetryAfter > 0 {
		h.Set("Retry-After", strconv.FormatInt(int64((f.RetryAfter+time.Second-1)/time.Second), 10))
	}
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Type", "application/json; charset=utf-8")
	s.log.Info("erpnettest: fault injected", "endpoint", name, "status", status)
	switch {
	case f.Empty:
		w.WriteHeader(status)
	case f.Malformed:
		w.WriteHeader(status)
		_, _ = w.Write([]byte(`{"access_token":"eyJhbGciOiJSUzI1NiJ9.e30.","token_type":"Bearer","expires_in":36`))
	case f.Oversized:
		// A 10 MiB JSON object: a long "padding" string, then ordinary token fields, so a
		// client that does not limit its read sees a valid document.
		head, tail := `{"padding":"`, `","access_token":"x","token_type":"Bearer","expires_in":3600,"value":[]}`
		h.Set("Content-Length", strconv.Itoa(10<<20))
		w.WriteHeader(status)
		_, _ = w.Write([]byte(head))
		_, _ = w.Write(bytes.Repeat([]byte("a"), 10<<20-len(head)-len(tail)))
		_, _ = w.Write([]byte(tail))
	case name == "domainapi":
		writeAPIError(w, status, "InjectedFault", "injected fault: HTTP "+http.StatusText(status))
	case status == http.StatusServiceUnavailable || status == http.StatusTooManyRequests:
		writeOAuthError(w, &oauthError{status, "temporarily_unavailable", "injected fault"})
	case status >= 500:
		writeOAuthError(w, &oauthError{status, "server_error", "injected fault"})
	case status == http.StatusUnauthorized:
		writeOAuthError(w, &oauthError{status, "invalid_client", "injected fault"})
	default:
		writeOAuthError(w, &oauthError{status, "invalid_request", "injected fault"})
	}
	return true
}
