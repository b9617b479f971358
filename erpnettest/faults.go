package erpnettest

import (
	"strconv"
	"time"

	"github.com/erpnetgo/auth/internal/devserver"
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
	if s.tb != nil {
		s.tb.Helper()
	}
	ep, ok := s.endpoint(endpoint)
	if !ok {
		return
	}
	df, msg := toDevFault(f)
	if msg != "" {
		s.fail("InjectFault(%q): %s", endpoint, msg)
		return
	}
	n := max(f.Times, 1)
	faults := make([]devserver.Fault, n)
	for i := range faults {
		faults[i] = df
	}
	s.ds.InjectFaults(ep, faults...)
}

// ClearFaults drops every queued fault of every endpoint.
func (s *Server) ClearFaults() { s.ds.ClearFaults() }

// toDevFault converts f; msg says what is wrong with it.
func toDevFault(f Fault) (df devserver.Fault, msg string) {
	bodies := 0
	for _, b := range []bool{f.Malformed, f.Oversized, f.Empty} {
		if b {
			bodies++
		}
	}
	switch {
	case bodies > 1:
		return df, "at most one of Malformed, Oversized and Empty"
	case f.Status != 0 && (f.Status < 100 || f.Status > 599):
		return df, "Status " + strconv.Itoa(f.Status) + " is not an HTTP status"
	case f.Times < 0 || f.Latency < 0 || f.RetryAfter < 0:
		return df, "Times, Latency and RetryAfter must not be negative"
	case f.Drop && (f.Status != 0 || bodies > 0 || f.RetryAfter > 0):
		return df, "a dropped connection has no status, body or Retry-After"
	}
	df = devserver.Fault{Latency: f.Latency, Status: f.Status, Drop: f.Drop}
	if f.RetryAfter > 0 {
		df.RetryAfter = strconv.FormatInt(int64((f.RetryAfter+time.Second-1)/time.Second), 10)
	}
	switch {
	case f.Malformed:
		df.Body = devserver.FaultMalformedJSON
	case f.Oversized:
		df.Body = devserver.FaultOversizedJSON
	case f.Empty:
		df.Body = devserver.FaultEmpty
	}
	return df, ""
}
