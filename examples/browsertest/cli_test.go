//go:build unix

package browsertest

import (
	"bufio"
	"context"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"github.com/chromedp/chromedp"
)

var cliDevServerRe = regexp.MustCompile(`^Using the in-process dev identity server at (http://127\.0\.0\.1:\d+) `)

// TestCLILoopbackSignIn runs examples/cli as a user would (no -auto): it
// opens "the system browser" with xdg-open, which here is a stand-in on
// PATH that hands the URL to the test; the test opens it in Chromium, signs
// in on the identity server's form, and the browser's redirect reaches the
// CLI's loopback listener. The CLI then calls the Domain API as alice and
// exits 0.
func TestCLILoopbackSignIn(t *testing.T) {
	bin := example(t, "cli")
	dir := t.TempDir()
	opened := filepath.Join(dir, "opened")
	if err := syscall.Mkfifo(opened, 0o600); err != nil {
		t.Fatal(err)
	}
	script := "#!/bin/sh\n# xdg-open stand-in: hand the URL to the browser test\nprintf '%s\\n' \"$1\" > \"$BROWSERTEST_OPENED\"\n"
	if err := os.WriteFile(filepath.Join(dir, "xdg-open"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	// Opened read-write so that the open does not wait for a writer, and
	// Close ends a pending read.
	fifo, err := os.OpenFile(opened, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	urls := make(chan string, 1)
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		if line, err := bufio.NewReader(fifo).ReadString('\n'); err == nil {
			urls <- strings.TrimSpace(line)
		}
	}()
	t.Cleanup(func() { fifo.Close(); <-readDone })

	idps := make(chan string, 1)
	p := start(t, bin, []string{"-timeout", hangGuard.String()},
		[]string{"PATH=" + dir + string(os.PathListSeparator) + os.Getenv("PATH"), "BROWSERTEST_OPENED=" + opened,
			"ERPNET_NO_BROWSER=0"}, // the stand-in xdg-open is the browser, even in a session over SSH
		func(line string) {
			if m := cliDevServerRe.FindStringSubmatch(line); m != nil {
				trySend(idps, m[1])
			}
		}, nil)

	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	var idp, authURL string
	for idp == "" || authURL == "" {
		select {
		case idp = <-idps:
		case authURL = <-urls:
		case <-p.done:
			t.Fatalf("cli exited before opening the browser: %v", p.err)
		case <-ctx.Done():
			t.Fatal("cli did not open the browser")
		}
	}
	if !strings.HasPrefix(authURL, idp+"/id/connect/authorize?") {
		t.Fatalf("cli opened %s, want the dev identity server's authorize endpoint (%s)", authURL, idp)
	}
	au, _ := url.Parse(authURL)
	redirect := au.Query().Get("redirect_uri")
	if !regexp.MustCompile(`^http://127\.0\.0\.1:\d+/callback$`).MatchString(redirect) {
		t.Fatalf("redirect_uri %q is not a loopback callback", redirect)
	}

	b := newBrowser(t)
	// The CLI's listener stops right after its "Signed in" page; the
	// browser's favicon request may find it gone.
	b.allow(`^Failed to load resource: net::ERR_CONNECTION_REFUSED \(` + regexp.QuoteMeta(strings.TrimSuffix(redirect, "/callback")+"/favicon.ico") + `\)$`)
	tb := b.tab(b.ctx)
	tb.requireStatus(tb.nav(chromedp.Navigate(authURL)), 200, "authorization URL")
	tb.requireSignInForm("the CLI's authorization URL")
	tb.requireStatus(tb.signIn(alice, alicePassword), 200, "sign-in form")
	if at := tb.url(); !strings.HasPrefix(at, redirect+"?") {
		t.Fatalf("sign-in ended at %s, want the CLI's loopback callback %s", at, redirect)
	}
	if txt := tb.text(); !strings.Contains(txt, "Signed in") || !strings.Contains(txt, "You can close this window") {
		t.Fatalf("loopback page:\n%s", txt)
	}

	if err := p.wait(ctx); err != nil {
		t.Fatalf("cli: %v", err)
	}
	out := p.stdout.String()
	for _, want := range []string{
		"If no browser window opened, open this address to sign in:",
		"Signed in as alice (" + aliceName + ") through the browser",
		"Domain API caller: user:alice",
		"Acme Manufacturing Ltd",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("cli output lacks %q:\n%s", want, out)
		}
	}
	if s := p.stderr.String(); strings.Contains(s, "Open this URL in your browser") {
		t.Errorf("cli could not start xdg-open:\n%s", s)
	}
}
