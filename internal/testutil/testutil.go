// Package testutil holds the test scaffolding every package of the module
// shares: the goroutine-leak check run after a package's tests and a
// goroutine-safe buffer for captured log output.
package testutil

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"sync"
	"testing"

	"go.uber.org/goleak"
)

// VerifyNoLeaks runs m's tests and then fails the package if any goroutine
// outlived them. Idle keep-alive connections of http.DefaultTransport (which
// examples and x/oauth2 use, as applications do) are closed first: they are
// a connection pool, not a leak. Call it from TestMain:
//
//	func TestMain(m *testing.M) { testutil.VerifyNoLeaks(m) }
func VerifyNoLeaks(m *testing.M, opts ...goleak.Option) {
	code := m.Run()
	http.DefaultTransport.(*http.Transport).CloseIdleConnections()
	if code == 0 {
		if err := goleak.Find(opts...); err != nil {
			fmt.Fprintln(os.Stderr, "goroutine leak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// SyncBuffer is a bytes.Buffer that many goroutines may write to at once,
// for capturing log output or a process's output.
type SyncBuffer struct {
	// OnLine, when set, sees every complete line written, without its newline.
	OnLine func(string)

	mu      sync.Mutex
	b       bytes.Buffer
	partial []byte
}

// Write implements io.Writer.
func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.b.Write(p)
	for s.partial = append(s.partial, p...); s.OnLine != nil && bytes.IndexByte(s.partial, '\n') >= 0; {
		line, rest, _ := bytes.Cut(s.partial, []byte("\n"))
		s.OnLine(string(line))
		s.partial = rest
	}
	return len(p), nil
}

// String returns everything written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
