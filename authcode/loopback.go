package authcode

import (
	"bufio"
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/erpnetgo/auth"
	"github.com/erpnetgo/auth/authcode/internal/sessions"
	"github.com/erpnetgo/auth/internal/discovery"
	"github.com/erpnetgo/auth/internal/redact"
)

// defaultLoopbackTimeout bounds a loopback sign-in when
// [LoopbackOptions.Timeout] is zero.
const defaultLoopbackTimeout = 5 * time.Minute

// loopbackID is the session id of the loopback sign-in: a command-line
// tool has one user, and the next run finds the session under it.
const loopbackID = "loopback"

// LoopbackOptions configure [Client.LoopbackSignIn].
type LoopbackOptions struct {
	// OpenBrowser opens the authorization URL; nil means the system browser
	// (xdg-open, open or rundll32).
	OpenBrowser func(url string) error
	// Output receives the line that tells the user where to sign in: the
	// URL is printed at once when the browser cannot be opened (OpenBrowser
	// failed) and, after the system browser was opened, as a fallback line
	// in case no window appeared; a custom OpenBrowser that succeeds gets
	// no line. Nil means os.Stderr.
	Output io.Writer
	// Timeout bounds the whole sign-in; zero means 5 minutes.
	Timeout time.Duration
	// Path is the redirect URI's path; empty means "/callback". The
	// Trusted Application must list http://127.0.0.1<Path> (any port).
	Path string
	// Paste, if set, is where the user may paste the address the browser
	// ended on, for a browser on another machine (a session over SSH),
	// whose redirect to 127.0.0.1 cannot reach this one; typically
	// os.Stdin. The URL is printed with a prompt, the listener keeps
	// waiting, and whichever comes first completes the sign-in: the
	// browser's redirect or a pasted line. A pasted address of another
	// sign-in (another state) or for another address than the redirect
	// URI is refused and the prompt repeats. Reading stops when the
	// sign-in ends; a Read already waiting on Paste then returns only with
	// the next line (which is discarded) or at its end, unless Paste has a
	// SetReadDeadline method that interrupts it.
	Paste io.Reader
}

// LoopbackSignIn signs a user in from a native or command-line app (RFC
// 8252) and returns the session, saved in the Client's Store; use it with
// UserClient and TokenSource.
//
// If the Store already holds this tool's session (with a FileStore, from
// an earlier run), it is reused, refreshed through the same path as every
// other session, and no browser is opened. Otherwise, or when the session
// is dead (its refresh token refused), it listens on 127.0.0.1 on a random
// port, opens the browser at the authorization URL with redirect_uri
// http://127.0.0.1:<port><Path>, waits for the callback (at most Timeout),
// checks state, PKCE and the ID token exactly as the web Callback does,
// shows a short page, stops listening and returns. Callbacks with a wrong
// state are refused and the wait goes on. With LoopbackOptions.Paste the
// user may paste the address the browser ended on instead (a browser on
// another machine). An attempt that ends unanswered (Timeout) gives an
// error matching ErrAttemptExpired.
func (c *Client) LoopbackSignIn(ctx context.Context, opts LoopbackOptions) (*Session, error) {
	if opts.Timeout <= 0 {
		opts.Timeout = defaultLoopbackTimeout
	}
	if opts.Path == "" {
		opts.Path = "/callback"
	}
	if !strings.HasPrefix(opts.Path, "/") || strings.ContainsAny(opts.Path, "?#") {
		return nil, &auth.ConfigError{Field: "LoopbackOptions.Path", Reason: "must be an absolute path such as /callback"}
	}
	systemBrowser := opts.OpenBrowser == nil
	if systemBrowser {
		opts.OpenBrowser = openSystemBrowser
	}
	if opts.Output == nil {
		opts.Output = os.Stderr
	}
	if c.life.Closed() {
		return nil, auth.ErrClosed
	}
	// Close ends the wait, and everything the sign-in has in flight.
	ctx, unbind := c.life.Bind(ctx)
	defer unbind()
	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	doc, err := c.discover(ctx)
	if err != nil {
		return nil, err
	}
	if s, err := c.reuseLoopback(ctx); s != nil || err != nil {
		return s, err
	}
	return c.loopbackBrowser(ctx, doc, opts, systemBrowser)
}

// reuseLoopback returns the saved loopback session with a usable access
// token (refreshing it if needed), or nil, nil when the browser is needed.
func (c *Client) reuseLoopback(ctx context.Context) (*Session, error) {
	sn, err := c.sessions.Load(ctx, loopbackID)
	if errors.Is(err, ErrNoSession) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if _, err := sn.State.Entry(ctx); err != nil {
		if errors.Is(err, auth.ErrReauthRequired) {
			c.log.Info("authcode: the saved session is no longer accepted; signing in again")
			return nil, nil
		}
		return nil, err
	}
	// The entry may have come from a refresh: show the latest record.
	if sn, err = c.sessions.Load(ctx, loopbackID); err != nil {
		return nil, err
	}
	return newSession(sn), nil
}

type loopbackOutcome struct {
	s   *Session
	rec *sessions.Record
	err error
}

func (c *Client) loopbackBrowser(ctx context.Context, doc *discovery.Document, opts LoopbackOptions, systemBrowser bool) (*Session, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("authcode: loopback sign-in: cannot listen on 127.0.0.1: %w", err)
	}
	redirectURI := "http://" + ln.Addr().String() + opts.Path
	a := c.newAttempt("")
	authURL, err := c.authURL(doc, a, redirectURI)
	if err != nil {
		ln.Close()
		return nil, err
	}
	// The browser's redirect and a pasted address race; the first to
	// claim the attempt completes it.
	var once sync.Once
	claim := func() (first bool) {
		once.Do(func() { first = true })
		return first
	}
	finish := func(q url.Values) loopbackOutcome {
		out := loopbackOutcome{}
		switch {
		case q.Get("error") != "":
			out.err = &auth.Error{Op: "authorization", Code: redact.Truncate(q.Get("error"), 64), Description: redact.Truncate(q.Get("error_description"), 256)}
		case a.expired(c.now()):
			out.err = fmt.Errorf("authcode: loopback sign-in: the attempt was started more than %s ago: %w", attemptTTL, ErrAttemptExpired)
		default:
			out.rec, out.err = c.complete(ctx, doc, a, q, redirectURI)
		}
		if out.err == nil {
			out.s, out.err = c.saveLoopback(ctx, out.rec)
		}
		if out.err != nil {
			c.log.Warn("authcode: loopback sign-in failed", "error", out.err.Error())
			c.rep.Emit(ctx, auth.Event{Name: "signin.failed", Err: out.err})
		}
		return out
	}
	results := make(chan loopbackOutcome, 1)
	mux := http.NewServeMux()
	mux.HandleFunc(opts.Path, func(w http.ResponseWriter, r *http.Request) {
		noCache(w)
		q := r.URL.Query()
		if subtle.ConstantTimeCompare([]byte(q.Get("state")), []byte(a.State)) != 1 {
			// Not our sign-in (or a forged request): refuse it and keep waiting.
			page(w, http.StatusBadRequest, "Sign-in link no longer valid", "This is not the sign-in the application is waiting for. Start again from the application.", "", "")
			return
		}
		if !claim() {
			page(w, http.StatusBadRequest, "Already signed in", "This sign-in was already completed. You can close this window.", "", "")
			return
		}
		out := finish(q)
		if out.err != nil {
			title, msg := explain(out.err)
			page(w, statusFor(out.err), title, msg+" Return to the application for details.", "", "")
		} else {
			page(w, http.StatusOK, "Signed in", "You are signed in. You can close this window and return to the application.", "", "")
		}
		results <- out
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(ln)
	}()
	defer func() {
		sctx, scancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer scancel()
		if srv.Shutdown(sctx) != nil {
			srv.Close()
		}
		<-served
	}()
	c.log.Debug("authcode: loopback sign-in waiting", "redirect_uri", redirectURI)
	if err := opts.OpenBrowser(authURL); err != nil {
		c.log.Debug("authcode: cannot open the browser", "error", err.Error())
		fmt.Fprintf(opts.Output, "Could not open a browser. To sign in, open this address in a browser on this machine:\n\n  %s\n\n", authURL)
	} else if systemBrowser {
		fmt.Fprintf(opts.Output, "If no browser window opened, open this address to sign in:\n\n  %s\n\n", authURL)
	}
	var pasted <-chan string
	if opts.Paste != nil {
		stop := make(chan struct{})
		defer close(stop)
		pasted = readLines(opts.Paste, stop)
		fmt.Fprintf(opts.Output, "After you sign in, the browser goes to %s?... If the browser is on another machine, that page\n"+
			"does not load: copy the whole address from its address bar and paste it here.\n\n%s", redirectURI, pastePrompt)
	}
	for {
		select {
		case out := <-results:
			return out.s, out.err
		case line, ok := <-pasted:
			if !ok {
				pasted = nil // the input ended: the browser's redirect may still come
				continue
			}
			q, problem := checkPasted(line, redirectURI, a.State)
			if problem != "" {
				fmt.Fprintf(opts.Output, "%s\n\n%s", problem, pastePrompt)
				continue
			}
			if !claim() {
				continue // the browser's redirect won: its outcome is on its way
			}
			out := finish(q)
			return out.s, out.err
		case <-ctx.Done():
			select {
			case out := <-results: // completed just in time
				return out.s, out.err
			default:
			}
			if c.life.Closed() {
				return nil, auth.ErrClosed
			}
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return nil, fmt.Errorf("authcode: loopback sign-in: no answer from the browser within %s: %w (%w)", opts.Timeout, ErrAttemptExpired, ctx.Err())
			}
			return nil, fmt.Errorf("authcode: loopback sign-in: no callback received: %w", ctx.Err())
		}
	}
}

// pastePrompt asks for the address the browser ended on.
const pastePrompt = "Address: "

// checkPasted checks a pasted address against the loopback sign-in's
// redirect URI and state. It returns the address's query, or a problem to
// show the user (who then pastes again).
func checkPasted(line, redirectURI, state string) (url.Values, string) {
	line = strings.Trim(strings.TrimSpace(line), `"'<>`)
	if line == "" {
		return nil, "Nothing was pasted."
	}
	u, err := url.Parse(line)
	want, _ := url.Parse(redirectURI)
	if err != nil || u.Scheme != want.Scheme || u.Host != want.Host || u.Path != want.Path {
		return nil, "That is not the address of this sign-in: it must start with " + redirectURI + "?"
	}
	q := u.Query()
	if subtle.ConstantTimeCompare([]byte(q.Get("state")), []byte(state)) != 1 {
		return nil, "That address belongs to another sign-in (its state does not match): paste the address of the sign-in started above."
	}
	if q.Get("code") == "" && q.Get("error") == "" {
		return nil, "That address has no sign-in result in it: paste the whole address, after signing in."
	}
	return q, ""
}

// readLines sends the lines of r (at most 64 KiB each) until r ends or
// stop is closed; the channel is closed when r ends. A reader with a
// SetReadDeadline method (a file that supports it, a connection) is
// interrupted when stop is closed.
func readLines(r io.Reader, stop <-chan struct{}) <-chan string {
	lines := make(chan string)
	if d, ok := r.(interface{ SetReadDeadline(time.Time) error }); ok {
		go func() {
			<-stop
			_ = d.SetReadDeadline(time.Unix(1, 0))
		}()
	}
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 0, 4096), 64<<10)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			case <-stop:
				return
			}
		}
	}()
	return lines
}

// saveLoopback saves rec as the loopback session, replacing an earlier
// one, and starts tracking it.
func (c *Client) saveLoopback(ctx context.Context, rec *sessions.Record) (*Session, error) {
	sn, err := c.sessions.Create(ctx, loopbackID, rec)
	if err != nil {
		return nil, err
	}
	c.log.Info("authcode: signed in", c.user(rec.Subject)...)
	c.rep.Emit(ctx, auth.Event{Name: "signin.completed", User: rec.Subject})
	return newSession(sn), nil
}

// openSystemBrowser opens u in the system browser and reports whether the
// opener failed (xdg-open exits non-zero when it finds no browser). An
// opener still running after a few seconds is taken to have succeeded.
func openSystemBrowser(u string) error {
	var cmd *exec.Cmd
	switch runtime.GOOS {
	case "darwin":
		cmd = exec.Command("open", u)
	case "windows":
		cmd = exec.Command("rundll32", "url.dll,FileProtocolHandler", u)
	default:
		cmd = exec.Command("xdg-open", u)
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(3 * time.Second):
		return nil
	}
}
