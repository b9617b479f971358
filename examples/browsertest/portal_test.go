package browsertest

import (
	"context"
	"errors"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

var importedBy = regexp.MustCompile(`import ran as system:portal-system \(triggered by alice at \d\d:\d\d:\d\d\): 3 customers`)

// portalSignIn opens the portal (every page needs a user), signs in as
// alice on the identity server's form and returns when her page shows.
func portalSignIn(t *testing.T, tb *tab, site string) {
	t.Helper()
	tb.requireStatus(tb.nav(chromedp.Navigate(site+"/")), 200, "portal home")
	tb.requireSignInForm("portal, signed out")
	tb.requireStatus(tb.signIn(alice, alicePassword), 200, "sign-in form")
	requirePortalAs(t, tb, site)
}

func requirePortalAs(t *testing.T, tb *tab, site string) {
	t.Helper()
	if u := tb.url(); u != site+"/" {
		t.Fatalf("expected the portal at %s/, at %s:\n%s", site, u, tb.text())
	}
	txt := tb.text()
	for _, want := range []string{"Signed in as " + aliceName + " (alice)", "read as user:alice, with your own token", "Acme Manufacturing Ltd"} {
		if !strings.Contains(txt, want) {
			t.Fatalf("portal page lacks %q:\n%s", want, txt)
		}
	}
}

// TestPortalSignInImportSignOut: sign in on the identity server's form,
// the page as alice, Import now (it runs as the System User), reload, then
// Sign out through the identity server's end-session endpoint (the portal's
// Content-Security-Policy must let the form's redirect go there: with
// form-action 'self' alone the browser blocks it, logs a CSP violation and
// the next visit signs alice straight back in), reload and Back after
// sign-out, and the next visit asks for the password again.
func TestPortalSignInImportSignOut(t *testing.T) {
	site, idp := startSite(t, "portal", "-import-every", "0")
	b := newBrowser(t)
	tb := b.tab(b.ctx)
	portalSignIn(t, tb, site)

	// Import now: runs as the System User, triggered by alice.
	tb.requireStatus(tb.nav(chromedp.Click(`form[action="/import"] button`)), 200, "Import now")
	requirePortalAs(t, tb, site)
	if txt := tb.text(); !importedBy.MatchString(txt) {
		t.Fatalf("after Import now, the page does not show the import run as the System User:\n%s", txt)
	}

	// Reload after sign-in: still alice.
	tb.requireStatus(tb.nav(chromedp.Reload()), 200, "reload after sign-in")
	requirePortalAs(t, tb, site)

	// Sign out.
	ctx, cancel := context.WithTimeout(tb.ctx, hangGuard)
	resp, err := chromedp.RunResponse(ctx, chromedp.Click(`form[action="/signout"] button`))
	cancel()
	if err != nil {
		var le *chromedp.LoadError
		if errors.As(err, &le) {
			t.Fatalf("Sign out: the browser did not follow the sign-out (%v); is the redirect to the identity server's end-session endpoint blocked by the page's CSP form-action? At %s", err, tb.url())
		}
		t.Fatalf("Sign out: %v", err)
	}
	tb.requireStatus(resp, 200, "Sign out")
	if len(b.requested(idp+"/id/connect/endsession?")) != 1 {
		t.Fatalf("sign-out did not go through the identity server's end-session endpoint: %q", b.requested(""))
	}
	u, err := url.Parse(tb.url())
	if err != nil || u.Scheme+"://"+u.Host+u.Path != site+"/signed-out" {
		t.Fatalf("sign-out ended at %s, want %s/signed-out", tb.url(), site)
	}
	if txt := tb.text(); !strings.Contains(txt, "You are signed out") {
		t.Fatalf("signed-out page:\n%s", txt)
	}
	t.Run("address bar clean after sign-out", func(t *testing.T) {
		if got := tb.url(); got != site+"/signed-out" {
			t.Errorf("address bar after sign-out: %s, want %s/signed-out", got, site)
		}
	})

	// Reload after sign-out: still the signed-out page.
	tb.requireStatus(tb.nav(chromedp.Reload()), 200, "reload after sign-out")
	if txt := tb.text(); !strings.Contains(txt, "You are signed out") {
		t.Fatalf("reload after sign-out:\n%s", txt)
	}

	// Back after sign-out: alice's page is gone; the identity server asks
	// for the password (its session ended with the portal's).
	tb.nav(chromedp.NavigateBack())
	if txt := tb.text(); strings.Contains(txt, "Acme Manufacturing") || strings.Contains(txt, "Signed in as") {
		t.Fatalf("Back after sign-out shows signed-in content at %s:\n%s", tb.url(), txt)
	}
	tb.requireSignInForm("Back after sign-out")

	// The next visit asks for the password again.
	tb.requireStatus(tb.nav(chromedp.Navigate(site+"/")), 200, "portal after sign-out")
	tb.requireSignInForm("portal after sign-out")
}

// TestPortalBackAfterSignIn: Back from the portal page the sign-in landed
// on re-runs the identity server's authorize request (the form's history
// entry), which redirects straight to the callback with the old, used
// state; alice should land on the portal, still signed in.
func TestPortalBackAfterSignIn(t *testing.T) {
	site, _ := startSite(t, "portal", "-import-every", "0")
	b := newBrowser(t)
	tb := b.tab(b.ctx)
	portalSignIn(t, tb, site)

	tb.requireStatus(tb.nav(chromedp.NavigateBack()), 200, "Back after sign-in")
	requirePortalAs(t, tb, site)
	if txt := tb.text(); goErrorText.MatchString(txt) {
		t.Fatalf("Go error text reaches the browser:\n%s", txt)
	}
}
