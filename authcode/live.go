package authcode

import (
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"

	"github.com/erpnetgo/auth/internal/tokencache"
)

// liveSet holds this process's per-session state (userTokens), bounded by
// Config.MaxLiveSessions. It is split into shards, each with its own lock,
// hash table and CLOCK ring, so that requests of different users do not
// contend and eviction costs O(1) per insert (amortised): the hand skips,
// once, the entries used since it last passed and evicts the first one
// that was not. Each insert also looks at the next two entries and drops
// them if they have been idle for liveIdle.
//
// The tables are open-addressed (linear probing, at most half full). A
// slot holds the session's hash, its state, its current view and a hint
// to its token entry, and the view holds the id inline. Requests of held
// sessions read the tables without any lock (peek): taking and releasing
// a lock are full memory barriers, which would make each of the look-up's
// reads wait for the one before. With many sessions each of those reads is
// a cache miss, so what keeps a request's cost flat as sessions grow is
// reading one slot and then everything else side by side. Writers hold the
// shard's lock and publish with atomic stores; a reader that races with
// one may miss a session (it then takes the locked path), never find the
// wrong one: what it hands out comes from the view, whose id it compares.
type liveSet struct {
	seed   maphash.Seed
	shift  uint // a hash's top bits pick the shard
	shards []liveShard
	limit  int64
	n      atomic.Int64 // sessions held, in all shards
}

type liveShard struct {
	mu   sync.Mutex
	tab  atomic.Pointer[liveTable] // replaced (not changed) when it grows
	n    int                       // sessions held
	ring []*userTokens             // nil slots are listed in free
	free []int
	hand int
	_    [64]byte // keep shards on their own cache lines
}

// liveTable is an open-addressed table; len(slots) is a power of two.
type liveTable struct {
	slots []liveSlot
	mask  uint64
}

// liveSlot is one table entry. Its fields are written under the shard's
// lock and read without it.
type liveSlot struct {
	h atomic.Uint64
	u atomic.Pointer[userTokens] // nil: empty
	v atomic.Pointer[sessionView]
	// mem is v.mem, so that it loads side by side with v.
	mem atomic.Pointer[memEntry]
	// e was u's token entry when v was made: a hint, to start loading it
	// early (the token cache holds the current one).
	e atomic.Pointer[tokencache.Entry]
}

// set fills s (u stored last: a reader seeing u sees the rest).
func (s *liveSlot) set(h uint64, u *userTokens) {
	s.h.Store(h)
	s.setView(u, u.view.Load())
	s.u.Store(u)
}

// setView stores u's view v and its token entry hint.
func (s *liveSlot) setView(u *userTokens, v *sessionView) {
	s.v.Store(v)
	var mem *memEntry
	if v != nil {
		mem = v.mem
	}
	s.mem.Store(mem)
	s.e.Store(u.cache.Peek())
}

func (s *liveSlot) clear() {
	s.u.Store(nil)
	s.v.Store(nil)
	s.mem.Store(nil)
	s.e.Store(nil)
	s.h.Store(0)
}

// maxLiveShards bounds the shards; each holds at least minPerShard
// sessions so that small limits stay exact.
const (
	maxLiveShards = 64
	minPerShard   = 16
)

func newLiveSet(limit int) *liveSet {
	n, bits := 1, uint(0)
	for n < maxLiveShards && limit/(n*2) >= minPerShard {
		n *= 2
		bits++
	}
	return &liveSet{seed: maphash.MakeSeed(), shift: 64 - bits, shards: make([]liveShard, n), limit: int64(limit)}
}

func (ls *liveSet) shard(h uint64) *liveShard {
	if ls.shift == 64 {
		return &ls.shards[0]
	}
	return &ls.shards[h>>ls.shift]
}

// inlineID is the longest session id a view holds inline (the SDK's ids
// are 52 characters); longer ones are compared through the state's id.
const inlineID = 52

// viewHasID reports whether v is a view of session id.
func viewHasID[ID string | []byte](v *sessionView, id ID) bool {
	return v.idn != 0 && int(v.idn) == len(id) && string(v.idb[:v.idn]) == string(id)
}

// find returns the index of the slot holding id (hash h), or of the empty
// slot where the probe ended (found false). Called with sh.mu held.
func find[ID string | []byte](t *liveTable, h uint64, id ID) (i uint64, found bool) {
	for i = h & t.mask; ; i = (i + 1) & t.mask {
		s := &t.slots[i]
		u := s.u.Load()
		if u == nil {
			return i, false
		}
		if s.h.Load() == h {
			if v := s.v.Load(); (v != nil && viewHasID(v, id)) || u.id == string(id) {
				return i, true
			}
		}
	}
}

// lookup returns the state of session id (hash h), or nil. Called with
// sh.mu held.
func lookup[ID string | []byte](sh *liveShard, h uint64, id ID) *userTokens {
	t := sh.tab.Load()
	if sh.n == 0 || t == nil {
		return nil
	}
	if i, ok := find(t, h, id); ok {
		return t.slots[i].u.Load()
	}
	return nil
}

// insert adds u (not held yet) under hash h, growing the table to keep it
// at most half full. Called with sh.mu held.
func (sh *liveShard) insert(h uint64, u *userTokens) {
	t := sh.tab.Load()
	if t == nil || 2*(sh.n+1) > len(t.slots) {
		size := 16
		if t != nil {
			size = 2 * len(t.slots)
		}
		nt := &liveTable{slots: make([]liveSlot, size), mask: uint64(size - 1)}
		if t != nil {
			for i := range t.slots {
				s := &t.slots[i]
				if v := s.u.Load(); v != nil {
					j := s.h.Load() & nt.mask
					for nt.slots[j].u.Load() != nil {
						j = (j + 1) & nt.mask
					}
					nt.slots[j].set(s.h.Load(), v)
				}
			}
		}
		sh.tab.Store(nt)
		t = nt
	}
	i, _ := find(t, h, u.id)
	t.slots[i].set(h, u)
	sh.n++
}

// delete removes the slot of u (hash h), shifting back the entries that
// follow it in their probe run (no tombstones). Called with sh.mu held.
func (sh *liveShard) delete(h uint64, u *userTokens) {
	t := sh.tab.Load()
	if sh.n == 0 || t == nil {
		return
	}
	i := h & t.mask
	for t.slots[i].u.Load() != u {
		if t.slots[i].u.Load() == nil {
			return // not held
		}
		i = (i + 1) & t.mask
	}
	sh.n--
	for j := i; ; {
		j = (j + 1) & t.mask
		s := &t.slots[j]
		su := s.u.Load()
		if su == nil {
			break
		}
		// s may move to the hole at i unless its home slot lies
		// cyclically within (i, j].
		sj := s.h.Load()
		if home := sj & t.mask; (j-home)&t.mask < (j-i)&t.mask {
			continue
		}
		t.slots[i].clear()
		t.slots[i].set(sj, su)
		i = j
	}
	t.slots[i].clear()
}

// get returns the state of session id, marking it used at now (unix
// nanoseconds), or nil.
func (ls *liveSet) get(id string, now int64) *userTokens {
	return lockedGet(ls, maphash.String(ls.seed, id), id, now)
}

// getBytes is get for an id held in a byte slice (no conversion).
func (ls *liveSet) getBytes(id []byte, now int64) *userTokens {
	return lockedGet(ls, maphash.Bytes(ls.seed, id), id, now)
}

func lockedGet[ID string | []byte](ls *liveSet, h uint64, id ID, now int64) *userTokens {
	sh := ls.shard(h)
	sh.mu.Lock()
	u := lookup(sh, h, id)
	sh.mu.Unlock()
	if u != nil {
		u.touch(now)
	}
	return u
}

// peek is the request path's look-up, without a lock: it returns the view
// of session id to hand out, marking the session used at now, when the
// session is held and its view is still the memory store's current entry;
// otherwise nil (not held, another store, the entry changed, or a writer
// was moving the slot: the locked path then tells).
//
// Its loads are ordered so that those that do not depend on one another
// are issued together: the slot, then the view, the store entry and the
// token entry side by side.
func (ls *liveSet) peek(id []byte, now int64) *sessionView {
	h := maphash.Bytes(ls.seed, id)
	t := ls.shard(h).tab.Load()
	if t == nil {
		return nil
	}
	for i, n := h&t.mask, 0; n < len(t.slots); i, n = (i+1)&t.mask, n+1 {
		s := &t.slots[i]
		u := s.u.Load()
		if u == nil {
			return nil
		}
		if s.h.Load() != h {
			continue
		}
		v, mem, e := s.v.Load(), s.mem.Load(), s.e.Load()
		if v == nil || mem == nil {
			return nil
		}
		if e != nil {
			e.Touch() // TokenSource and UserClient read it next
		}
		if !mem.live(now) || v.mem != mem || !viewHasID(v, id) {
			return nil
		}
		u.touch(now)
		return v
	}
	return nil
}

// touch marks u used at now, writing only what changed: a request of a
// held session then writes nothing, and since an atomic write is a full
// barrier on most processors, the loads around it are not held back
// either.
func (u *userTokens) touch(now int64) {
	if !u.ref.Load() {
		u.ref.Store(true)
	}
	if now-u.lastUsed.Load() > int64(time.Second) {
		u.lastUsed.Store(now)
	}
}

// setView makes v the current view of u, in u and in u's slot.
func (ls *liveSet) setView(u *userTokens, v *sessionView) {
	sh := ls.shard(u.h)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	u.view.Store(v)
	t := sh.tab.Load()
	if sh.n == 0 || t == nil {
		return
	}
	for i := u.h & t.mask; ; i = (i + 1) & t.mask {
		switch t.slots[i].u.Load() {
		case nil:
			return // not held (evicted)
		case u:
			t.slots[i].setView(u, v)
			return
		}
	}
}

// evicted holds what one insert pushed out; the caller closes their
// caches outside any lock.
type evicted [3]*userTokens

func (e *evicted) closeAll() {
	for _, u := range e {
		if u != nil {
			u.cache.Close()
		}
	}
}

// getOrInsert returns the state of u.id, inserting u if there is none (or
// nil if closed() reports true). cutoff is the lastUsed below which an
// entry counts as idle.
func (ls *liveSet) getOrInsert(u *userTokens, now, cutoff int64, closed func() bool) (*userTokens, evicted) {
	var out evicted
	h := maphash.String(ls.seed, u.id)
	sh := ls.shard(h)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if cur := lookup(sh, h, u.id); cur != nil {
		cur.touch(now)
		return cur, out
	}
	if closed() {
		return nil, out
	}
	// The limit is the set's, not a shard's: shards fill unevenly. A
	// full set evicts from the shard the new session hashes to (if that
	// shard is empty, it goes over the limit by one).
	var slot int
	switch {
	case ls.n.Load() < ls.limit && len(sh.free) > 0:
		slot = sh.free[len(sh.free)-1]
		sh.free = sh.free[:len(sh.free)-1]
		ls.n.Add(1)
	case ls.n.Load() < ls.limit || sh.n == 0:
		sh.ring = append(sh.ring, nil)
		slot = len(sh.ring) - 1
		ls.n.Add(1)
	default:
		for {
			v := sh.ring[sh.hand]
			if v == nil {
				sh.hand = (sh.hand + 1) % len(sh.ring)
				continue
			}
			if v.ref.Load() {
				v.ref.Store(false)
				sh.hand = (sh.hand + 1) % len(sh.ring)
				continue
			}
			sh.delete(v.h, v)
			out[0] = v
			slot = sh.hand
			sh.hand = (sh.hand + 1) % len(sh.ring)
			break
		}
	}
	u.slot, u.h = slot, h
	u.lastUsed.Store(now)
	u.ref.Store(true) // in use: the hand passes it once
	sh.ring[slot] = u
	sh.insert(h, u)
	// Look at the next two entries for idle ones.
	for k := 1; k < len(out); k++ {
		h := sh.hand
		sh.hand = (sh.hand + 1) % len(sh.ring)
		if v := sh.ring[h]; v != nil && v != u && v.lastUsed.Load() < cutoff {
			ls.removeLocked(sh, v)
			out[k] = v
		}
	}
	return u, out
}

func (ls *liveSet) removeLocked(sh *liveShard, u *userTokens) {
	ls.n.Add(-1)
	sh.delete(u.h, u)
	sh.ring[u.slot] = nil
	sh.free = append(sh.free, u.slot)
}

// remove drops session id and returns its state, or nil.
func (ls *liveSet) remove(id string) *userTokens {
	h := maphash.String(ls.seed, id)
	sh := ls.shard(h)
	sh.mu.Lock()
	u := lookup(sh, h, id)
	if u != nil {
		ls.removeLocked(sh, u)
	}
	sh.mu.Unlock()
	return u
}

// drain empties the set and returns what it held.
func (ls *liveSet) drain() []*userTokens {
	var out []*userTokens
	for i := range ls.shards {
		sh := &ls.shards[i]
		sh.mu.Lock()
		if t := sh.tab.Load(); t != nil {
			for i := range t.slots {
				if u := t.slots[i].u.Load(); u != nil {
					out = append(out, u)
				}
			}
		}
		ls.n.Add(-int64(sh.n))
		sh.tab.Store(nil)
		sh.n = 0
		sh.ring, sh.free, sh.hand = nil, nil, 0
		sh.mu.Unlock()
	}
	return out
}

// len is the number of sessions held.
func (ls *liveSet) len() int {
	n := 0
	for i := range ls.shards {
		sh := &ls.shards[i]
		sh.mu.Lock()
		n += sh.n
		sh.mu.Unlock()
	}
	return n
}
