package authcode

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/erpnetgo/auth/internal/devserver"
)

// cliEnv is an env whose Client is the public demo CLI application.
func cliEnv(t *testing.T) *env {
	return newEnv(t, withClient(func(c *Config) {
		c.ClientID, c.ClientSecret, c.RedirectURL, c.PostLogoutRedirectURL = devserver.DemoCLIID, "", "", ""
	}))
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
	res, err := e.c.LoopbackSignIn(context.Background(), LoopbackOptions{OpenBrowser: fb.open})
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, fb.status)
	assert.Contains(t, fb.page, "Signed in")
	assert.Equal(t, "127.0.0.1", fb.final.Hostname())
	assert.Equal(t, "/callback", fb.final.Path)
	assert.False(t, res.Reused)
	assert.Equal(t, "alice", res.Session.Subject)
	assert.NotEmpty(t, res.Token.RefreshToken)
	assert.NotEmpty(t, res.Token.Extra("id_token"))
	assert.NotContains(t, res.String(), res.Token.AccessToken)

	// The listener is gone.
	_, err = net.DialTimeout("tcp", fb.final.Host, time.Second)
	assert.Error(t, err)

	// The session works like a web one, refresh included.
	resp, err := e.c.UserClient(context.Background(), res.Session).Get(domainAPI(e))
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, "user:alice", resp.Header.Get("X-Erpnet-Caller"))
	e.advance(time.Hour + time.Minute)
	tok, err := res.TokenSource.Token()
	require.NoError(t, err)
	assert.NotEqual(t, res.Token.AccessToken, tok.AccessToken)
	assert.Equal(t, 1, e.idp.GrantCount("refresh_token"))
	for _, r := range e.rec.requests() {
		assert.Empty(t, r.Header.Get("Authorization"), "public client: no secret")
		assert.False(t, r.Form.Has("client_secret"))
	}
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
	res, err := e.c.LoopbackSignIn(context.Background(), LoopbackOptions{OpenBrowser: open})
	require.NoError(t, err)
	assert.Equal(t, http.StatusBadRequest, forged)
	assert.Equal(t, "alice", res.Session.Subject)
}

func TestLoopbackErrorsAndTimeout(t *testing.T) {
	e := cliEnv(t)
	t.Run("timeout", func(t *testing.T) {
		start := time.Now()
		_, err := e.c.LoopbackSignIn(context.Background(), LoopbackOptions{
			OpenBrowser: func(string) error { return nil }, Timeout: 200 * time.Millisecond})
		require.Error(t, err)
		assert.ErrorIs(t, err, context.DeadlineExceeded)
		assert.Less(t, time.Since(start), 5*time.Second)
	})
	t.Run("error response", func(t *testing.T) {
		fb := newFakeBrowser(t)
		_, err := e.c.LoopbackSignIn(context.Background(), LoopbackOptions{OpenBrowser: func(u string) error {
			q := mustQuery(t, u)
			return fb.open(q.Get("redirect_uri") + "?" + url.Values{"state": {q.Get("state")}, "error": {"access_denied"}}.Encode())
		}})
		var oe *Error
		require.ErrorAs(t, err, &oe)
		assert.Equal(t, "access_denied", oe.Code)
		assert.Equal(t, http.StatusForbidden, fb.status)
	})
	t.Run("tampered ID token", func(t *testing.T) {
		fb := newFakeBrowser(t)
		e.idp.TamperNextIDToken(devserver.IDTokenTamper{Claims: map[string]any{"nonce": "other"}})
		_, err := e.c.LoopbackSignIn(context.Background(), LoopbackOptions{OpenBrowser: fb.open})
		assert.ErrorIs(t, err, ErrInvalidIDToken)
		assert.Contains(t, fb.page, "Sign-in failed")
	})
	t.Run("browser cannot be opened", func(t *testing.T) {
		// The URL is printed for the user; the sign-in waits on.
		fb := newFakeBrowser(t)
		stderr := os.Stderr
		r, w, _ := os.Pipe()
		os.Stderr = w
		done := make(chan string)
		go func() { b, _ := io.ReadAll(r); done <- string(b) }()
		_, err := e.c.LoopbackSignIn(context.Background(), LoopbackOptions{OpenBrowser: func(u string) error {
			go fb.open(u) //nolint:errcheck // the user opens it by hand
			return errors.New("no display")
		}, Timeout: 10 * time.Second})
		os.Stderr = stderr
		w.Close()
		out := <-done
		require.NoError(t, err)
		assert.Contains(t, out, "/connect/authorize?")
	})
}

func TestLoopbackRefreshTokenFile(t *testing.T) {
	e := cliEnv(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "token.json")
	fb := newFakeBrowser(t)
	res, err := e.c.LoopbackSignIn(context.Background(), LoopbackOptions{OpenBrowser: fb.open, RefreshTokenFile: file})
	require.NoError(t, err)
	st, err := os.Stat(file)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	first, _ := os.ReadFile(file)
	assert.Contains(t, string(first), res.Token.RefreshToken)
	entries, _ := os.ReadDir(dir)
	assert.Len(t, entries, 1, "no temporary files left behind")

	// Next run: the file is reused, no browser.
	never := func(string) error { t.Error("the browser was opened although the token file is valid"); return nil }
	res2, err := e.c.LoopbackSignIn(context.Background(), LoopbackOptions{OpenBrowser: never, RefreshTokenFile: file})
	require.NoError(t, err)
	assert.True(t, res2.Reused)
	assert.Equal(t, "alice", res2.Session.Subject)
	assert.Equal(t, 1, e.idp.GrantCount("refresh_token"))
	second, _ := os.ReadFile(file)
	assert.NotContains(t, string(second), res.Token.RefreshToken, "the rotated refresh token replaced the used one")
	assert.Contains(t, string(second), res2.Token.RefreshToken)

	// Rotation through the TokenSource updates the file too.
	e.advance(time.Hour + time.Minute)
	_, err = res2.TokenSource.Token()
	require.NoError(t, err)
	third, _ := os.ReadFile(file)
	assert.NotEqual(t, string(second), string(third))
	st, _ = os.Stat(file)
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm())

	// A file others can read is refused, not read.
	require.NoError(t, os.Chmod(file, 0o644))
	_, err = e.c.LoopbackSignIn(context.Background(), LoopbackOptions{OpenBrowser: never, RefreshTokenFile: file})
	assert.ErrorIs(t, err, ErrTokenFileInsecure)
	require.NoError(t, os.Chmod(file, 0o600))

	// A dead refresh token falls back to the browser.
	e.idp.RevokeUser(testUser)
	fb2 := newFakeBrowser(t)
	res3, err := e.c.LoopbackSignIn(context.Background(), LoopbackOptions{OpenBrowser: fb2.open, RefreshTokenFile: file})
	require.NoError(t, err)
	assert.False(t, res3.Reused)
	assert.Equal(t, 1, fb2.calls)
	fourth, _ := os.ReadFile(file)
	assert.True(t, strings.Contains(string(fourth), res3.Token.RefreshToken))
}
