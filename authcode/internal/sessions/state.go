package sessions

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/erpnetgo/auth"
	"github.com/erpnetgo/auth/internal/credential"
	"github.com/erpnetgo/auth/internal/tokencache"
	"github.com/erpnetgo/auth/internal/transport"
)

// forcedRefresh is the least time between two 401-triggered refreshes of
// one session: when the API refuses fresh tokens too, refreshing again
// would only spin.
const forcedRefresh = 30 * time.Second

// State is this process's live state of one sign-in: the token cache that
// hands out its access token and refreshes it (once, however many requests
// race), and the latest record known here.
type State struct {
	// Read by every request of a held session, so first, on one cache
	// line: the engine (a Session's owner check), the use marks and the
	// token cache (its current entry comes first).
	e        *Engine
	lastUsed atomic.Int64 // unix nanoseconds
	ref      atomic.Bool  // used since the CLOCK hand last passed
	cache    tokencache.Cache

	snap atomic.Pointer[Snapshot] // set through liveSet.setSnapshot
	id   string
	key  string
	h    uint64 // hash of id in the live set
	slot int    // index in the shard's CLOCK ring (shard lock)

	lastForced atomic.Int64 // last 401-triggered invalidation
	// next is the state that replaced this one after it was dropped from
	// the live set.
	next atomic.Pointer[State]
	// Transport is the Client's transport for this session, built on
	// first use; the engine only keeps it.
	Transport atomic.Pointer[transport.Transport]

	mu      sync.Mutex
	rec     *Record // latest record saved to or loaded from the Store
	unsaved *Record // refreshed tokens whose save failed: saved before any new redemption
	dead    error   // set once the session is known to be over

	_ [48]byte // 320 bytes: states start on cache lines (TestHotLayout)
}

func (e *Engine) newState(id, key string, rec *Record) *State {
	st := &State{e: e, id: id, key: key, rec: rec}
	st.cache.Init(st.fetch, e.cacheOpts)
	st.cache.Set(rec.Token())
	return st
}

// current returns the latest record known here.
func (st *State) current() *Record {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.rec
}

// deadErr returns why the session is over, or nil.
func (st *State) deadErr() error {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.dead
}

// observe takes a record just loaded from the Store: if another process
// refreshed the session, its tokens replace ours.
func (st *State) observe(rec *Record) {
	if sn := st.snap.Load(); sn != nil && sn.Rec == rec {
		return // observed already
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if rec.Ver <= st.rec.Ver {
		return
	}
	st.rec = rec
	st.dead = nil
	if st.unsaved != nil && st.unsaved.Ver <= rec.Ver {
		st.unsaved = nil
	}
	// Under st.mu, so that a refresh deciding whether to redeem sees the
	// record and its token together.
	if en := st.cache.Peek(); en == nil || en.Token.AccessToken != rec.AccessToken {
		st.cache.Set(rec.Token())
	}
}

// commit records that rec is what the Store holds.
func (st *State) commit(rec *Record) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if rec.Ver > st.rec.Ver {
		st.rec = rec
	}
	if st.unsaved != nil && st.unsaved.Ver <= rec.Ver {
		st.unsaved = nil
	}
}

// kill marks the session over: no token is handed out or refreshed again
// in this process.
func (st *State) kill(err error) {
	st.mu.Lock()
	st.dead = err
	st.mu.Unlock()
	st.cache.Invalidate()
}

// detach prepares st to leave the live set: it refuses (false) while a
// refresh is in flight or refreshed tokens are unsaved, so that nothing is
// abandoned; otherwise its timer stops and a caller still holding st is
// sent to the state that replaces it.
func (st *State) detach() bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.unsaved == nil && st.cache.Detach()
}

// usable reports whether rec's access token can still be handed out.
func (st *State) usable(rec *Record) bool {
	return rec.Expiry.IsZero() || rec.Expiry.Sub(st.e.clock.Now()) > minUsable
}

// minUsable is the least life an access token must have left to be handed
// out or adopted from another replica. It is deliberately short: a token
// another replica has just refreshed is adopted even when tokens live only
// a minute (the cache then times its next refresh from the remaining life).
const minUsable = 5 * time.Second

// Entry returns the session's current token entry, refreshing if needed.
// It fails with an error matching auth.ErrReauthRequired once the session
// is over, and auth.ErrClosed once the Client is closed.
func (st *State) Entry(ctx context.Context) (*tokencache.Entry, error) {
	for {
		en, err := st.cache.Get(ctx)
		switch {
		case err == nil:
			return en, nil
		case st.e.life.Closed():
			return nil, auth.ErrClosed
		case !errors.Is(err, tokencache.ErrDetached):
			return nil, err
		}
		// Dropped from the live set: go on with the state that replaced it.
		if st, err = st.successor(ctx); err != nil {
			return nil, err
		}
	}
}

// Credential is Entry for the credential transport.
func (st *State) Credential(ctx context.Context) (*credential.Credential, error) {
	en, err := st.Entry(ctx)
	if err != nil {
		return nil, err
	}
	return &en.Credential, nil
}

// Invalidate drops the cached access token, so that the next Entry
// redeems the refresh token.
func (st *State) Invalidate() { st.resolve().cache.Invalidate() }

// InvalidateIf drops cr after the API answered 401 to it, unless a
// 401-triggered refresh of this session happened moments ago (then the API
// refuses fresh tokens too, and refreshing again would only spin).
func (st *State) InvalidateIf(cr *credential.Credential) bool {
	st = st.resolve()
	if en := st.cache.Peek(); en == nil || &en.Credential != cr {
		return false // already replaced: the next Entry returns the new one
	}
	now := st.e.clock.Now().UnixNano()
	if now-st.lastForced.Load() < int64(forcedRefresh) {
		return false
	}
	if st.cache.InvalidateIf(cr) {
		st.lastForced.Store(now)
		return true
	}
	return false
}

// resolve follows st to the state that replaced it, if any: the one it
// names, or for a state evicted (detached) before anything named one, the
// session's state in the live set now.
func (st *State) resolve() *State {
	for {
		n := st.next.Load()
		if n == nil && st.cache.Detached() {
			if l := st.e.live.get(st.id, st.e.clock.Now().UnixNano()); l != nil && l != st {
				st.next.CompareAndSwap(nil, l)
				n = st.next.Load()
			}
		}
		if n == nil {
			return st
		}
		st = n
	}
}

// successor returns the state that replaced st in the live set, making one
// from the Store when none is held: a session signed out meanwhile is
// never brought back from st's copy.
func (st *State) successor(ctx context.Context) (*State, error) {
	if n := st.next.Load(); n != nil {
		return n, nil
	}
	if err := st.deadErr(); err != nil {
		return nil, err
	}
	sn, err := st.e.load(ctx, st.id, st.key, nil)
	switch {
	case errors.Is(err, ErrNoSession):
		err = reauth("the session no longer exists (signed out or expired)")
		st.kill(err)
		return nil, err
	case err != nil:
		return nil, err
	}
	st.next.CompareAndSwap(nil, sn.State)
	return st.next.Load(), nil
}

func reauth(why string) error {
	return &auth.Error{Op: "token refresh", Kind: auth.ErrReauthRequired, Err: errors.New(why)}
}
