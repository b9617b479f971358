package browsertest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"go.uber.org/goleak"

	"github.com/erpnetgo/auth/internal/testutil"
)

// Demo users of the dev identity server the examples embed.
const (
	alice         = "alice"
	alicePassword = "alice-password"
	aliceName     = "Alice Anderson"
	bob           = "bob"
	bobPassword   = "bob-password"
	bobName       = "Bob Brown"
)

// hangGuard bounds one test's browser work. It only stops a hung test; no
// assertion depends on how long anything takes.
const hangGuard = 60 * time.Second

var binDir string // where the examples are built, set by TestMain

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "browsertest-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	http.DefaultTransport.(*http.Transport).CloseIdleConnections()
	if code == 0 {
		// Every browser, tab and example process is stopped by the tests'
		// cleanups; nothing of chromedp may outlive them.
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goroutine leak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// repoRoot is the SDK's module root, two folders up.
func repoRoot(t testing.TB) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil || !bytes.Contains(b, []byte("module github.com/erpnetgo/auth\n")) {
		t.Fatalf("%s is not the SDK's module root", root)
	}
	return root
}

var buildOnce = sync.OnceValues(func() (string, error) {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		return "", err
	}
	cmd := exec.Command("go", "build", "-o", binDir+string(filepath.Separator), "./examples/webapp", "./examples/portal", "./examples/cli", "./examples/spa")
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("go build of the examples: %w\n%s", err, out)
	}
	return "", nil
})

// example returns the path of the built example program name.
func example(t testing.TB, name string) string {
	t.Helper()
	repoRoot(t)
	if _, err := buildOnce(); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(binDir, name)
}

// chromiumPath finds the browser, or skips the test (fails it under CI).
func chromiumPath(t testing.TB) string {
	t.Helper()
	for _, env := range []string{"BROWSERTEST_CHROMIUM", "CHROMIUM"} {
		if p := os.Getenv(env); p != "" {
			return p
		}
	}
	for _, name := range []string{"chromium", "chromium-browser", "/usr/bin/chromium"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("chromium not found (apt-get install chromium, or set CHROMIUM): required in CI")
	}
	t.Skip("chromium not found (apt-get install chromium, or set CHROMIUM)")
	return ""
}

func verbose() bool { return os.Getenv("BROWSERTEST_VERBOSE") != "" }

// ---- example processes ----

// proc is a running example program.
type proc struct {
	cmd    *exec.Cmd
	stdout *testutil.SyncBuffer
	stderr *testutil.SyncBuffer
	done   chan struct{} // closed when the process has exited and its output is read
	err    error         // Wait's result, set before done closes
}

// start runs the example program bin with args and env (added to this
// process's environment, with every ERPNET_* variable removed so that the
// example embeds the dev identity server). onStdout and onStderr, if set,
// see each output line. The process is stopped at the end of the test; its
// output is logged if the test failed.
func start(t *testing.T, bin string, args, env []string, onStdout, onStderr func(string)) *proc {
	t.Helper()
	cmd := exec.Command(bin, args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ERPNET_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	p := &proc{cmd: cmd, stdout: &testutil.SyncBuffer{OnLine: onStdout}, stderr: &testutil.SyncBuffer{OnLine: onStderr}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.stdout, p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.stop(t)
		if t.Failed() || verbose() {
			t.Logf("%s stdout:\n%s", filepath.Base(bin), p.stdout.String())
			t.Logf("%s stderr:\n%s", filepath.Base(bin), p.stderr.String())
		}
	})
	return p
}

// stop ends the process with SIGTERM (then SIGKILL if it does not stop) and
// reports a non-zero exit after SIGTERM.
func (p *proc) stop(t *testing.T) {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	timer := time.NewTimer(20 * time.Second)
	defer timer.Stop()
	select {
	case <-p.done:
		if p.err != nil {
			t.Errorf("%s did not stop cleanly on SIGTERM: %v", filepath.Base(p.cmd.Path), p.err)
		}
	case <-timer.C:
		_ = p.cmd.Process.Kill()
		<-p.done
		t.Errorf("%s did not stop within 20s of SIGTERM; killed", filepath.Base(p.cmd.Path))
	}
}

// wait waits for the process to exit by itself.
func (p *proc) wait(ctx context.Context) error {
	select {
	case <-p.done:
		return p.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

var (
	listeningRe = regexp.MustCompile(`msg="(?:webapp|portal|spa) listening" url=(http://127\.0\.0\.1:\d+)/?(?:\s|$)`)
	devServerRe = regexp.MustCompile(`msg="ERPNET_AUTHORITY not set: using the in-process dev identity server" url=(http://127\.0\.0\.1:\d+)(?:\s|$)`)
)

// startSite runs the web example name (webapp or portal) on a free loopback
// port (it listens on 127.0.0.1:0 and logs its address: no port race) with
// the embedded dev identity server, and returns the site's and the identity
// server's base URLs once the site answers HTTP.
func startSite(t *testing.T, name string, args ...string) (site, idp string) {
	t.Helper()
	bin := example(t, name)
	sites, idps := make(chan string, 1), make(chan string, 1)
	p := start(t, bin, append([]string{"-addr", "127.0.0.1:0"}, args...), nil, nil, func(line string) {
		if m := listeningRe.FindStringSubmatch(line); m != nil {
			trySend(sites, m[1])
		}
		if m := devServerRe.FindStringSubmatch(line); m != nil {
			trySend(idps, m[1])
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	for site == "" || idp == "" {
		select {
		case site = <-sites:
		case idp = <-idps:
		case <-p.done:
			t.Fatalf("%s exited before listening: %v\n%s", name, p.err, p.stderr.String())
		case <-ctx.Done():
			t.Fatalf("%s did not report its and the dev identity server's addresses:\n%s", name, p.stderr.String())
		}
	}
	waitHTTP(ctx, t, site+"/")
	return site, idp
}

func trySend(ch chan string, v string) {
	select {
	case ch <- v:
	default:
	}
}

// waitHTTP polls u until it answers with any HTTP status.
func waitHTTP(ctx context.Context, t *testing.T, u string) {
	t.Helper()
	tr := &http.Transport{DialContext: (&net.Dialer{Timeout: time.Second}).DialContext}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		resp, err := hc.Do(req)
		if err == nil {
			resp.Body.Close()
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s never answered: %v", u, err)
		case <-tick.C:
		}
	}
}

// ---- the browser ----

// browser is one headless Chromium with a fresh profile.
type browser struct {
	t   *testing.T
	ctx context.Context // the first tab; NewTab makes more in the same browser context

	mu       sync.Mutex
	problems []string // console errors, exceptions, error log entries (CSP violations among them)
	allowed  []*regexp.Regexp
	requests []string // document URLs requested, in order (redirect hops included)
}

// newBrowser starts Chromium for the test. At the end of the test it fails
// the test if any page logged an error to the console, threw an uncaught
// exception, or had a log entry of level error (CSP violations, failed
// loads; a 404 for the dev identity server's favicon among them), then
// stops the browser.
func newBrowser(t *testing.T) *browser {
	t.Helper()
	path := chromiumPath(t)
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("no-default-browser-check", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-features", "Translate,OptimizationHints,MediaRouter,AutofillServerCommunication"),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.Flag("mute-audio", true),
		chromedp.Flag("password-store", "basic"),
		chromedp.Flag("use-mock-keychain", true),
		chromedp.WindowSize(1024, 700),
		chromedp.WSURLReadTimeout(hangGuard), // a slow start on a loaded machine is not a failure
	}
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	b := &browser{t: t, ctx: ctx}
	// The first Run starts the browser; its life is bound to ctx, which has
	// no deadline (see chromedp.NewContext).
	if err := chromedp.Do(ctx); err != nil {
		cancel()
		acancel()
		t.Fatalf("starting chromium (%s): %v", path, err)
	}
	t.Cleanup(func() {
		b.checkConsole()
		cancel()
		acancel() // waits for the browser process to exit
	})
	b.watch(ctx)
	return b
}

// allow accepts console errors matching re for the rest of the test.
func (b *browser) allow(re string) {
	b.mu.Lock()
	b.allowed = append(b.allowed, regexp.MustCompile(re))
	b.mu.Unlock()
}

func (b *browser) report(kind, text string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, re := range b.allowed {
		if re.MatchString(text) {
			return
		}
	}
	b.problems = append(b.problems, kind+": "+text)
}

// watch collects the console problems and the document requests of the tab
// of ctx.
func (b *browser) watch(ctx context.Context) {
	err := chromedp.Listen(ctx, func(ev any) {
		switch ev := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeAssert {
				var parts []string
				for _, a := range ev.Args {
					if len(a.Value) > 0 {
						parts = append(parts, string(a.Value))
					} else {
						parts = append(parts, a.Description)
					}
				}
				b.report("console."+string(ev.Type), strings.Join(parts, " "))
			}
		case *runtime.EventExceptionThrown:
			d := ev.ExceptionDetails
			text := d.Text
			if d.Exception != nil {
				text += " " + d.Exception.Description
			}
			b.report("uncaught exception", text+" at "+d.URL)
		case *log.EventEntryAdded:
			// Level error covers CSP violations (source security) and
			// failed loads (source network). Source "violation" is not
			// here: those are performance notes ("handler took 150ms")
			// that a loaded machine produces at random.
			if e := ev.Entry; e.Level == log.EntryLevelError {
				b.report("log "+string(e.Source)+"/"+string(e.Level), e.Text+" ("+e.URL+")")
			}
		case *network.EventRequestWillBeSent:
			if ev.Type == network.ResourceTypeDocument {
				b.mu.Lock()
				b.requests = append(b.requests, ev.Request.URL+ev.Request.URLFragment)
				b.mu.Unlock()
				if verbose() {
					b.t.Logf("browser: %s %s", ev.Request.Method, ev.Request.URL)
				}
			}
		}
	})
	if err != nil {
		b.t.Fatal(err)
	}
}

// checkConsole fails the test on any console problem seen so far.
func (b *browser) checkConsole() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, p := range b.problems {
		b.t.Errorf("browser console: %s", p)
	}
	b.problems = nil
}

// requested returns the document URLs requested so far that start with
// prefix.
func (b *browser) requested(prefix string) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for _, u := range b.requests {
		if strings.HasPrefix(u, prefix) {
			out = append(out, u)
		}
	}
	return out
}

// newTab opens another tab in the same browser context (same cookies).
func (b *browser) newTab() context.Context {
	ctx, cancel := chromedp.NewContext(b.ctx)
	if err := chromedp.Do(ctx); err != nil {
		cancel()
		b.t.Fatal(err)
	}
	b.t.Cleanup(cancel) // runs before the browser's cleanup (LIFO)
	b.watch(ctx)
	return ctx
}

// tab is a browser tab with the test's helpers.
type tab struct {
	t   *testing.T
	ctx context.Context
}

func (b *browser) tab(ctx context.Context) *tab { return &tab{t: b.t, ctx: ctx} }

// do runs actions with the hang guard.
func (tb *tab) do(actions ...chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, hangGuard)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		tb.t.Fatalf("browser: %v (at %s)", err, tb.url())
	}
}

// nav runs actions that cause one navigation (following its redirects),
// waits for the page to load and returns the final document's response.
func (tb *tab) nav(actions ...chromedp.Action[chromedp.Void]) *network.Response {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, hangGuard)
	defer cancel()
	resp, err := chromedp.RunResponse(ctx, actions...)
	if err != nil {
		tb.t.Fatalf("browser: %v (at %s)", err, tb.url())
	}
	return resp
}

func (tb *tab) eval(expr string) string {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, hangGuard)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[string](expr))
	if err != nil {
		tb.t.Fatalf("browser: evaluating %s: %v", expr, err)
	}
	return v
}

// url is the address bar.
func (tb *tab) url() string {
	ctx, cancel := context.WithTimeout(tb.ctx, hangGuard)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		return "(unknown: " + err.Error() + ")"
	}
	return v
}

// text is the page's visible text.
func (tb *tab) text() string {
	tb.t.Helper()
	return tb.eval(`document.body ? document.body.innerText : ""`)
}

// has reports whether the page has an element matching the CSS selector.
func (tb *tab) has(sel string) bool {
	tb.t.Helper()
	return tb.eval(`document.querySelector(`+jsString(sel)+`) ? "yes" : "no"`) == "yes"
}

func jsString(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s) + `"`
}

// ---- the dev identity server's sign-in form ----

const (
	loginForm     = `form[action="/id/account/login"]`
	loginUser     = loginForm + ` input[name="username"]`
	loginPassword = loginForm + ` input[name="password"]`
	loginSubmit   = loginForm + ` button[value="login"]`
	loginCancel   = loginForm + ` button[value="cancel"]`
)

// onSignInForm reports whether the tab shows the identity server's sign-in
// form.
func (tb *tab) onSignInForm() bool {
	tb.t.Helper()
	return tb.has(loginForm) && strings.Contains(tb.eval(`document.title`), "dev identity server")
}

// requireSignInForm fails the test unless the tab shows the sign-in form.
func (tb *tab) requireSignInForm(why string) {
	tb.t.Helper()
	if !tb.onSignInForm() {
		tb.t.Fatalf("%s: expected the identity server's sign-in form at %s, got:\n%s", why, tb.url(), tb.text())
	}
}

// signIn fills the sign-in form shown in the tab, submits it and returns
// the response of the page the redirects end on.
func (tb *tab) signIn(user, password string) *network.Response {
	tb.t.Helper()
	tb.requireSignInForm("signing in")
	tb.do(
		chromedp.WaitVisible(loginUser),
		chromedp.SendKeys(loginUser, user),
		chromedp.SendKeys(loginPassword, password),
	)
	return tb.nav(chromedp.Click(loginSubmit))
}

// requireStatus fails unless resp, the response of the page the tab shows,
// has the status.
func (tb *tab) requireStatus(resp *network.Response, status int64, what string) {
	tb.t.Helper()
	if resp == nil {
		tb.t.Fatalf("%s: no response", what)
	}
	if resp.Status != status {
		tb.t.Fatalf("%s: %s answered %d %s, want %d; the page says:\n%s", what, resp.URL, resp.Status, resp.StatusText, status, tb.text())
	}
}

// goErrorText matches what Go error strings of the SDK look like on a page
// ("authcode: ...", "hybrid: ...", wrapped errors with ": " chains of
// package prefixes).
var goErrorText = regexp.MustCompile(`\b(authcode|hybrid|oauth2|oidc|erpnettest|autherr|tokenep|discovery): `)
