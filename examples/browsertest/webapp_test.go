package browsertest

import (
	"context"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// signedInAs is what the webapp's pages show for a signed-in user.
func signedInAs(name string) string { return "Signed in as " + name }

const webappSignedOut = "Sign in to see the customers."

// webappSignIn opens the webapp's home page in a fresh tab state, follows
// its Sign in link to the identity server's form and signs in as alice; it
// returns when the customers page shows.
func webappSignIn(t *testing.T, tb *tab, site string) {
	t.Helper()
	tb.requireStatus(tb.nav(chromedp.Navigate(site+"/")), 200, "home page")
	if txt := tb.text(); !strings.Contains(txt, webappSignedOut) {
		t.Fatalf("home page, signed out: no sign-in link:\n%s", txt)
	}
	tb.requireStatus(tb.nav(chromedp.Click(`a[href^="/signin"]`)), 200, "Sign in link")
	tb.requireSignInForm("after Sign in")
	resp := tb.signIn(alice, alicePassword)
	tb.requireStatus(resp, 200, "sign-in form")
	requireCustomersAs(t, tb, site, aliceName, "user:alice")
}

// requireCustomersAs fails unless the tab shows the webapp's customers page
// for the user.
func requireCustomersAs(t *testing.T, tb *tab, site, name, caller string) {
	t.Helper()
	if u := tb.url(); u != site+"/customers" {
		t.Fatalf("expected %s/customers, at %s:\n%s", site, u, tb.text())
	}
	txt := tb.text()
	for _, want := range []string{signedInAs(name), "Acme Manufacturing Ltd", "Read from the Domain API as " + caller + "."} {
		if !strings.Contains(txt, want) {
			t.Fatalf("customers page lacks %q:\n%s", want, txt)
		}
	}
}

// TestWebappSignInAndOut: sign in through the identity server's form, the
// protected page as the user, reload, sign out (which ends the identity
// server's session too), reload and Back after sign-out, and the next visit
// to the protected page asks for the password again.
func TestWebappSignInAndOut(t *testing.T) {
	site, idp := startSite(t, "webapp")
	b := newBrowser(t)
	tb := b.tab(b.ctx)

	webappSignIn(t, tb, site)
	if os.Getenv("UPDATE_SCREENSHOT") == "1" {
		writeScreenshot(t, tb, filepath.Join(repoRoot(t), "docs", "webapp-signed-in.png"))
	}
	if n := len(b.requested(site + "/callback?")); n != 1 {
		t.Fatalf("the sign-in went through the callback %d times, want 1", n)
	}

	// Reload after sign-in: still signed in, same page.
	tb.requireStatus(tb.nav(chromedp.Reload()), 200, "reload after sign-in")
	requireCustomersAs(t, tb, site, aliceName, "user:alice")

	// Sign out: back on the home page, signed out.
	tb.requireStatus(tb.nav(chromedp.Click(`form[action="/signout"] button`)), 200, "Sign out")
	u, err := url.Parse(tb.url())
	if err != nil || u.Scheme+"://"+u.Host+u.Path != site+"/signed-out" {
		t.Fatalf("sign-out ended at %s, want %s/signed-out", tb.url(), site)
	}
	if txt := tb.text(); !strings.Contains(txt, webappSignedOut) || !strings.Contains(txt, "You are signed out.") || strings.Contains(txt, "Signed in as") {
		t.Fatalf("home page after sign-out:\n%s", txt)
	}
	if len(b.requested(idp+"/id/connect/endsession?")) != 1 {
		t.Fatalf("sign-out did not go through the identity server's end-session endpoint: %q", b.requested(""))
	}
	t.Run("address bar clean after sign-out", func(t *testing.T) {
		if got := tb.url(); got != site+"/signed-out" {
			t.Errorf("address bar after sign-out: %s, want %s/signed-out", got, site)
		}
	})

	// Reload after sign-out: still signed out.
	tb.requireStatus(tb.nav(chromedp.Reload()), 200, "reload after sign-out")
	if txt := tb.text(); !strings.Contains(txt, webappSignedOut) {
		t.Fatalf("reload after sign-out:\n%s", txt)
	}

	// Back after sign-out goes to the customers page's history entry: it
	// must not show the customers (no-store, session gone) but the
	// identity server's form, since its session ended too.
	tb.nav(chromedp.NavigateBack())
	if txt := tb.text(); strings.Contains(txt, "Acme Manufacturing") || strings.Contains(txt, "Signed in as") {
		t.Fatalf("Back after sign-out shows signed-in content at %s:\n%s", tb.url(), txt)
	}
	tb.requireSignInForm("Back after sign-out")

	// The next visit to the protected page asks for the password again
	// (the identity server's session ended with the app's); another user
	// can sign in.
	tb.requireStatus(tb.nav(chromedp.Navigate(site+"/customers")), 200, "customers after sign-out")
	tb.requireSignInForm("protected page after sign-out")
	tb.requireStatus(tb.signIn(bob, bobPassword), 200, "sign-in as bob")
	requireCustomersAs(t, tb, site, bobName, "user:bob")
}

// TestWebappBackAfterSignIn: Back from the page the sign-in landed on goes
// to the identity server's authorize URL (the form's history entry); the
// identity server, which has a session, redirects straight to the callback
// with a new code and the old, used state. The user should land on an app
// page, still signed in.
func TestWebappBackAfterSignIn(t *testing.T) {
	site, _ := startSite(t, "webapp")
	b := newBrowser(t)
	tb := b.tab(b.ctx)
	webappSignIn(t, tb, site)

	resp := tb.nav(chromedp.NavigateBack())
	requireAppPageSignedIn(t, tb, resp, site, aliceName)
}

// TestWebappReplayedCallback: navigating again to the callback URL of a
// completed sign-in, while signed in, leaves the user signed in on an app
// page (the code is not redeemed twice), with no error text from Go.
func TestWebappReplayedCallback(t *testing.T) {
	site, _ := startSite(t, "webapp")
	b := newBrowser(t)
	tb := b.tab(b.ctx)
	webappSignIn(t, tb, site)
	callbacks := b.requested(site + "/callback?")
	if len(callbacks) != 1 {
		t.Fatalf("callback URLs seen: %q", callbacks)
	}

	resp := tb.nav(chromedp.Navigate(callbacks[0]))
	requireAppPageSignedIn(t, tb, resp, site, aliceName)
}

// requireAppPageSignedIn fails unless the tab shows one of the webapp's
// pages (not the callback) with the user signed in and no Go error text.
func requireAppPageSignedIn(t *testing.T, tb *tab, resp *network.Response, site, name string) {
	t.Helper()
	at := tb.url()
	txt := tb.text()
	if resp.Status != 200 || !strings.HasPrefix(at, site+"/") || strings.HasPrefix(at, site+"/callback") {
		t.Fatalf("expected an app page (HTTP 200, not the callback), got %d at %s:\n%s", resp.Status, at, txt)
	}
	if !strings.Contains(txt, signedInAs(name)) {
		t.Fatalf("expected %s to be signed in at %s:\n%s", name, at, txt)
	}
	if goErrorText.MatchString(txt) {
		t.Fatalf("Go error text reaches the browser at %s:\n%s", at, txt)
	}
}

// TestWebappTwoTabsSignInAtOnce: two tabs of one browser start a sign-in
// each, then both forms are completed; both land signed in (the second
// sign-in replaces the first's session in this browser).
func TestWebappTwoTabsSignInAtOnce(t *testing.T) {
	site, _ := startSite(t, "webapp")
	b := newBrowser(t)
	tab1 := b.tab(b.ctx)
	tab2 := b.tab(b.newTab())

	for _, tb := range []*tab{tab1, tab2} {
		tb.requireStatus(tb.nav(chromedp.Navigate(site+"/signin?return_to=%2Fcustomers")), 200, "start sign-in")
		tb.requireSignInForm("sign-in started")
	}
	tab1.requireStatus(tab1.signIn(alice, alicePassword), 200, "first tab's form")
	requireCustomersAs(t, tab1, site, aliceName, "user:alice")
	tab2.requireStatus(tab2.signIn(bob, bobPassword), 200, "second tab's form")
	requireCustomersAs(t, tab2, site, bobName, "user:bob")
}

// TestWebappCancelSignIn: Cancel on the identity server's form comes back
// to the callback with error=access_denied; the app says the sign-in did
// not happen and offers to sign in again; nobody is signed in.
func TestWebappCancelSignIn(t *testing.T) {
	site, _ := startSite(t, "webapp")
	b := newBrowser(t)
	// The app answers the cancelled sign-in with a 4xx page (403 today), which Chromium
	// logs as a failed load.
	b.allow(`status of 4\d\d .*\(` + regexp.QuoteMeta(site+"/callback?error=access_denied"))
	tb := b.tab(b.ctx)

	tb.requireStatus(tb.nav(chromedp.Navigate(site+"/customers")), 200, "protected page")
	tb.requireSignInForm("protected page, signed out")
	tb.nav(chromedp.Click(loginCancel))

	callbacks := b.requested(site + "/callback?")
	if len(callbacks) != 1 {
		t.Fatalf("callback URLs seen after Cancel: %q", callbacks)
	}
	cb, _ := url.Parse(callbacks[0])
	if got := cb.Query().Get("error"); got != "access_denied" {
		t.Fatalf("Cancel came back with error=%q, want access_denied (%s)", got, callbacks[0])
	}
	at, txt := tb.url(), tb.text()
	if !strings.HasPrefix(at, site+"/") || tb.onSignInForm() {
		t.Fatalf("after Cancel, expected an app page, at %s:\n%s", at, txt)
	}
	if !tb.has(`a[href^="/signin"]`) || strings.Contains(txt, "Signed in as") {
		t.Fatalf("after Cancel, expected a page offering to sign in again, at %s:\n%s", at, txt)
	}
	t.Run("no Go error text", func(t *testing.T) {
		if goErrorText.MatchString(txt) {
			t.Errorf("Go error text reaches the browser after Cancel:\n%s", txt)
		}
	})

	// Nobody is signed in.
	tb.requireStatus(tb.nav(chromedp.Navigate(site+"/")), 200, "home page")
	if txt := tb.text(); !strings.Contains(txt, webappSignedOut) {
		t.Fatalf("home page after Cancel:\n%s", txt)
	}
}

// writeScreenshot saves the tab's viewport, 1024x700, as a PNG.
func writeScreenshot(t *testing.T, tb *tab, path string) {
	t.Helper()
	var png []byte
	tb.do(chromedp.EmulateViewport(1024, 700), chromedp.Func(func(ctx context.Context, target *chromedp.Target) error {
		var err error
		png, err = chromedp.CaptureScreenshot()(ctx, target)
		return err
	}))
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s (%d bytes)", path, len(png))
}
