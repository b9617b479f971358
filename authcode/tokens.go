package authcode

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/textproto"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/oauth2"

	"github.com/erpnetgo/auth"
	"github.com/erpnetgo/auth/internal/discovery"
	"github.com/erpnetgo/auth/internal/redact"
	"github.com/erpnetgo/auth/internal/tokencache"
	"github.com/erpnetgo/auth/internal/transport"
)

// Eviction of in-memory per-session token caches.
const (
	liveIdle      = time.Hour        // caches unused this long are dropped
	forcedRefresh = 30 * time.Second // at most one 401-triggered refresh per session per this
)

// userTokens is this process's state for one session: the token cache that
// hands out its access token and refreshes it (once, however many requests
// race), and the latest session record known here.
type userTokens struct {
	// Read by every request of a held session, so first, to share a cache
	// line: the Client, the use marks and the token cache (its hot fields
	// come first).
	c        *Client
	lastUsed atomic.Int64 // unix nanoseconds
	ref      atomic.Bool  // used since the CLOCK hand last passed
	cache    tokencache.Cache

	view atomic.Pointer[sessionView] // set through liveSet.setView
	id   string
	key  string
	h    uint64 // hash of id in the live set
	slot int    // index in the shard's CLOCK ring (shard lock)

	lastForced atomic.Int64 // last 401-triggered invalidation

	tr atomic.Pointer[transport.Transport] // UserClient's, built on first use

	mu      sync.Mutex
	rec     *record // latest record saved to the Store
	unsaved *record // refreshed tokens whose Save failed: saved before any new redemption
	dead    error   // set once the refresh token is known dead

	_ [16]byte // 320 bytes: states start on cache lines (TestHotLayout)
}

// sessionView is one stored version of a session as this process holds
// it: where it was loaded from and the Session UserSession hands out (a
// copy per request). While the memory store still holds the same entry,
// a request needs nothing else: no store look-up, no decoding.
//
// Its first cache line holds what a request reads first: the entry and the
// session id (the live set compares it).
type sessionView struct {
	mem  *memEntry // the memory store's entry (nil for other stores)
	idb  [inlineID]byte
	idn  uint8    // 0: the id is longer than inlineID
	sess Session  // its rec, key and u are set
	raw  []byte   // the bytes it was decoded from (other stores)
	_    [32]byte // 320 bytes: views start on cache lines (TestHotLayout)
}

func newView(id, key string, rec *record, u *userTokens, l *loaded) *sessionView {
	v := &sessionView{sess: *rec.session(id, key)}
	v.sess.u = u
	if len(id) <= inlineID {
		v.idn = uint8(copy(v.idb[:], id))
	}
	if l != nil {
		v.mem, v.raw = l.mem, l.raw
	}
	return v
}

func (u *userTokens) current() *record {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.rec
}

// observe takes a record just loaded from the Store: if another process
// refreshed the session, its tokens replace ours.
func (u *userTokens) observe(rec *record) {
	if v := u.view.Load(); v != nil && v.sess.rec == rec {
		return // observed already
	}
	u.mu.Lock()
	newer := rec.Ver > u.rec.Ver
	if newer {
		u.rec = rec
		u.dead = nil
		if u.unsaved != nil && u.unsaved.Ver <= rec.Ver {
			u.unsaved = nil
		}
	}
	u.mu.Unlock()
	if newer {
		if e := u.cache.Peek(); e == nil || e.Token.AccessToken != rec.AccessToken {
			u.cache.Set(rec.token())
		}
	}
}

func (u *userTokens) commit(rec *record) {
	u.mu.Lock()
	if rec.Ver > u.rec.Ver {
		u.rec = rec
	}
	if u.unsaved != nil && u.unsaved.Ver <= rec.Ver {
		u.unsaved = nil
	}
	u.mu.Unlock()
}

func (u *userTokens) kill(err error) {
	u.mu.Lock()
	u.dead = err
	u.mu.Unlock()
	u.cache.Invalidate()
}

// minUsable is the least life an access token must have left to be handed
// out or adopted from another replica. It is deliberately short: a token
// another replica has just refreshed is adopted even when tokens live only
// a minute (the cache then times its next refresh from the remaining life).
const minUsable = 5 * time.Second

// usable reports whether rec's access token can still be handed out.
func (u *userTokens) usable(rec *record) bool {
	return rec.Expiry.IsZero() || rec.Expiry.Sub(u.c.now()) > minUsable
}

func (u *userTokens) save(ctx context.Context, rec *record) error {
	b, err := rec.encode()
	if err == nil {
		err = u.c.store.Save(ctx, u.key, b, u.c.cfg.SessionTTL)
	}
	if err != nil {
		return &auth.Error{Op: "session store save", Kind: auth.ErrTemporary, Err: err}
	}
	return nil
}

// refresh is the token cache's fetch: it redeems the session's refresh
// token, writes the rotated tokens to the Store, and only then returns the
// new access token. With a RefreshLocker store it holds the session's
// refresh lock and first reloads the session, so that when another replica
// has already refreshed, its tokens are used without a token request.
func (u *userTokens) refresh(ctx context.Context) (*oauth2.Token, error) {
	c := u.c
	u.mu.Lock()
	dead, cur := u.dead, u.rec
	u.mu.Unlock()
	if dead != nil {
		return nil, dead
	}
	unlock, err := c.locker.LockRefresh(ctx, u.key)
	if err != nil {
		return nil, &auth.Error{Op: "session refresh lock", Kind: auth.ErrTemporary, Err: err}
	}
	defer unlock()
	u.mu.Lock()
	unsaved := u.unsaved
	u.mu.Unlock()
	if unsaved != nil {
		// An earlier refresh rotated the refresh token but could not save
		// it. Save it now rather than redeem the old (now dead) one, unless
		// the Store shows the session is gone (signed out, or killed by a
		// replica that redeemed the dead token) or was refreshed since:
		// then the unsaved copy must never be resurrected.
		switch latest, err := u.load(ctx); {
		case errors.Is(err, ErrSessionNotFound):
			err = &auth.Error{Op: "token refresh", Kind: auth.ErrReauthRequired, Err: errors.New("the session no longer exists (signed out or expired)")}
			u.kill(err)
			return nil, err
		case err != nil:
			return nil, &auth.Error{Op: "session store load", Kind: auth.ErrTemporary, Err: err}
		case latest.Ver >= unsaved.Ver:
			u.mu.Lock()
			u.unsaved = nil
			u.mu.Unlock()
			cur = latest
		default:
			if err := u.save(ctx, unsaved); err != nil {
				return nil, err
			}
			u.commit(unsaved)
			c.log.Info("authcode: saved refreshed session after an earlier store failure", c.user(unsaved.Subject)...)
			if u.usable(unsaved) {
				return unsaved.token(), nil
			}
			cur = unsaved
		}
	}
	latest, err := u.load(ctx)
	switch {
	case errors.Is(err, ErrSessionNotFound):
		err = &auth.Error{Op: "token refresh", Kind: auth.ErrReauthRequired, Err: errors.New("the session no longer exists (signed out or expired)")}
		u.kill(err)
		return nil, err
	case err != nil:
		return nil, &auth.Error{Op: "session store load", Kind: auth.ErrTemporary, Err: err}
	case latest.Ver > cur.Ver:
		u.commit(latest)
		cur = latest
		if u.usable(latest) {
			// Another process refreshed already.
			return latest.token(), nil
		}
	}
	if cur.RefreshToken == "" {
		err := &auth.Error{Op: "token refresh", Kind: auth.ErrReauthRequired, Err: errors.New("the access token expired and the session has no refresh token (offline_access not granted)")}
		u.kill(err)
		return nil, err
	}
	doc, err := c.discover(ctx)
	if err != nil {
		return nil, err
	}
	tok, err := c.tep.Exchange(ctx, doc, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {cur.RefreshToken}})
	if err != nil {
		if errors.Is(err, auth.ErrReauthRequired) {
			u.kill(err)
			c.log.Info("authcode: refresh token rejected; the user must sign in again", c.user(cur.Subject)...)
			c.rep.Emit(ctx, auth.Event{Name: "reauth.required", User: cur.Subject, Err: err})
			if derr := c.store.Delete(context.WithoutCancel(ctx), u.key); derr != nil {
				c.log.Warn("authcode: cannot delete the dead session", "error", derr.Error())
			}
		}
		return nil, err
	}
	idToken := ""
	if raw, _ := tok.Extra("id_token").(string); raw != "" {
		if idToken, err = c.checkRefreshedIDToken(ctx, doc, raw, cur); err != nil {
			u.kill(err)
			return nil, err
		}
	}
	next := cur.withTokens(tok, idToken)
	if err := u.save(ctx, next); err != nil {
		u.mu.Lock()
		u.unsaved = next
		u.mu.Unlock()
		c.log.Error("authcode: refreshed tokens could not be saved; keeping the previous session", "error", err.Error())
		return nil, err
	}
	u.commit(next)
	return next.token(), nil
}

// checkRefreshedIDToken verifies an ID token from a refresh (OpenID Connect
// Core §12.2): signature, iss, exp, aud, azp and iat as at sign-in
// (checkIDToken); the same sub, aud, azp and auth_time as the sign-in's ID
// token; no nonce to check. It returns the token to keep ("" keeps the
// previous one when this one is rejected: the refreshed access token is
// still used) or an error when it names another user.
func (c *Client) checkRefreshedIDToken(ctx context.Context, doc *discovery.Document, raw string, cur *record) (string, error) {
	v, err := c.idVerifier(doc)
	if err != nil {
		c.log.Warn("authcode: cannot verify the refreshed ID token; keeping the previous one", "error", err.Error())
		return "", nil
	}
	idt, err := v.Verify(ctx, raw)
	if err != nil {
		c.log.Warn("authcode: refreshed ID token rejected; keeping the previous one", "error", redact.Scrub(err.Error(), raw))
		return "", nil
	}
	if idt.Subject != cur.Subject {
		return "", &auth.Error{Op: "token refresh", Kind: auth.ErrReauthRequired,
			Err: fmt.Errorf("%w: the refreshed ID token names another subject", ErrInvalidIDToken)}
	}
	err = c.checkIDToken(idt, false)
	if err == nil {
		err = checkRefreshedClaims(idt, cur.Claims)
	}
	if err != nil {
		c.log.Warn("authcode: refreshed ID token rejected; keeping the previous one", "error", err.Error())
		return "", nil
	}
	return raw, nil
}

func (u *userTokens) load(ctx context.Context) (*record, error) {
	rec, _, err := u.c.loadRecord(ctx, u.key, u)
	if de, ok := err.(*decodeError); ok {
		err = de.err
	}
	return rec, err
}

// loaded is a session version as loaded from a Store, before it is
// checked and made a view.
type loaded struct {
	mem *memEntry // the memory store's entry
	raw []byte    // the bytes of other stores
	rec *record
}

// decodeError is a session the Store holds but that cannot be read.
type decodeError struct{ err error }

func (e *decodeError) Error() string { return e.err.Error() }
func (e *decodeError) Unwrap() error { return e.err }

// loadRecord loads session key from the Store. The session is decoded only
// when its stored version is not the one u (when not nil) holds: the
// memory store keeps records decoded; for other stores the loaded bytes
// are compared with the bytes u's copy was decoded from. When the version
// is not u's, it returns it as a *loaded too, for u to make a view of.
func (c *Client) loadRecord(ctx context.Context, key string, u *userTokens) (*record, *loaded, error) {
	var v *sessionView
	if u != nil {
		v = u.view.Load()
	}
	if ms, ok := c.store.(*memoryStore); ok {
		rec, e, err := ms.loadRecord(ctx, key)
		if err != nil {
			return nil, nil, err
		}
		if v != nil && v.mem == e {
			return rec, nil, nil
		}
		return rec, &loaded{mem: e, rec: rec}, nil
	}
	b, err := c.store.Load(ctx, key)
	if err != nil {
		return nil, nil, err
	}
	if v != nil && v.raw != nil && bytes.Equal(v.raw, b) {
		return v.sess.rec, nil, nil
	}
	rec, err := decodeRecord(b)
	if err != nil {
		return nil, nil, &decodeError{err}
	}
	// The Store may reuse b: keep a copy.
	return rec, &loaded{raw: bytes.Clone(b), rec: rec}, nil
}

// adopt starts tracking a session this process just created.
func (c *Client) adopt(id, key string, rec *record) *userTokens {
	u, _ := c.tokensFor(id, key, rec)
	return u
}

// tokensFor returns this process's state for session id, creating it from
// rec, or updating it when rec is newer.
func (c *Client) tokensFor(id, key string, rec *record) (*userTokens, error) {
	if c.closed.Load() {
		return nil, auth.ErrClosed
	}
	now := c.now().UnixNano()
	if u := c.live.get(id, now); u != nil {
		u.observe(rec)
		return u, nil
	}
	n := &userTokens{c: c, id: id, key: key, rec: rec}
	n.cache.Init(n.refresh, tokencache.Options{
		Window:     c.cfg.RefreshWindow,
		Now:        c.cfg.Now, // nil keeps the clock-free fast path
		Logger:     c.log,
		Report:     c.rep,
		OneSession: true, // a refresh keeps the user's ERP.net session
	})
	n.cache.Set(rec.token())
	u, out := c.live.getOrInsert(n, now, now-int64(liveIdle), c.closed.Load)
	out.closeAll()
	if u != n {
		n.cache.Close()
		if u == nil {
			return nil, auth.ErrClosed
		}
		u.observe(rec)
	}
	return u, nil
}

// liveGet returns this process's state for session id, or nil.
func (c *Client) liveGet(id string) *userTokens {
	return c.live.get(id, c.now().UnixNano())
}

// dropSession deletes a session from the Store and from memory.
func (c *Client) dropSession(ctx context.Context, key, id string) {
	if err := c.store.Delete(ctx, key); err != nil {
		c.log.Warn("authcode: cannot delete the session from the store", "error", err.Error())
	}
	c.forget(id)
}

// forget stops tracking session id in memory.
func (c *Client) forget(id string) {
	if u := c.live.remove(id); u != nil {
		u.cache.Close()
	}
}

// openSessionCookie opens the session cookie of r in buf, without
// allocating: the id it returns is in buf.
func (c *Client) openSessionCookie(r *http.Request, buf *[512]byte) ([]byte, bool) {
	v, ok := c.sessionCookieValue(r.Header)
	if !ok || v == "" || len(v) > len(buf) {
		return nil, false
	}
	var src [512]byte // on the stack
	n, err := base64.RawURLEncoding.Decode(buf[:], src[:copy(src[:], v)])
	if err != nil {
		return nil, false
	}
	id, err := c.sealer.OpenInPlace(buf[:n], c.cookieAAD)
	if err != nil || len(id) == 0 {
		c.log.Debug("authcode: session cookie cannot be opened (tampered, or sealed with a retired key)")
		return nil, false
	}
	return id, true
}

// cookieBufs hold session cookies while they are opened (the AEAD's input
// escapes, so a stack buffer would not stay on the stack).
var cookieBufs = sync.Pool{New: func() any { return new([512]byte) }}

// cookieValue returns the value of the first cookie named name in h's
// Cookie lines that net/http accepts, as http.Request.Cookie does
// (surrounding double quotes removed), without allocating.
func cookieValue(h http.Header, name string) (string, bool) {
	for _, line := range h["Cookie"] {
		for line != "" {
			var part string
			part, line, _ = strings.Cut(line, ";")
			k, v, _ := strings.Cut(textproto.TrimString(part), "=")
			if textproto.TrimString(k) != name {
				continue
			}
			if len(v) > 1 && v[0] == '"' && v[len(v)-1] == '"' {
				v = v[1 : len(v)-1]
			}
			if validCookieValue(v) {
				return v, true
			}
		}
	}
	return "", false
}

// validCookieValue reports whether net/http accepts v as a cookie value.
func validCookieValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if b := v[i]; b < 0x20 || b >= 0x7f || b == '"' || b == ';' || b == '\\' {
			return false
		}
	}
	return true
}

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
	if c.closed.Load() {
		return nil, auth.ErrClosed
	}
	buf := cookieBufs.Get().(*[512]byte)
	defer cookieBufs.Put(buf)
	rawID, ok := c.openSessionCookie(r, buf)
	if !ok {
		return nil, ErrNoSession
	}
	now := c.now().UnixNano()
	if v := c.live.peek(rawID, now); v != nil {
		// A session this process holds, still the memory store's current
		// entry: nothing to load.
		s := new(Session)
		*s = v.sess
		return s, nil
	}
	return c.loadSession(r.Context(), rawID, c.live.getBytes(rawID, now))
}

// loadSession is UserSession past the fast path: it loads session rawID
// from the Store, and makes what it loaded u's view when it is a version u
// does not hold yet (u nil: the process holds nothing of the session).
func (c *Client) loadSession(ctx context.Context, rawID []byte, u *userTokens) (*Session, error) {
	var id, key string
	if u != nil {
		id, key = u.id, u.key
	} else {
		prefix, err := c.keyPrefix(ctx)
		if err != nil {
			return nil, err
		}
		id = string(rawID)
		key = sessionKey(prefix, id)
	}
	rec, l, err := c.loadRecord(ctx, key, u)
	_, undecodable := err.(*decodeError)
	switch {
	case errors.Is(err, ErrSessionNotFound):
		c.forget(id)
		return nil, ErrNoSession
	case undecodable:
		c.log.Error("authcode: unreadable session in the store; treating as signed out", "error", err.Error())
		return nil, ErrNoSession
	case err != nil:
		if u != nil {
			if rec := u.current(); u.usable(rec) {
				c.log.Warn("authcode: session store failed; using this process's copy of the session", "error", err.Error())
				s := rec.session(id, key)
				s.u = u
				return s, nil
			}
		}
		return nil, &auth.Error{Op: "session store load", Kind: auth.ErrTemporary, Err: err}
	}
	if rec.ClientID != c.cfg.ClientID {
		return nil, ErrNoSession
	}
	if u == nil {
		if u, err = c.tokensFor(id, key, rec); err != nil {
			return nil, err
		}
	} else {
		u.observe(rec)
	}
	v := u.view.Load()
	if l != nil || v == nil || v.sess.rec != rec {
		v = newView(id, key, rec, u, l)
		c.live.setView(u, v)
	}
	s := new(Session)
	*s = v.sess
	return s, nil
}

// tokensOf returns the in-memory state for s: the one UserSession found,
// without another look-up.
func (c *Client) tokensOf(s *Session) (*userTokens, error) {
	if s == nil || s.rec == nil {
		return nil, ErrNoSession
	}
	if s.u != nil && s.u.c == c {
		return s.u, nil
	}
	u, err := c.tokensFor(s.ID, s.key, s.rec)
	if err == nil {
		s.u = u
	}
	return u, err
}

// Invalidate drops the cached access token of s, so that the next token
// request through TokenSource or UserClient redeems the refresh token (as
// clientcreds.Source.Invalidate does for service tokens): after a change
// of the user's rights, say. Other processes sharing the Store adopt the
// refreshed tokens. A session without a refresh token ends.
func (c *Client) Invalidate(s *Session) {
	if u, err := c.tokensOf(s); err == nil {
		u.cache.Invalidate()
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
	if s == nil || s.rec == nil {
		return ErrNoSession
	}
	ctx, cancel := c.bind(ctx)
	defer cancel()
	_, err := c.endSession(ctx, s.key, s.ID)
	return err
}

// endSession revokes and deletes one session, holding its refresh lock so
// that no refresh in flight writes it back. It returns the session's last
// record (for the ID token hint), if it could be read.
func (c *Client) endSession(ctx context.Context, key, id string) (*record, error) {
	if u := c.liveGet(id); u != nil {
		u.kill(&auth.Error{Op: "token refresh", Kind: auth.ErrReauthRequired, Err: errors.New("the user signed out")})
	}
	var errs []error
	unlock, err := c.locker.LockRefresh(ctx, key)
	if err != nil {
		errs = append(errs, &auth.Error{Op: "session refresh lock", Kind: auth.ErrTemporary, Err: err})
	} else {
		defer unlock()
	}
	rec := c.loadForSignOut(ctx, key, id)
	if rec != nil && rec.RefreshToken != "" {
		if doc, derr := c.discover(ctx); derr != nil {
			errs = append(errs, derr)
		} else if rerr := c.tep.Revoke(ctx, doc, rec.RefreshToken, "refresh_token"); rerr != nil {
			c.log.Warn("authcode: sign-out: refresh token revocation failed", "error", rerr.Error())
			errs = append(errs, rerr)
		}
	}
	if derr := c.store.Delete(context.WithoutCancel(ctx), key); derr != nil {
		c.log.Error("authcode: sign-out: cannot delete the session from the store", "error", derr.Error())
		errs = append(errs, &auth.Error{Op: "session store delete", Kind: auth.ErrTemporary, Err: derr})
	}
	c.forget(id)
	if rec != nil {
		c.log.Info("authcode: signed out", c.user(rec.Subject)...)
		c.rep.Emit(ctx, auth.Event{Name: "signout.completed", User: rec.Subject})
	}
	return rec, errors.Join(errs...)
}

// sessionEntry returns s's current token entry, refreshing if needed.
func (c *Client) sessionEntry(ctx context.Context, s *Session) (*tokencache.Entry, error) {
	u, err := c.tokensOf(s)
	if err != nil {
		return nil, err
	}
	return u.entry(ctx)
}

// entry gets the cached token; if the cache was evicted and closed under
// us, it looks the session up again.
func (u *userTokens) entry(ctx context.Context) (*tokencache.Entry, error) {
	if u.c.closed.Load() {
		// A closed cache may still hold a token: the Client is closed.
		return nil, auth.ErrClosed
	}
	e, err := u.cache.Get(ctx)
	if err != nil && u.c.closed.Load() {
		// Close ended the refresh this call waited for.
		return nil, auth.ErrClosed
	}
	if err != nil && errors.Is(err, auth.ErrClosed) {
		u.mu.Lock()
		dead := u.dead
		u.mu.Unlock()
		if dead != nil {
			// Signed out (or the refresh token died): never bring the
			// session back from this process's copy.
			return nil, dead
		}
		nu, err2 := u.c.tokensFor(u.id, u.key, u.current())
		if err2 != nil {
			return nil, err2
		}
		return nu.cache.Get(ctx)
	}
	return e, err
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
	u   atomic.Pointer[userTokens]
}

func (ts *tokenSource) tokens() (*userTokens, error) {
	if u := ts.u.Load(); u != nil {
		return u, nil
	}
	u, err := ts.c.tokensOf(ts.s)
	if err != nil {
		return nil, err
	}
	ts.u.Store(u)
	return u, nil
}

// Token implements oauth2.TokenSource.
func (ts *tokenSource) Token() (*oauth2.Token, error) {
	e, err := ts.entry(ts.ctx)
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
// and Retry-After (Config.Retry), within the request's context. The base
// transport is Config.Transport, or that of an *http.Client stored in ctx
// under oauth2.HTTPClient.
func (c *Client) UserClient(ctx context.Context, s *Session) *http.Client {
	base, fromCtx := c.cfg.Transport, false
	if hc, ok := ctx.Value(oauth2.HTTPClient).(*http.Client); ok && hc != nil && hc.Transport != nil {
		base, fromCtx = hc.Transport, true
	}
	if !fromCtx && s != nil && s.u != nil && s.u.c == c {
		return &http.Client{Transport: s.u.transport()}
	}
	src := &tokenSource{c: c, ctx: ctx, s: s}
	return &http.Client{Transport: &transport.Transport{Get: src.entry, InvalidateIf: src.invalidateIf,
		Allow: c.disco.Allow, Base: base, Retry: c.cfg.Retry, Report: c.rep}}
}

// transport returns the bearer transport of u's session with the
// configured base transport, built once: a request pays for no new one.
func (u *userTokens) transport() *transport.Transport {
	if t := u.tr.Load(); t != nil {
		return t
	}
	src := &tokenSource{c: u.c, ctx: context.Background()}
	src.u.Store(u)
	t := &transport.Transport{Get: src.entry, InvalidateIf: src.invalidateIf,
		Allow: u.c.disco.Allow, Base: u.c.cfg.Transport, Retry: u.c.cfg.Retry, Report: u.c.rep}
	if u.tr.CompareAndSwap(nil, t) {
		return t
	}
	return u.tr.Load()
}

// entry is the bearer transport's token getter.
func (ts *tokenSource) entry(ctx context.Context) (*tokencache.Entry, error) {
	u, err := ts.tokens()
	if err != nil {
		return nil, err
	}
	return u.entry(ctx)
}

// invalidateIf drops e after the API answered 401 to it, unless a
// 401-triggered refresh of this session happened moments ago (then the API
// refuses fresh tokens too, and refreshing again would only spin).
func (ts *tokenSource) invalidateIf(e *tokencache.Entry) bool {
	u := ts.u.Load()
	if u == nil || u.cache.Peek() != e {
		return false // already replaced: the next entry call returns the new one
	}
	now := u.c.now().UnixNano()
	if now-u.lastForced.Load() < int64(forcedRefresh) {
		return false
	}
	if u.cache.InvalidateIf(e) {
		u.lastForced.Store(now)
		return true
	}
	return false
}

// user returns the log attributes naming a user: none unless
// Config.LogUsers is set (user names are personal data).
func (c *Client) user(subject string) []any {
	if !c.cfg.LogUsers {
		return nil
	}
	return []any{"subject", subject}
}
