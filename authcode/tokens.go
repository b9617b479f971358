package authcode

import (
	"context"
	"net/http"
	"sync/atomic"

	"golang.org/x/oauth2"

	"github.com/erpnetgo/auth"
	"github.com/erpnetgo/auth/authcode/internal/sessions"
	"github.com/erpnetgo/auth/internal/transport"
)

// UserSession returns the session of the user who sent r, or ErrNoSession
// when r carries none (no cookie, a cookie that does not open, a session
// the Store no longer holds). Each call returns a Session of its own.
//
// With a Store of your own (Redis) it costs one round trip, and the
// session is decoded only when another process changed it. With the
// default in-memory store, a session this process already holds costs no
// look-up at all: it is handed out while the store still holds the entry
// it came from. If the Store fails but this process holds the session with
// a still-valid access token, that copy is returned (a shared store being
// down does not sign users out); otherwise the Store's error is returned,
// classified ErrTemporary.
func (c *Client) UserSession(r *http.Request) (*Session, error) {
	if c.life.Closed() {
		return nil, auth.ErrClosed
	}
	buf := cookieBufs.Get().(*[512]byte)
	defer cookieBufs.Put(buf)
	id, ok := c.openSessionCookie(r, buf)
	if !ok {
		return nil, ErrNoSession
	}
	sn, err := c.sessions.Open(r.Context(), id)
	if err != nil {
		return nil, err
	}
	return newSession(sn), nil
}

// stateOf returns the live state of s: the one UserSession found, without
// another look-up.
func (c *Client) stateOf(s *Session) (*sessions.State, error) {
	if s == nil || s.sn == nil {
		return nil, ErrNoSession
	}
	return c.sessions.StateOf(s.sn)
}

// Invalidate drops the cached access token of s, so that the next token
// request through TokenSource or UserClient redeems the refresh token (as
// clientcreds.Source.Invalidate does for service tokens): after a change
// of the user's rights, say. Other processes sharing the Store adopt the
// refreshed tokens. A session without a refresh token ends.
func (c *Client) Invalidate(s *Session) {
	if st, err := c.stateOf(s); err == nil {
		st.Invalidate()
	}
}

// SignOutSession signs the user of s out without an HTTP request of the
// user's (command-line tools, jobs, an admin action): it revokes the
// refresh token at the identity server (when discovery lists a revocation
// endpoint), then deletes the session from the Store and from this
// process, waiting for a refresh of it in flight (with a shared store, in
// any replica) so that the refresh cannot bring it back. The session is
// purged locally even when the revocation fails; the error then says so.
// The identity server's own browser session, if any, is not ended: that
// needs the browser (the SignOut handler).
func (c *Client) SignOutSession(ctx context.Context, s *Session) error {
	if s == nil || s.sn == nil {
		return ErrNoSession
	}
	ctx, cancel := c.life.Bind(ctx)
	defer cancel()
	_, err := c.endSession(ctx, s.ID)
	return err
}

// endSession revokes and deletes one session (see sessions.Engine.End). It
// returns the session's last record (for the ID token hint), if it could
// be read.
func (c *Client) endSession(ctx context.Context, id string) (*sessions.Record, error) {
	return c.sessions.End(ctx, id, func(ctx context.Context, rec *sessions.Record) error {
		if rec.RefreshToken == "" {
			return nil
		}
		doc, err := c.discover(ctx)
		if err != nil {
			return err
		}
		if err := c.tep.Revoke(ctx, doc, rec.RefreshToken, "refresh_token"); err != nil {
			c.log.Warn("authcode: sign-out: refresh token revocation failed", "error", err.Error())
			return err
		}
		return nil
	})
}

// TokenSource returns s's access tokens. They come from one cache per
// session in this process: refreshed ahead of expiry, one refresh however
// many callers race, the rotated refresh token saved to the Store before
// the new access token is handed out. Tokens it returns carry no refresh
// token. Token fails with ErrReauthRequired when the user must sign in
// again. ctx bounds each Token call.
func (c *Client) TokenSource(ctx context.Context, s *Session) oauth2.TokenSource {
	return &tokenSource{c: c, ctx: ctx, s: s}
}

type tokenSource struct {
	c   *Client
	ctx context.Context
	s   *Session
	st  atomic.Pointer[sessions.State] // found on first use
}

// state returns the session's live state.
func (ts *tokenSource) state() (*sessions.State, error) {
	if st := ts.st.Load(); st != nil {
		return st, nil
	}
	st, err := ts.c.stateOf(ts.s)
	if err == nil {
		ts.st.Store(st)
	}
	return st, err
}

// Token implements oauth2.TokenSource.
func (ts *tokenSource) Token() (*oauth2.Token, error) {
	st, err := ts.state()
	if err != nil {
		return nil, err
	}
	e, err := st.Entry(ts.ctx)
	if err != nil {
		return nil, err
	}
	return e.Token, nil
}

// UserClient returns an HTTP client that calls APIs as the user of s, for
// the instance only (the transport every flow of the SDK shares): it adds
// "Authorization: Bearer <access token>" to every request from the
// session's token cache, without rebuilding the header; a request for
// another host is refused before anything is sent, and a redirect to one
// is followed without the token. On a 401 answer it refreshes the token
// and retries once when the request body can be replayed (GetBody set, or
// no body), at most once per session every 30 seconds; it never retries a
// 403; it retries 429 and 503 answers of idempotent requests with backoff
// and Retry-After (Config.Retry), within the request's context. When no
// fresh token can be had after a 401 (the user must sign in again), the
// request fails with that error (matching auth.ErrReauthRequired). The
// base transport is Config.Transport, or that of an *http.Client stored in
// ctx under oauth2.HTTPClient.
func (c *Client) UserClient(ctx context.Context, s *Session) *http.Client {
	base, fromCtx := c.cfg.Transport, false
	if hc, ok := ctx.Value(oauth2.HTTPClient).(*http.Client); ok && hc != nil && hc.Transport != nil {
		base, fromCtx = hc.Transport, true
	}
	st, err := c.stateOf(s)
	if err != nil {
		return &http.Client{Transport: failing{err}}
	}
	if fromCtx {
		return &http.Client{Transport: c.transport(st, base)}
	}
	t := st.Transport.Load()
	if t == nil {
		st.Transport.CompareAndSwap(nil, c.transport(st, c.cfg.Transport))
		t = st.Transport.Load()
	}
	return &http.Client{Transport: t}
}

// transport returns the bearer transport of a session's live state.
func (c *Client) transport(st *sessions.State, base http.RoundTripper) *transport.Transport {
	return &transport.Transport{Get: st.Credential, InvalidateIf: st.InvalidateIf,
		Allow: c.disco.Allow, Base: base, Retry: c.cfg.Retry, Report: c.rep}
}

// failing is the transport of a UserClient without a session: every
// request fails with its error, and nothing is sent.
type failing struct{ err error }

func (f failing) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		_ = req.Body.Close()
	}
	return nil, f.err
}
