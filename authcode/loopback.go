package authcode

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"

	"github.com/erpnetgo/auth/internal/autherr"
	"github.com/erpnetgo/auth/internal/discovery"
)

// DefaultLoopbackTimeout bounds a loopback sign-in when
// LoopbackOptions.Timeout is zero.
const DefaultLoopbackTimeout = 5 * time.Minute

// LoopbackOptions configure Client.LoopbackSignIn.
type LoopbackOptions struct {
	// OpenBrowser opens the authorization URL; nil means the system browser
	// (xdg-open, open or rundll32). If it fails, the URL is printed to
	// standard error for the user to open, and the sign-in keeps waiting.
	OpenBrowser func(url string) error
	// Timeout bounds the whole sign-in; zero means DefaultLoopbackTimeout.
	Timeout time.Duration
	// Path is the redirect URI's path; empty means "/callback". The
	// Trusted Application must list http://127.0.0.1<Path> (any port).
	Path string
	// RefreshTokenFile, if set, keeps the refresh token in this file (mode
	// 0600, written atomically, updated on every rotation) and reuses it on
	// the next run instead of opening the browser, as long as the identity
	// server still accepts it. A file readable or writable by group or
	// others is refused with ErrTokenFileInsecure.
	RefreshTokenFile string
}

// LoopbackResult is a completed loopback sign-in.
type LoopbackResult struct {
	// Session is the signed-in user, saved in the Client's Store; use it
	// with Client.UserClient and Client.TokenSource.
	Session *Session
	// Token holds the tokens as received: access token, refresh token (if
	// offline_access was granted) and, in Extra("id_token"), the ID token.
	Token *oauth2.Token
	// TokenSource returns fresh access tokens, refreshing (and saving the
	// rotated refresh token) as needed.
	TokenSource oauth2.TokenSource
	// Reused reports that the refresh token file was used and no browser
	// was opened.
	Reused bool
}

// String describes the result without any token.
func (r *LoopbackResult) String() string {
	if r == nil {
		return "authcode.LoopbackResult(nil)"
	}
	return "authcode.LoopbackResult{Session: " + r.Session.String() + ", Reused: " + strconv.FormatBool(r.Reused) + "}"
}

// GoString is String.
func (r *LoopbackResult) GoString() string { return r.String() }

// Format makes every fmt verb print String.
func (r *LoopbackResult) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(r.String())) }

// LoopbackSignIn signs a user in from a native or command-line app (RFC
// 8252): it listens on 127.0.0.1 on a random port, opens the browser at the
// authorization URL with redirect_uri http://127.0.0.1:<port><Path>, waits
// for the callback (at most Timeout), checks state, PKCE and the ID token
// exactly as the web Callback does, shows a short page, stops listening and
// returns the tokens. Callbacks with a wrong state are refused and the wait
// goes on. The session is saved in the Client's Store.
func (c *Client) LoopbackSignIn(ctx context.Context, opts LoopbackOptions) (*LoopbackResult, error) {
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultLoopbackTimeout
	}
	if opts.Path == "" {
		opts.Path = "/callback"
	}
	if !strings.HasPrefix(opts.Path, "/") || strings.ContainsAny(opts.Path, "?#") {
		return nil, &autherr.ConfigError{Field: "LoopbackOptions.Path", Reason: "must be an absolute path such as /callback"}
	}
	if opts.OpenBrowser == nil {
		opts.OpenBrowser = openSystemBrowser
	}
	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	doc, err := c.discover(ctx)
	if err != nil {
		return nil, err
	}
	if opts.RefreshTokenFile != "" {
		res, err := c.reuseTokenFile(ctx, doc, opts.RefreshTokenFile)
		if res != nil || err != nil {
			return res, err
		}
	}
	return c.loopbackBrowser(ctx, doc, opts)
}

type loopbackOutcome struct {
	id  string
	rec *record
	err error
}

func (c *Client) loopbackBrowser(ctx context.Context, doc *discovery.Document, opts LoopbackOptions) (*LoopbackResult, error) {
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
	results := make(chan loopbackOutcome, 1)
	var once sync.Once
	mux := http.NewServeMux()
	mux.HandleFunc(opts.Path, func(w http.ResponseWriter, r *http.Request) {
		noCache(w)
		q := r.URL.Query()
		if subtle.ConstantTimeCompare([]byte(q.Get("state")), []byte(a.State)) != 1 {
			// Not our sign-in (or a forged request): refuse it and keep waiting.
			loopbackPage(w, http.StatusBadRequest, "Sign-in failed", ErrInvalidState.Error())
			return
		}
		first := false
		once.Do(func() { first = true })
		if !first {
			loopbackPage(w, http.StatusBadRequest, "Sign-in failed", "this sign-in was already completed")
			return
		}
		out := loopbackOutcome{}
		out.rec, out.err = c.complete(ctx, doc, a, q, redirectURI)
		if out.err == nil {
			out.id, out.err = c.saveNewSession(ctx, out.rec, opts.RefreshTokenFile)
		}
		if out.err != nil {
			c.log.Warn("authcode: loopback sign-in failed", "error", out.err.Error())
			loopbackPage(w, statusFor(out.err), "Sign-in failed", out.err.Error())
		} else {
			loopbackPage(w, http.StatusOK, "Signed in", "You are signed in. You can close this window and return to the application.")
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
		c.log.Warn("authcode: cannot open the browser", "error", err.Error())
		fmt.Fprintf(os.Stderr, "Open this URL in your browser to sign in:\n\n  %s\n\n", authURL)
	}
	select {
	case out := <-results:
		if out.err != nil {
			return nil, out.err
		}
		return c.loopbackResult(ctx, out.id, out.rec, false)
	case <-ctx.Done():
		select {
		case out := <-results: // completed just in time
			if out.err != nil {
				return nil, out.err
			}
			return c.loopbackResult(ctx, out.id, out.rec, false)
		default:
		}
		return nil, fmt.Errorf("authcode: loopback sign-in: no callback received: %w", ctx.Err())
	}
}

// saveNewSession saves rec as a new session (and its refresh token to the
// token file, if any) and starts tracking it.
func (c *Client) saveNewSession(ctx context.Context, rec *record, file string) (string, error) {
	prefix, err := c.keyPrefix(ctx)
	if err != nil {
		return "", err
	}
	id := randomString(32)
	key := sessionKey(prefix, id)
	b, err := rec.encode()
	if err == nil {
		err = c.store.Save(ctx, key, b, c.cfg.SessionTTL)
	}
	if err != nil {
		return "", &autherr.Error{Op: "session store save", Kind: autherr.ErrTemporary, Err: err}
	}
	if file != "" {
		if err := writeTokenFile(file, rec); err != nil {
			return "", err
		}
	}
	if file != "" {
		c.tokenFiles.Store(id, file)
	}
	c.adopt(id, key, rec)
	return id, nil
}

func (c *Client) loopbackResult(ctx context.Context, id string, rec *record, reused bool) (*LoopbackResult, error) {
	prefix, err := c.keyPrefix(ctx)
	if err != nil {
		return nil, err
	}
	s := rec.session(id, sessionKey(prefix, id))
	tok := rec.token()
	tok.RefreshToken = rec.RefreshToken
	tok = tok.WithExtra(map[string]any{"id_token": rec.IDToken})
	return &LoopbackResult{Session: s, Token: tok, TokenSource: c.TokenSource(context.WithoutCancel(ctx), s), Reused: reused}, nil
}

func loopbackPage(w http.ResponseWriter, status int, title, msg string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'none'")
	w.WriteHeader(status)
	_, _ = fmt.Fprintf(w, `<!doctype html><meta charset="utf-8"><title>%s</title><h1>%s</h1><p>%s</p>`,
		html.EscapeString(title), html.EscapeString(title), html.EscapeString(msg))
}

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
	go func() { _ = cmd.Wait() }()
	return nil
}

// tokenFile is the JSON kept in LoopbackOptions.RefreshTokenFile.
type tokenFile struct {
	Issuer       string          `json:"issuer"`
	ClientID     string          `json:"client_id"`
	Subject      string          `json:"sub"`
	Name         string          `json:"name,omitempty"`
	Username     string          `json:"preferred_username,omitempty"`
	Email        string          `json:"email,omitempty"`
	Claims       json.RawMessage `json:"claims,omitempty"`
	Scopes       []string        `json:"scopes,omitempty"`
	SignedInAt   time.Time       `json:"signed_in_at"`
	RefreshToken string          `json:"refresh_token"`
	IDToken      string          `json:"id_token,omitempty"`
	SavedAt      time.Time       `json:"saved_at"`
}

// writeTokenFile writes rec's refresh token to path atomically with mode
// 0600 (a temporary file in the same folder, synced, then renamed).
func writeTokenFile(path string, rec *record) error {
	if rec.RefreshToken == "" {
		return nil
	}
	b, err := json.MarshalIndent(tokenFile{
		Issuer: rec.Issuer, ClientID: rec.ClientID, Subject: rec.Subject, Name: rec.Name,
		Username: rec.Username, Email: rec.Email, Claims: rec.Claims, Scopes: rec.Scopes,
		SignedInAt: rec.SignedInAt, RefreshToken: rec.RefreshToken, IDToken: rec.IDToken, SavedAt: time.Now(),
	}, "", "  ")
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("authcode: writing the refresh token file: %w", err)
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err := f.Chmod(0o600); err != nil {
		return fmt.Errorf("authcode: writing the refresh token file: %w", err)
	}
	if _, err := f.Write(b); err != nil {
		return fmt.Errorf("authcode: writing the refresh token file: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("authcode: writing the refresh token file: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("authcode: writing the refresh token file: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("authcode: writing the refresh token file: %w", err)
	}
	ok = true
	return nil
}

// readTokenFile reads path, refusing a file group or others can access. It
// returns nil and no error when the file does not exist.
func readTokenFile(path string) (*tokenFile, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("authcode: reading the refresh token file: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("authcode: reading the refresh token file: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("authcode: the refresh token file %s is not a regular file", path)
	}
	if runtime.GOOS != "windows" && st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%w: %s has mode %v", ErrTokenFileInsecure, path, st.Mode().Perm())
	}
	var tf tokenFile
	dec := json.NewDecoder(f)
	if err := dec.Decode(&tf); err != nil || tf.RefreshToken == "" {
		return nil, fmt.Errorf("authcode: the refresh token file %s is not valid", path)
	}
	return &tf, nil
}

// reuseTokenFile signs in with the refresh token kept in path, if it is
// there and still accepted. It returns nil, nil when the browser is needed.
func (c *Client) reuseTokenFile(ctx context.Context, doc *discovery.Document, path string) (*LoopbackResult, error) {
	tf, err := readTokenFile(path)
	if err != nil || tf == nil {
		return nil, err
	}
	if tf.Issuer != doc.Issuer || tf.ClientID != c.cfg.ClientID {
		c.log.Info("authcode: the refresh token file is for another identity server or client; signing in again")
		return nil, nil
	}
	tok, err := c.tep.Exchange(ctx, doc, map[string][]string{"grant_type": {"refresh_token"}, "refresh_token": {tf.RefreshToken}})
	if err != nil {
		if errors.Is(err, ErrReauthRequired) || errors.Is(err, ErrMisconfigured) {
			c.log.Info("authcode: the saved refresh token is no longer accepted; signing in again", "error", err.Error())
			return nil, nil
		}
		return nil, err
	}
	base := &record{
		Format: recordFormat, Issuer: tf.Issuer, ClientID: tf.ClientID, Subject: tf.Subject,
		Name: tf.Name, Username: tf.Username, Email: tf.Email, Claims: tf.Claims, Scopes: tf.Scopes,
		SignedInAt: tf.SignedInAt, RefreshToken: tf.RefreshToken, IDToken: tf.IDToken,
	}
	idToken := ""
	if raw, _ := tok.Extra("id_token").(string); raw != "" {
		if idToken, err = c.checkRefreshedIDToken(ctx, doc, raw, base); err != nil {
			return nil, err
		}
	}
	rec := base.withTokens(tok, idToken)
	id, err := c.saveNewSession(ctx, rec, path)
	if err != nil {
		return nil, err
	}
	return c.loopbackResult(ctx, id, rec, true)
}
