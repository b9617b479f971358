package sessions

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/erpnetgo/auth"
	"github.com/erpnetgo/auth/internal/clock"
	"github.com/erpnetgo/auth/internal/hook"
	"github.com/erpnetgo/auth/internal/keylock"
	"github.com/erpnetgo/auth/internal/lifetime"
	"github.com/erpnetgo/auth/internal/tokencache"
)

// liveIdle is how long a live state may go unused before it is dropped.
const liveIdle = time.Hour

// Config is what the engine needs from its Client.
type Config struct {
	// Store keeps the records; nil means the engine's memory store.
	Store Store
	// ClientID is the client whose sessions these are: a record of
	// another client is not handed out.
	ClientID string
	// TTL is a record's lifetime in the Store, renewed by every save.
	TTL time.Duration
	// MaxLive bounds the live states held in memory.
	MaxLive int
	// Window is the token cache's refresh window (zero: its default).
	Window time.Duration
	// Prefix returns the Store key prefix (it may need discovery).
	Prefix func(ctx context.Context) (string, error)
	// Redeem redeems rec's refresh token and returns the next record, not
	// saved. An error matching auth.ErrReauthRequired ends the session.
	Redeem func(ctx context.Context, rec *Record) (*Record, error)
	// Clock is the Client's clock.
	Clock clock.Clock
	// Life is the Client's lifetime: refreshes run in it.
	Life *lifetime.Group
	// Owner is the Client, for Snapshot.Owner.
	Owner any
	// Logger, Report and LogUsers are the Client's.
	Logger   *slog.Logger
	Report   *hook.Reporter
	LogUsers bool
}

// Engine holds the sessions of one Client.
type Engine struct {
	cfg       Config
	store     Store  // where records are kept
	src       source // the one way they are loaded and saved
	locker    Locker
	markers   bool // a Store without a refresh lock: sign-outs leave a marker
	live      *liveSet
	clock     clock.Clock
	life      *lifetime.Group
	log       *slog.Logger
	cacheOpts tokencache.Options
}

// New returns an engine for cfg. It does no I/O.
func New(cfg Config) *Engine {
	e := &Engine{cfg: cfg, clock: cfg.Clock, life: cfg.Life, log: cfg.Logger, live: newLiveSet(cfg.MaxLive)}
	m, _ := cfg.Store.(*memStore) // one made by NewMemoryStore, shared by Clients in turn
	if cfg.Store == nil {
		m = newMemStore(cfg.Clock)
	}
	if m != nil {
		e.store, e.src, e.locker = m, m, m
	} else {
		e.store, e.src = cfg.Store, storeSource{cfg.Store}
		if l, ok := cfg.Store.(Locker); ok {
			e.locker = l
		} else {
			e.locker, e.markers = new(processLocker), true
		}
	}
	e.cacheOpts = tokencache.Options{Life: cfg.Life, Window: cfg.Window, Clock: cfg.Clock,
		Logger: cfg.Logger, Report: cfg.Report, OneSession: true} // a refresh keeps the user's API session
	return e
}

// processLocker orders the refreshes and sign-outs of this process for a
// Store without a refresh lock.
type processLocker struct{ m keylock.Map }

func (l *processLocker) LockRefresh(ctx context.Context, key string) (func(), error) {
	return l.m.Lock(ctx, key)
}

// Store returns the Store in use: Config.Store, or the memory store.
func (e *Engine) Store() Store { return e.store }

// Key returns the Store key of session id.
func (e *Engine) Key(ctx context.Context, id string) (string, error) {
	p, err := e.cfg.Prefix(ctx)
	if err != nil {
		return "", err
	}
	return p + "session/" + id, nil
}

// endedKey returns where a sign-out of session id leaves its marker for a
// Store without a refresh lock.
func (e *Engine) endedKey(ctx context.Context, id string) (string, error) {
	p, err := e.cfg.Prefix(ctx)
	if err != nil {
		return "", err
	}
	return p + "ended/" + id, nil
}

// Open returns the snapshot of session id for a request: ErrNoSession when
// the Store no longer holds it, an error matching auth.ErrTemporary when
// the Store fails (unless this process holds a usable copy).
func (e *Engine) Open(ctx context.Context, id []byte) (*Snapshot, error) {
	now := e.clock.Now().UnixNano()
	if sn := e.live.peek(id, now); sn != nil {
		return sn, nil // held, and still the memory store's current entry
	}
	st := e.live.getBytes(id, now)
	if st != nil {
		return e.load(ctx, st.id, st.key, st)
	}
	key, err := e.Key(ctx, string(id))
	if err != nil {
		return nil, err
	}
	// The id the state keeps is the end of its key: one string, not two.
	return e.load(ctx, key[len(key)-len(id):], key, nil)
}

// load is the one load path: it loads session id from the Store, and
// makes what it loaded st's snapshot when it is a version st does not show
// yet (st nil: the process holds nothing of the session).
func (e *Engine) load(ctx context.Context, id, key string, st *State) (*Snapshot, error) {
	if e.life.Closed() {
		return nil, auth.ErrClosed
	}
	var have *Snapshot
	if st != nil {
		have = st.snap.Load()
	}
	rec, org, err := e.src.load(ctx, key, have)
	switch {
	case errors.Is(err, ErrNotFound):
		e.forget(id)
		return nil, ErrNoSession
	case errors.Is(err, errUndecodable):
		e.log.Error("authcode: unreadable session in the store; treating as signed out", "error", err.Error())
		return nil, ErrNoSession
	case err != nil:
		if st != nil {
			if rec := st.current(); st.usable(rec) {
				e.log.Warn("authcode: session store failed; using this process's copy of the session", "error", err.Error())
				return newSnapshot(st, rec, origin{}), nil
			}
		}
		return nil, &auth.Error{Op: "session store load", Kind: auth.ErrTemporary, Err: err}
	}
	if rec.ClientID != e.cfg.ClientID {
		return nil, ErrNoSession
	}
	if st == nil {
		if st, err = e.state(id, key, rec); err != nil {
			return nil, err
		}
	} else {
		st.observe(rec)
	}
	sn := st.snap.Load()
	if sn == nil || sn.Rec != rec || !sn.origin().same(org) {
		sn = newSnapshot(st, rec, org)
		e.live.setSnapshot(st, sn)
	}
	return sn, nil
}

// Load returns the snapshot of session id, as Open does for a request.
func (e *Engine) Load(ctx context.Context, id string) (*Snapshot, error) {
	return e.Open(ctx, []byte(id))
}

// state returns the live state of session id, making it from rec when
// none is held, or bringing it up to rec when rec is newer.
func (e *Engine) state(id, key string, rec *Record) (*State, error) {
	if e.life.Closed() {
		return nil, auth.ErrClosed
	}
	now := e.clock.Now().UnixNano()
	if st := e.live.get(id, now); st != nil {
		st.observe(rec)
		return st, nil
	}
	n := e.newState(id, key, rec)
	st := e.live.getOrInsert(n, now, now-int64(liveIdle), e.life.Closed)
	if st != n {
		n.cache.Detach() // never used: stop its timer
		if st == nil {
			return nil, auth.ErrClosed
		}
		st.observe(rec)
	}
	return st, nil
}

// Put saves rec under session id in the Store, replacing any session of
// that id, without making it live here.
func (e *Engine) Put(ctx context.Context, id string, rec *Record) (key string, err error) {
	if key, err = e.Key(ctx, id); err != nil {
		return "", err
	}
	e.forget(id)
	if err := e.src.save(ctx, key, rec, e.cfg.TTL); err != nil {
		return "", &auth.Error{Op: "session store save", Kind: auth.ErrTemporary, Err: err}
	}
	return key, nil
}

// Create saves the record of a new sign-in under session id and returns
// its snapshot.
func (e *Engine) Create(ctx context.Context, id string, rec *Record) (*Snapshot, error) {
	key, err := e.Put(ctx, id, rec)
	if err != nil {
		return nil, err
	}
	st, err := e.state(id, key, rec)
	if err != nil {
		return nil, err
	}
	sn := newSnapshot(st, rec, origin{})
	e.live.setSnapshot(st, sn)
	return sn, nil
}

// StateOf returns the live state of a snapshot (sn's own, when it is this
// engine's).
func (e *Engine) StateOf(sn *Snapshot) (*State, error) {
	if sn.State != nil && sn.State.e == e {
		return sn.State, nil
	}
	return e.state(sn.ID, sn.Key, sn.Rec)
}

// End signs session id out: the live state is killed, and holding the
// session's refresh lock (so that no refresh in flight, in any replica,
// writes it back) revoke is called with the latest record, then the
// session is deleted from the Store. It returns the last record (for the
// ID token hint) when it could be read, and every error met.
func (e *Engine) End(ctx context.Context, id string, revoke func(context.Context, *Record) error) (*Record, error) {
	key, err := e.Key(ctx, id)
	if err != nil {
		return nil, err
	}
	st := e.live.get(id, e.clock.Now().UnixNano())
	if st != nil {
		st.kill(reauth("the user signed out"))
	}
	var errs []error
	unlock, err := e.locker.LockRefresh(ctx, key)
	if err != nil {
		errs = append(errs, &auth.Error{Op: "session refresh lock", Kind: auth.ErrTemporary, Err: err})
	} else {
		defer unlock()
	}
	rec, _, lerr := e.src.load(ctx, key, nil)
	if lerr != nil {
		rec = nil
		if st != nil {
			rec = st.current() // the Store failed: revoke what this process knows
		}
	}
	if rec != nil && revoke != nil {
		if err := revoke(ctx, rec); err != nil {
			errs = append(errs, err)
		}
	}
	if e.markers {
		ek, err := e.endedKey(ctx, id)
		if err == nil {
			err = e.store.Save(context.WithoutCancel(ctx), ek, []byte{1}, e.cfg.TTL)
		}
		if err != nil {
			errs = append(errs, &auth.Error{Op: "session store save", Kind: auth.ErrTemporary, Err: err})
		}
	}
	if err := e.store.Delete(context.WithoutCancel(ctx), key); err != nil {
		e.log.Error("authcode: sign-out: cannot delete the session from the store", "error", err.Error())
		errs = append(errs, &auth.Error{Op: "session store delete", Kind: auth.ErrTemporary, Err: err})
	}
	e.forget(id)
	if rec != nil {
		e.log.Info("authcode: signed out", e.user(rec.Subject)...)
		e.cfg.Report.Emit(ctx, auth.Event{Name: "signout.completed", User: rec.Subject})
	}
	return rec, errors.Join(errs...)
}

// Drop deletes session id from the Store and from this process, without
// revoking anything (a browser's session that a new sign-in replaces).
func (e *Engine) Drop(ctx context.Context, id string) error {
	key, err := e.Key(ctx, id)
	if err != nil {
		return err
	}
	e.forget(id)
	return e.store.Delete(ctx, key)
}

func (e *Engine) forget(id string) {
	if st := e.live.remove(id); st != nil {
		st.cache.Detach()
	}
}

// Close drops every live state. Call it after the Client's lifetime is
// closed: nothing is in flight then.
func (e *Engine) Close() {
	for _, st := range e.live.drain() {
		st.cache.Detach()
	}
}

// user returns the log attributes naming a user: none unless LogUsers is
// set (user names are personal data).
func (e *Engine) user(subject string) []any {
	if !e.cfg.LogUsers {
		return nil
	}
	return []any{"subject", subject}
}
