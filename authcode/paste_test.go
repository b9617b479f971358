package authcode_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/erpnetgo/auth/authcode"
	"github.com/erpnetgo/auth/erpnettest"
	"github.com/erpnetgo/auth/internal/erpnetctl"
	"github.com/erpnetgo/auth/internal/oidctest"
	"github.com/erpnetgo/auth/internal/testutil"
)

// headless is a command-line app on a machine without a browser, signing
// in with the demo CLI application of an identity server that signs alice
// in by itself.
type headless struct {
	idp   *erpnettest.Server
	c     *authcode.Client
	now   atomic.Int64 // offset of the app's clock
	paste *io.PipeWriter
	opts  authcode.LoopbackOptions
	out   *testutil.SyncBuffer
}

func newHeadless(t *testing.T) *headless {
	h := &headless{idp: erpnettest.NewServer(t), out: &testutil.SyncBuffer{}}
	erpnetctl.Of(h.idp).AutoSignIn(erpnettest.Demo.Alice)
	c, err := authcode.New(authcode.Config{Authority: h.idp.URL(), ClientID: erpnettest.Demo.CLIID,
		Now: func() time.Time { return time.Now().Add(time.Duration(h.now.Load())) }})
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	h.c = c
	pr, pw := io.Pipe()
	t.Cleanup(func() { pw.Close() }) // ends the SDK's read of the paste input
	h.paste = pw
	h.opts = authcode.LoopbackOptions{Paste: pr, Output: h.out, Timeout: 20 * time.Second}
	return h
}

// browse plays a browser on another machine: it signs in at authURL and
// returns the address it ends on, the redirect to the app's loopback
// listener, without requesting it (it cannot reach it).
func browse(t *testing.T, authURL string) string {
	hc := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	target := authURL
	for range 10 {
		resp, err := hc.Get(target)
		if err != nil {
			t.Error(err)
			return ""
		}
		resp.Body.Close()
		loc, err := resp.Request.URL.Parse(resp.Header.Get("Location"))
		if err != nil || resp.Header.Get("Location") == "" {
			t.Errorf("the identity server answered %s without a redirect", resp.Status)
			return ""
		}
		if loc.Query().Get("code") != "" || loc.Query().Get("error") != "" {
			return loc.String()
		}
		target = loc.String()
	}
	t.Error("too many redirects")
	return ""
}

// The browser is on another machine: the user pastes the address it ended
// on. An address of another sign-in or another host is refused and the
// prompt repeats; the right one completes the sign-in without the
// listener ever being reached.
func TestLoopbackPaste(t *testing.T) {
	h := newHeadless(t)
	var redirect string
	h.opts.OpenBrowser = func(authURL string) error {
		final := browse(t, authURL)
		u, _ := url.Parse(final)
		redirect = u.Scheme + "://" + u.Host + u.Path
		other := *u
		q := other.Query()
		q.Set("state", "another-sign-in")
		other.RawQuery = q.Encode()
		otherHost := *u
		otherHost.Host = "127.0.0.2:" + u.Port()
		go func() {
			for _, line := range []string{"  " + otherHost.String(), other.String(), "", `"` + final + `"`} {
				if _, err := io.WriteString(h.paste, line+"\n"); err != nil {
					return
				}
			}
		}()
		return errors.New("no browser on this machine")
	}
	s, err := h.c.LoopbackSignIn(context.Background(), h.opts)
	require.NoError(t, err)
	assert.Equal(t, erpnettest.Demo.Alice, s.Subject)
	out := h.out.String()
	assert.Contains(t, out, "/connect/authorize?", "the URL is printed")
	assert.Contains(t, out, "Could not open a browser")
	assert.Contains(t, out, "paste it here")
	assert.Contains(t, out, "That is not the address of this sign-in: it must start with "+redirect+"?")
	assert.Contains(t, out, "That address belongs to another sign-in")
	assert.Contains(t, out, "Nothing was pasted")
	assert.Equal(t, 4, strings.Count(out, "Address: "), "the prompt repeats after each refusal")
	assert.Equal(t, 1, erpnetctl.Of(h.idp).Grants("authorization_code"))
	ru, _ := url.Parse(redirect)
	_, err = net.DialTimeout("tcp", ru.Host, time.Second)
	assert.Error(t, err, "the listener is closed")

	// The session works.
	resp, err := h.c.UserClient(context.Background(), s).Get(h.idp.URL() + "/api/domain/odata/Crm_Sales_Customers")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, "user:alice", resp.Header.Get("X-Erpnet-Caller"))
}

// With Paste set the listener still waits: a browser on this machine that
// reaches it first completes the sign-in, and a paste after that changes
// nothing.
func TestLoopbackPasteBrowserFirst(t *testing.T) {
	h := newHeadless(t)
	h.opts.OpenBrowser = func(authURL string) error {
		resp, err := http.Get(authURL) // follows the redirects to the listener
		if err != nil {
			return err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return nil
	}
	s, err := h.c.LoopbackSignIn(context.Background(), h.opts)
	require.NoError(t, err)
	assert.Equal(t, erpnettest.Demo.Alice, s.Subject)
	assert.Equal(t, 1, erpnetctl.Of(h.idp).Grants("authorization_code"))
	http.DefaultTransport.(*http.Transport).CloseIdleConnections()
}

// An attempt that ends unanswered says so: after Timeout, and when the
// address is pasted after the attempt's ten minutes.
func TestLoopbackPasteExpiredAttempt(t *testing.T) {
	h := newHeadless(t)
	h.opts.Timeout = 200 * time.Millisecond
	h.opts.OpenBrowser = func(string) error { return errors.New("no browser") }
	_, err := h.c.LoopbackSignIn(context.Background(), h.opts)
	require.ErrorIs(t, err, authcode.ErrAttemptExpired)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Contains(t, err.Error(), "no answer from the browser within 200ms")

	// A new input: the first sign-in's read of the old one is still
	// waiting for its next line (see LoopbackOptions.Paste).
	pr, pw := io.Pipe()
	defer pw.Close()
	h.opts.Paste, h.opts.Timeout = pr, 20*time.Second
	h.opts.OpenBrowser = func(authURL string) error {
		final := browse(t, authURL)
		h.now.Add(int64(11 * time.Minute)) // the user took a long break
		go io.WriteString(pw, final+"\n")
		return errors.New("no browser")
	}
	_, err = h.c.LoopbackSignIn(context.Background(), h.opts)
	require.ErrorIs(t, err, authcode.ErrAttemptExpired)
	assert.Contains(t, err.Error(), "started more than 10m0s ago")
	assert.Zero(t, erpnetctl.Of(h.idp).Grants("authorization_code"), "an expired attempt's code is not redeemed")
}

// The same with oidc-provider: the pasted address (code, state and the
// RFC 9207 iss) completes a standard loopback sign-in.
func TestLoopbackPasteOIDCProvider(t *testing.T) {
	const clientID = "com.example.test/cli"
	p := oidctest.Start(t, oidctest.Config{Clients: []oidctest.Client{{ID: clientID, AuthMethod: "none", Native: true,
		GrantTypes: []string{"authorization_code"}, RedirectURIs: []string{"http://127.0.0.1/callback"}}}})
	c, err := authcode.New(authcode.Config{Authority: p.Issuer(), ClientID: clientID, Scopes: []string{"openid", "profile"}})
	require.NoError(t, err)
	defer c.Close()
	pr, pw := io.Pipe()
	defer pw.Close()
	out := &testutil.SyncBuffer{}
	s, err := c.LoopbackSignIn(context.Background(), authcode.LoopbackOptions{Paste: pr, Output: out, Timeout: 30 * time.Second,
		OpenBrowser: func(authURL string) error {
			go func() {
				final, err := p.Login(context.Background(), authURL, "alice")
				if err != nil {
					t.Error(err)
					pw.Close()
					return
				}
				io.WriteString(pw, final.String()+"\n")
			}()
			return errors.New("no browser")
		}})
	require.NoError(t, err)
	assert.Equal(t, "alice", s.Subject)
	assert.Equal(t, 1, strings.Count(out.String(), "Address: "))
}
