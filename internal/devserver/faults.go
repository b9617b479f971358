package devserver

import (
	"bytes"
	"net/http"
	"strconv"
	"time"
)

// FaultBody selects a broken response body for a Fault.
type FaultBody int

const (
	// FaultNone sends the endpoint's normal error body (with Fault.Status) or no fault body.
	FaultNone FaultBody = iota
	// FaultMalformedJSON sends truncated, unparsable JSON.
	FaultMalformedJSON
	// FaultOversizedJSON sends 10 MiB of valid-looking JSON.
	FaultOversizedJSON
	// FaultEmpty sends an empty body with Content-Type application/json.
	FaultEmpty
)

// oversizedFaultBytes is the size of a FaultOversizedJSON body.
const oversizedFaultBytes = 10 << 20

// Fault is one injected failure, consumed by one request to its endpoint.
type Fault struct {
	// Latency delays the response; it ends early when the client gives up or the server closes.
	// A Fault with only Latency delays the request, which is then served normally.
	Latency time.Duration
	// Status is the HTTP status to answer with; 0 with a Body means 200.
	Status int
	// RetryAfter, when set, is sent as the Retry-After header.
	RetryAfter string
	// Body selects a broken body.
	Body FaultBody
	// Drop hijacks the connection and closes it without any response.
	Drop bool
}

// InjectFaults queues faults for ep; each request to ep consumes the next one, in order.
func (s *Server) InjectFaults(ep Endpoint, faults ...Fault) {
	s.mu.Lock()
	s.faults[ep] = append(s.faults[ep], faults...)
	s.mu.Unlock()
}

// ClearFaults drops every queued fault.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	s.faults = map[Endpoint][]Fault{}
	s.mu.Unlock()
}

func (s *Server) nextFault(ep Endpoint) (Fault, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.faults[ep]
	if len(q) == 0 {
		return Fault{}, false
	}
	f := q[0]
	s.faults[ep] = q[1:]
	return f, true
}

// applyFault performs f and reports whether the request has been answered (or dropped).
func (s *Server) applyFault(w http.ResponseWriter, r *http.Request, ep Endpoint, f Fault) bool {
	if !s.sleepCtx(r.Context(), f.Latency) {
		// The client gave up or the server is closing: free the handler at once, sending nothing.
		if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
			_ = conn.Close()
		}
		return true
	}
	if f.Drop {
		s.log.Info("devserver: fault: dropping connection", "endpoint", ep.String())
		if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
			_ = conn.Close()
			return true
		}
		// Not hijackable (HTTP/2, a recorder): abort the response the way net/http documents.
		panic(http.ErrAbortHandler)
	}
	if f.Status == 0 && f.Body == FaultNone {
		return false // latency only
	}
	status := f.Status
	if status == 0 {
		status = http.StatusOK
	}
	h := w.Header()
	if f.RetryAfter != "" {
		h.Set("Retry-After", f.RetryAfter)
	}
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Type", "application/json; charset=utf-8")
	s.log.Info("devserver: fault injected", "endpoint", ep.String(), "status", status, "body", int(f.Body))
	switch f.Body {
	case FaultEmpty:
		w.WriteHeader(status)
	case FaultMalformedJSON:
		w.WriteHeader(status)
		_, _ = w.Write([]byte(`{"access_token":"eyJhbGciOiJSUzI1NiJ9.e30.","token_type":"Bearer","expires_in":36`))
	case FaultOversizedJSON:
		writeOversized(w, status)
	default:
		if ep == DomainAPI {
			writeAPIError(w, status, "InjectedFault", "injected fault: HTTP "+http.StatusText(status))
		} else {
			writeJSON(w, status, map[string]any{"error": faultErrorCode(status), "error_description": "injected fault"})
		}
	}
	return true
}

func faultErrorCode(status int) string {
	switch {
	case status == http.StatusServiceUnavailable || status == http.StatusTooManyRequests:
		return "temporarily_unavailable"
	case status >= 500:
		return "server_error"
	case status == http.StatusUnauthorized:
		return "invalid_client"
	default:
		return "invalid_request"
	}
}

// writeOversized streams a 10 MiB JSON object: a long "padding" string, then ordinary token
// fields, so a client that does not limit its read sees a valid document.
func writeOversized(w http.ResponseWriter, status int) {
	head := `{"padding":"`
	tail := `","access_token":"x","token_type":"Bearer","expires_in":3600,"value":[]}`
	w.Header().Set("Content-Length", strconv.Itoa(oversizedFaultBytes))
	w.WriteHeader(status)
	if _, err := w.Write([]byte(head)); err != nil {
		return
	}
	chunk := bytes.Repeat([]byte("a"), 64<<10)
	remaining := oversizedFaultBytes - len(head) - len(tail)
	for remaining > 0 {
		n := min(remaining, len(chunk))
		if _, err := w.Write(chunk[:n]); err != nil {
			return
		}
		remaining -= n
	}
	_, _ = w.Write([]byte(tail))
}
