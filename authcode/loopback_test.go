package authcode

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/erpnetgo/auth"
	"github.com/erpnetgo/auth/erpnettest"
	"github.com/erpnetgo/auth/internal/erpnetctl"
	"github.com/erpnetgo/auth/internal/testutil"
)

// cliEnv is an env whose Client is the public demo CLI application; a
// non-nil store replaces the in-memory one.
func cliEnv(t *testing.T, store ...Store) *env {
	return newEnv(t, withClient(func(c *Config) {
		c.ClientID, c.ClientSecret, c.RedirectURL, c.PostLogoutRedirectURL = erpnettest.Demo.CLIID, "", "", ""
		if len(store) > 0 {
			c.Store = store[0]
		}
	}))
}

// neverOpen is an OpenBrowser that fails the test: the saved session
// should have been reused.
func neverOpen(t *testing.T) func(string) error {
	return func(string) error {
		t.Error("the browser was opened although the saved session is usable")
		return errors.New("not expected")
	}
}

// fakeBrowser follows the authorization URL like a browser would (the
// identity server signs the user in automatically) and records what the
// loopback listener answered.
type fakeBrowser struct {
	t      *testing.T
	hc     *http.Client
	calls  int
	status int
	page   string
	final  *url.URL
}

func newFakeBrowser(t *testing.T) *fakeBrowser {
	jar, _ := cookiejar.New(nil)
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &fakeBrowser{t: t, hc: &http.Client{Jar: jar, Transport: tr, Timeout: 10 * time.Second}}
}

func (f *fakeBrowser) open(u string) error {
	f.calls++
	resp, err := f.hc.Get(u)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	f.status, f.page, f.final = resp.StatusCode, string(b), resp.Request.URL
	return nil
}

func TestLoopbackSignIn(t *testing.T) {
	e := cliEnv(t)
	fb := newFakeBrowser(t)
	var out bytes.Buffer
	s, err := e.c.LoopbackSignIn(context.Background(), LoopbackOptions{OpenBrowser: fb.open, Output: &out})
	require.NoError(t, err)
	assert.Equal(t, 1, fb.calls)
	assert.Equal(t, http.StatusOK, fb.status)
	assert.Contains(t, fb.page, "Signed in")
	assert.Equal(t, "127.0.0.1", fb.final.Hostname())
	assert.Equal(t, "/callback", fb.final.Path)
	assert.Equal(t, "alice", s.Subject)
	assert.Equal(t, loopbackID, s.ID)
	assert.NotEmpty(t, s.sn.Rec.RefreshToken)
	assert.NotEmpty(t, s.sn.Rec.IDToken)
	assert.NotContains(t, s.String(), s.sn.Rec.AccessToken)
	assert.NotContains(t, fmt.Sprintf("%v %+v %#v", s, s, s), s.sn.Rec.AccessToken)
	// A custom OpenBrowser that succeeded gets no "if no browser window
	// opened" line (examples/cli -auto involves no browser: issue 23); the
	// system browser's fallback line is checked by examples/browsertest.
	assert.Empty(t, out.String())

	// The listener is gone.
	_, err = net.DialTimeout("tcp", fb.final.Host, time.Second)
	assert.Error(t, err)

	// The session works like a web one, refresh included.
	resp, err := e.c.UserClient(context.Background(), s).Get(domainAPI(e))
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, "user:alice", resp.Header.Get("X-Erpnet-Caller"))
	e.advance(time.Hour + time.Minute)
	tok, err := e.c.TokenSource(context.Background(), s).Token()
	require.NoError(t, err)
	assert.NotEqual(t, s.sn.Rec.AccessToken, tok.AccessToken)
	assert.Empty(t, tok.RefreshToken, "handed-out tokens carry no refresh token")
	assert.Equal(t, 1, erpnetctl.Of(e.idp).Grants("refresh_token"))
	for _, r := range e.rec.requests() {
		assert.Empty(t, r.Header.Get("Authorization"), "public client: no secret")
		assert.False(t, r.Form.Has("client_secret"))
	}

	// With the in-memory store, the same Client reuses the session.
	s2, err := e.c.LoopbackSignIn(context.Background(), LoopbackOptions{OpenBrowser: neverOpen(t), Output: io.Discard})
	require.NoError(t, err)
	assert.Equal(t, "alice", s2.Subject)
	assert.Equal(t, 1, erpnetctl.Of(e.idp).Grants("authorization_code"))
}

func TestLoopbackIgnoresForgedCallbacks(t *testing.T) {
	e := cliEnv(t)
	fb := newFakeBrowser(t)
	var forged int
	open := func(u string) error {
		q := mustQuery(t, u)
		redirect := q.Get("redirect_uri")
		// A local attacker races the browser with a forged callback.
		resp, err := fb.hc.Get(redirect + "?code=forged&state=wrong")
		require.NoError(t, err)
		resp.Body.Close()
		forged = resp.StatusCode
		return fb.open(u)
	}
	s, err := e.c.LoopbackSignIn(context.Background(), LoopbackOptions{OpenBrowser: open, Output: io.Discard})
	require.NoError(t, err)
	assert.Equal(t, http.StatusBadRequest, forged)
	assert.Equal(t, "alice", s.Subject)
}

func TestLoopbackErrorsAndTimeout(t *testing.T) {
	e := cliEnv(t)
	t.Run("timeout", func(t *testing.T) {
		// The caller's context has no deadline: DeadlineExceeded can only
		// come from Timeout (the default is 5 minutes).
		_, err := e.c.LoopbackSignIn(context.Background(), LoopbackOptions{
			OpenBrowser: func(string) error { return nil }, Output: io.Discard, Timeout: 200 * time.Millisecond})
		require.Error(t, err)
		assert.ErrorIs(t, err, context.DeadlineExceeded)
	})
	t.Run("error response", func(t *testing.T) {
		fb := newFakeBrowser(t)
		_, err := e.c.LoopbackSignIn(context.Background(), LoopbackOptions{Output: io.Discard, OpenBrowser: func(u string) error {
			q := mustQuery(t, u)
			return fb.open(q.Get("redirect_uri") + "?" + url.Values{"state": {q.Get("state")}, "error": {"access_denied"}}.Encode())
		}})
		var oe *auth.Error
		require.ErrorAs(t, err, &oe)
		assert.Equal(t, "access_denied", oe.Code)
		assert.Equal(t, http.StatusForbidden, fb.status)
		assert.Contains(t, fb.page, "Sign-in cancelled")
		assertNoGoErrorText(t, fb.page)
	})
	t.Run("tampered ID token", func(t *testing.T) {
		fb := newFakeBrowser(t)
		erpnetctl.Of(e.idp).TamperNextIDToken(erpnetctl.Tamper{Claims: map[string]any{"nonce": "other"}})
		_, err := e.c.LoopbackSignIn(context.Background(), LoopbackOptions{OpenBrowser: fb.open, Output: io.Discard})
		assert.ErrorIs(t, err, ErrInvalidIDToken)
		assert.Contains(t, fb.page, "Sign-in could not be verified")
		assertNoGoErrorText(t, fb.page)
	})
	t.Run("browser cannot be opened", func(t *testing.T) {
		// The URL is printed at once for the user, who opens it by hand;
		// the sign-in waits on.
		fb := newFakeBrowser(t)
		urlRE := regexp.MustCompile(`http://\S+/connect/authorize\?\S+`)
		// The user reads the URL from the output as soon as it is written
		// (it must be, or the sign-in times out) and opens it.
		out := &urlWatcher{re: urlRE, found: make(chan string, 1)}
		opened := make(chan struct{})
		go func() {
			defer close(opened)
			_ = fb.open(<-out.found)
		}()
		s, err := e.c.LoopbackSignIn(context.Background(), LoopbackOptions{Output: out, Timeout: 20 * time.Second,
			OpenBrowser: func(string) error { return errors.New("no display") }})
		<-opened
		require.NoError(t, err)
		assert.Equal(t, "alice", s.Subject)
		assert.Contains(t, out.String(), "Could not open a browser")
		assert.Equal(t, http.StatusOK, fb.status)
	})
}

// With a FileStore, the loopback session survives the process: the next
// run (a new Client over the same file) reuses it without a browser.
func TestLoopbackFileStore(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "session.json")
	e := cliEnv(t, &FileStore{Path: file})
	ctx := context.Background()
	// run starts a new "process" over the same file.
	run := func(open func(string) error) (*Session, error) {
		c, err := New(e.cfg)
		require.NoError(t, err)
		t.Cleanup(func() { c.Close() })
		return c.LoopbackSignIn(ctx, LoopbackOptions{OpenBrowser: open, Output: io.Discard})
	}

	fb := newFakeBrowser(t)
	s, err := run(fb.open)
	require.NoError(t, err)
	assert.Equal(t, 1, fb.calls)
	assert.Equal(t, "alice", s.Subject)
	st, err := os.Stat(file)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	entries, _ := os.ReadDir(dir)
	assert.Len(t, entries, 1, "no temporary files left behind")
	first, _ := os.ReadFile(file)

	// Next run: the session is reused, no browser, no token request (the
	// access token is still good).
	s2, err := run(neverOpen(t))
	require.NoError(t, err)
	assert.Equal(t, "alice", s2.Subject)
	assert.Equal(t, s.sn.Rec.AccessToken, s2.sn.Rec.AccessToken)
	assert.Equal(t, 1, erpnetctl.Of(e.idp).Grants("authorization_code"))
	assert.Zero(t, erpnetctl.Of(e.idp).Grants("refresh_token"))

	// A later run after the access token expired refreshes it through the
	// usual path and saves the rotated refresh token to the file.
	e.advance(time.Hour + time.Minute)
	s3, err := run(neverOpen(t))
	require.NoError(t, err)
	assert.Equal(t, 1, erpnetctl.Of(e.idp).Grants("refresh_token"))
	assert.NotEqual(t, s.sn.Rec.AccessToken, s3.sn.Rec.AccessToken)
	assert.NotEqual(t, s.sn.Rec.RefreshToken, s3.sn.Rec.RefreshToken, "rotated")
	second, _ := os.ReadFile(file)
	assert.NotEqual(t, string(first), string(second))
	st, _ = os.Stat(file)
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	c, err := New(e.cfg)
	require.NoError(t, err)
	defer c.Close()
	resp, err := c.UserClient(ctx, s3).Get(domainAPI(e))
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)

	// A file others can read is refused, not read.
	require.NoError(t, os.Chmod(file, 0o644))
	_, err = run(neverOpen(t))
	assert.ErrorIs(t, err, auth.ErrMisconfigured)
	require.NoError(t, os.Chmod(file, 0o600))

	// A dead saved refresh token (revoked at the identity server) makes
	// the next run open the browser instead of failing.
	e.advance(time.Hour + time.Minute)
	e.idp.RevokeUser(testUser)
	fb2 := newFakeBrowser(t)
	s4, err := run(fb2.open)
	require.NoError(t, err)
	assert.Equal(t, 1, fb2.calls)
	assert.Equal(t, "alice", s4.Subject)
	assert.Equal(t, 2, erpnetctl.Of(e.idp).Grants("refresh_token"), "the dead token was tried once")
	assert.Equal(t, 2, erpnetctl.Of(e.idp).Grants("authorization_code"))

	// And the new session is what the run after that reuses.
	s5, err := run(neverOpen(t))
	require.NoError(t, err)
	assert.Equal(t, s4.sn.Rec.AccessToken, s5.sn.Rec.AccessToken)
}

// urlWatcher is an Output that hands the first match of re to found, as
// soon as it is written.
type urlWatcher struct {
	testutil.SyncBuffer
	re    *regexp.Regexp
	once  sync.Once
	found chan string
}

func (w *urlWatcher) Write(p []byte) (int, error) {
	n, err := w.SyncBuffer.Write(p)
	if u := w.re.FindString(w.SyncBuffer.String()); u != "" {
		w.once.Do(func() { w.found <- u })
	}
	return n, err
}
