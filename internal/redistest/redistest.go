// Package redistest starts real redis-server processes on 127.0.0.1 for
// tests: one server (Start), a Redis Cluster of masters with a replica
// each (StartCluster), or a master with replicas watched by Sentinel
// (StartSentinel). Servers can be stopped, killed (SIGKILL, as a crash),
// paused (SIGSTOP), hung (DEBUG SLEEP) and restarted.
//
// Start finds redis-server in PATH. When it is missing the test is skipped,
// unless the environment variable CI is set: then the test fails, because CI
// is expected to install it (apt-get install -y redis-server).
//
// A server runs on a free port with no RDB snapshots; with Persistent it
// keeps an append-only file with fsync on every write in a temporary
// directory, so Stop followed by Restart (same port) loses nothing.
package redistest

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Option changes how Start runs redis-server.
type Option func(*options)

type options struct {
	persistent  bool
	cluster     bool
	nodeTimeout time.Duration // cluster-node-timeout
	partial     bool          // cluster-require-full-coverage no
	sentinel    string        // sentinel.conf lines after port, bind and dir
}

// Persistent turns on the append-only file (appendonly yes, appendfsync
// always) so data survives Stop/Restart.
func Persistent() Option { return func(o *options) { o.persistent = true } }

// Server is a running (or stopped) redis-server owned by a test.
type Server struct {
	tb     testing.TB // nil for Run
	bin    string
	dir    string
	ownDir bool
	port   int
	opts   options

	mu   sync.Mutex
	proc *proc
}

// proc is one redis-server process; done closes when it has exited.
type proc struct {
	cmd  *exec.Cmd
	out  *lockedBuffer
	done chan struct{}
	hang net.Conn // the connection that sent DEBUG SLEEP, if any
}

// Binary returns the path of redis-server, skipping tb (or failing it when
// CI is set) if it is not installed.
func Binary(tb testing.TB) string {
	tb.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") != "" {
			tb.Fatal(ErrNotInstalled.Error() + " (CI is set, so this is an error)")
		}
		tb.Skip(ErrNotInstalled.Error())
	}
	return bin
}

// Start runs a redis-server on a free 127.0.0.1 port until tb's cleanup. It
// skips tb when redis-server is not installed (fails it when CI is set).
func Start(tb testing.TB, opts ...Option) *Server {
	tb.Helper()
	Binary(tb)
	s, err := Run(opts...)
	if err != nil {
		tb.Fatalf("redistest: %v", err)
	}
	s.tb = tb
	tb.Cleanup(s.Close)
	return s
}

// ErrNotInstalled is returned by Run when redis-server is not in PATH.
var ErrNotInstalled = errors.New("redis-server not found in PATH; install it (apt-get install -y redis-server) to run the Redis tests")

// Run starts a redis-server on a free 127.0.0.1 port, for use outside a
// test (TestMain, examples). The caller must Stop it.
func Run(opts ...Option) (*Server, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, ErrNotInstalled
	}
	dir, err := os.MkdirTemp("", "redistest-")
	if err != nil {
		return nil, err
	}
	s := &Server{bin: bin, dir: dir, ownDir: true}
	for _, o := range opts {
		o(&s.opts)
	}
	for attempt := 0; attempt < 5; attempt++ {
		s.port, err = freePort()
		if err != nil {
			continue
		}
		if err = s.start(); err == nil {
			return s, nil
		}
	}
	_ = os.RemoveAll(dir)
	return nil, fmt.Errorf("cannot start redis-server: %w", err)
}

// Addr returns "127.0.0.1:port".
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// Port returns the server's port; it stays the same across Restart.
func (s *Server) Port() int { return s.port }

func (s *Server) start() error {
	args := []string{
		"--port", strconv.Itoa(s.port),
		"--bind", "127.0.0.1",
		"--dir", s.dir,
		"--daemonize", "no",
		"--loglevel", "warning",
		"--protected-mode", "yes",
	}
	switch {
	case s.opts.sentinel != "":
		conf := filepath.Join(s.dir, "sentinel.conf")
		if _, err := os.Stat(conf); err != nil { // kept across Restart: Sentinel rewrites it
			text := fmt.Sprintf("port %d\nbind 127.0.0.1\ndir %s\n%s", s.port, s.dir, s.opts.sentinel)
			if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
				return err
			}
		}
		args = append([]string{conf, "--sentinel"}, args...)
	default:
		args = append(args, "--save", "", "--enable-debug-command", "local", "--repl-diskless-sync-delay", "0")
		if s.opts.persistent {
			args = append(args, "--appendonly", "yes", "--appendfsync", "always")
		} else {
			args = append(args, "--appendonly", "no")
		}
		if s.opts.cluster {
			args = append(args, "--cluster-enabled", "yes",
				"--cluster-config-file", filepath.Join(s.dir, "nodes.conf"),
				"--cluster-node-timeout", strconv.FormatInt(s.opts.nodeTimeout.Milliseconds(), 10))
			if s.opts.partial {
				args = append(args, "--cluster-require-full-coverage", "no")
			}
		}
	}
	cmd := exec.Command(s.bin, args...)
	setPdeathsig(cmd)
	p := &proc{cmd: cmd, out: &lockedBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		return err
	}
	go func() { _ = cmd.Wait(); close(p.done) }()
	deadline := time.Now().Add(10 * time.Second)
	for ping(s.Addr()) != nil {
		select {
		case <-p.done:
			return fmt.Errorf("redis-server exited: %s", p.out.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-p.done
			return fmt.Errorf("redis-server did not answer PING within 10s: %s", p.out.String())
		}
	}
	s.mu.Lock()
	s.proc = p
	s.mu.Unlock()
	return nil
}

func (s *Server) take() *proc {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.proc
	s.proc = nil
	if p != nil && p.hang != nil {
		p.hang.Close()
	}
	return p
}

// Stop shuts the server down (SIGTERM, then SIGKILL after 10s) and waits for
// it to exit. Stopping a stopped server does nothing. Its data directory is
// kept for Restart (and removed by the test's TempDir cleanup, or by Close
// for a server made by Run).
func (s *Server) Stop() {
	p := s.take()
	if p == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	_ = p.cmd.Process.Signal(syscall.SIGCONT) // if paused
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// Close stops the server and removes its data directory.
func (s *Server) Close() {
	s.Stop()
	if s.ownDir {
		_ = os.RemoveAll(s.dir)
	}
}

// Kill stops the server with SIGKILL, as a crash would.
func (s *Server) Kill() {
	if p := s.take(); p != nil {
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// Pause stops the server process (SIGSTOP): it keeps its connections and
// answers nothing until Resume.
func (s *Server) Pause() { s.signal(syscall.SIGSTOP) }

// Resume continues a paused server (SIGCONT).
func (s *Server) Resume() { s.signal(syscall.SIGCONT) }

func (s *Server) signal(sig syscall.Signal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil {
		_ = s.proc.cmd.Process.Signal(sig)
	}
}

// Hang makes the server sleep for d (DEBUG SLEEP), as a master that hangs
// does: its connections stay open and nothing is answered. Hang returns
// once the server has stopped answering.
func (s *Server) Hang(d time.Duration) error {
	c, err := net.DialTimeout("tcp", s.Addr(), 2*time.Second)
	if err != nil {
		return err
	}
	cmd := fmt.Sprintf("DEBUG SLEEP %.3f\r\n", d.Seconds())
	if _, err := c.Write([]byte(cmd)); err != nil {
		c.Close()
		return err
	}
	s.mu.Lock()
	if s.proc == nil {
		s.mu.Unlock()
		c.Close()
		return errors.New("redistest: Hang on a stopped server")
	}
	if s.proc.hang != nil {
		s.proc.hang.Close()
	}
	s.proc.hang = c
	s.mu.Unlock()
	for i := 0; i < 100; i++ {
		if pingWithin(s.Addr(), 300*time.Millisecond) != nil {
			return nil
		}
	}
	return errors.New("redistest: the server kept answering after DEBUG SLEEP")
}

// Synced waits until replica has processed every write s (its master) had
// accepted when Synced was called: replication is asynchronous, and a
// test that kills a master right after writing may otherwise lose the
// write in the replica that takes over.
func (s *Server) Synced(replica *Server) error {
	info, err := s.Do("INFO", "replication")
	if err != nil {
		return err
	}
	want := infoInt(info, "master_repl_offset")
	return until(10*time.Second, func() error {
		info, err := replica.DoWithin(time.Second, "INFO", "replication")
		if err != nil {
			return err
		}
		if got := infoInt(info, "slave_repl_offset"); got < want {
			return fmt.Errorf("replica %d at offset %d of %d", replica.Port(), got, want)
		}
		return nil
	})
}

// infoInt reads field's integer value from INFO output (-1 if absent).
func infoInt(info, field string) int64 {
	for _, line := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err == nil {
				return n
			}
		}
	}
	return -1
}

// Restart starts a stopped server again on the same port and data
// directory. It fails the test if the server cannot be started.
func (s *Server) Restart() {
	if s.tb != nil {
		s.tb.Helper()
	}
	s.Stop()
	var err error
	for attempt := 0; attempt < 50; attempt++ {
		if err = s.start(); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond) // the port may linger briefly
	}
	msg := fmt.Sprintf("redistest: cannot restart redis-server on port %d: %v", s.port, err)
	if s.tb == nil {
		panic(msg)
	}
	s.tb.Fatal(msg)
}

// Running reports whether the server process is running.
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.proc != nil
}

// Do sends one command over a fresh connection and returns the raw reply
// line(s) in a simple form: status and integers as text, bulk strings as
// their content, arrays as their elements joined by "\n", nil as "(nil)".
// It is meant for inspecting Redis from tests without a client library
// (and so without background goroutines).
func (s *Server) Do(args ...string) (string, error) {
	return s.DoWithin(5*time.Second, args...)
}

// DoWithin is Do with a deadline of d for the whole exchange.
func (s *Server) DoWithin(d time.Duration, args ...string) (string, error) {
	c, err := net.DialTimeout("tcp", s.Addr(), min(d, 2*time.Second))
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(d))
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := c.Write([]byte(b.String())); err != nil {
		return "", err
	}
	return readReply(bufio.NewReader(c))
}

func readReply(r *bufio.Reader) (string, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimSuffix(line, "\r\n")
	if line == "" {
		return "", fmt.Errorf("redistest: empty reply")
	}
	switch line[0] {
	case '+', ':':
		return line[1:], nil
	case '-':
		return "", fmt.Errorf("redis: %s", line[1:])
	case '$':
		n, err := strconv.Atoi(line[1:])
		if err != nil {
			return "", err
		}
		if n < 0 {
			return "(nil)", nil
		}
		buf := make([]byte, n+2)
		if _, err := ioReadFull(r, buf); err != nil {
			return "", err
		}
		return string(buf[:n]), nil
	case '*':
		n, err := strconv.Atoi(line[1:])
		if err != nil {
			return "", err
		}
		if n < 0 {
			return "(nil)", nil
		}
		parts := make([]string, 0, n)
		for i := 0; i < n; i++ {
			p, err := readReply(r)
			if err != nil {
				return "", err
			}
			parts = append(parts, p)
		}
		return strings.Join(parts, "\n"), nil
	}
	return "", fmt.Errorf("redistest: unexpected reply %q", line)
}

func ioReadFull(r *bufio.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := r.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

func ping(addr string) error { return pingWithin(addr, time.Second) }

func pingWithin(addr string, d time.Duration) error {
	c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(d))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if line != "+PONG\r\n" {
		return fmt.Errorf("unexpected PING reply %q", line)
	}
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.b.Len() < 64<<10 {
		l.b.Write(p)
	}
	return len(p), nil
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
