// Package testutil holds the test scaffolding every package of the module
// shares: the goroutine-leak check run after a package's tests, a
// goroutine-safe buffer for captured output, running an example program's
// main from its test binary (testutil.go), and the fixtures (fixtures.go): a
// recorder of hook events, a log of the requests a client sent, and a
// Kubernetes-style secret mount.
package testutil

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"os/exec"
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
		if err := FindLeaks(opts...); err != nil {
			fmt.Fprintln(os.Stderr, "goroutine leak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// FindLeaks is goleak.Find with more patience: it waits about 5 s (not
// goleak's own half second) for goroutines that end by themselves after a
// Close. Connection goroutines on a loaded machine need it, and so does
// go-redis' connection pool, which retries a failed dial once a second
// and notices its Close only before the next try: after a test that killed
// a Redis node it lingers up to a second. A goroutine that never ends
// still fails the check.
func FindLeaks(opts ...goleak.Option) error {
	var err error
	for range 10 {
		if err = goleak.Find(opts...); err == nil {
			return nil
		}
	}
	return err
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
	if s.OnLine == nil {
		return len(p), nil
	}
	for s.partial = append(s.partial, p...); bytes.IndexByte(s.partial, '\n') >= 0; {
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

// envRunMain tells a test binary started by RunMain to run the program's
// main instead of its tests.
const envRunMain = "ERPNETGO_TESTUTIL_RUN_MAIN"

// MainOrTests runs main, as the program would, when the test binary was
// started by RunMain, and reports true; otherwise it reports false and the
// tests run. Call it first in TestMain:
//
//	func TestMain(m *testing.M) {
//		if testutil.MainOrTests(main) {
//			return
//		}
//		testutil.VerifyNoLeaks(m)
//	}
func MainOrTests(main func()) bool {
	if os.Getenv(envRunMain) != "1" {
		return false
	}
	main()
	return true
}

// RunMain runs the program under test (its main, through MainOrTests) with
// args, as "go run . args..." would, and returns its combined output and
// exit error.
func RunMain(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), envRunMain+"=1")
	out, err := cmd.CombinedOutput()
	return string(out), err
}
