package sessions

import (
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"
)

// liveSet holds this process's live states, at most limit of them. It is
// split into shards, each with its own lock, hash table and CLOCK ring, so
// that requests of different users do not contend and eviction costs O(1)
// per insert (amortised): the hand skips, once, the states used since it
// last passed and drops the first one that was not (and that has nothing
// in flight). Each insert also looks at the next two states and drops
// them if they have been idle since the cutoff.
//
// The tables are open-addressed (linear probing, at most half full). A
// slot holds the session's hash, its state, its current snapshot (with the
// memory store's entry beside it) and a hint to its token entry; the
// snapshot holds the id inline. Requests of held sessions read the tables
// without any lock (peek): taking and releasing a lock are full memory
// barriers, which would make each of the look-up's reads wait for the one
// before. With many sessions each of those reads is a cache miss, so what
// keeps a request's cost flat as sessions grow is reading one slot and then
// everything else side by side. Writers hold the shard's lock and publish
// with atomic stores; a reader that races with one may miss a session (it
// then takes the locked path), never find the wrong one: what it hands out
// is a snapshot whose id it compares.
type liveSet struct {
	seed   maphash.Seed
	shift  uint // a hash's top bits pick the shard
	shards []liveShard
	limit  int64
	n      atomic.Int64 // states held, in all shards
}

type liveShard struct {
	mu   sync.Mutex
	tab  atomic.Pointer[liveTable] // replaced (not changed) when it grows
	n    int                       // states held
	ring []*State                  // nil slots are listed in free
	free []int
	hand int
	_    [64]byte // keep shards on their own cache lines
}

// maxLiveShards bounds the shards; each holds at least minPerShard states
// so that small limits stay exact.
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

// get returns the state of session id, marking it used at now (unix
// nanoseconds), or nil.
func (ls *liveSet) get(id string, now int64) *State {
	return lockedGet(ls, maphash.String(ls.seed, id), id, now)
}

// getBytes is get for an id held in a byte slice (no conversion).
func (ls *liveSet) getBytes(id []byte, now int64) *State {
	return lockedGet(ls, maphash.Bytes(ls.seed, id), id, now)
}

func lockedGet[ID string | []byte](ls *liveSet, h uint64, id ID, now int64) *State {
	sh := ls.shard(h)
	sh.mu.Lock()
	st := lookup(sh, h, id)
	sh.mu.Unlock()
	if st != nil {
		st.touch(now)
	}
	return st
}

// peek is the request path's look-up, without a lock: it returns the
// snapshot of session id to hand out, marking the session used at now,
// when the session is held and its snapshot is still the memory store's
// current entry; otherwise nil (not held, another store, the entry
// changed, or a writer was moving the slot: the locked path then tells).
//
// It reads one slot and then, side by side, the first cache line of the
// snapshot (id, gone, expiry), of the state (its use marks) and of the
// token entry; nothing of the store.
func (ls *liveSet) peek(id []byte, now int64) *Snapshot {
	h := maphash.Bytes(ls.seed, id)
	t := ls.shard(h).tab.Load()
	if t == nil {
		return nil
	}
	for i, n := h&t.mask, 0; n < len(t.slots); i, n = (i+1)&t.mask, n+1 {
		s := &t.slots[i]
		st := s.st.Load()
		if st == nil {
			return nil
		}
		if s.h.Load() != h {
			continue
		}
		sn, e := s.sn.Load(), s.e.Load()
		if sn == nil {
			return nil
		}
		if e != nil {
			e.Touch() // the token is read next
		}
		if !sn.current(now) || !hasID(sn, id) {
			return nil
		}
		// The snapshot's own state: while a writer moves entries, st may
		// be the slot's previous occupant (the id check covers sn only).
		sn.State.touch(now)
		return sn
	}
	return nil
}

// touch marks st used at now, writing only what changed: a request of a
// held session then writes nothing, and since an atomic write is a full
// barrier on most processors, the loads around it are not held back
// either.
func (st *State) touch(now int64) {
	if !st.ref.Load() {
		st.ref.Store(true)
	}
	if now-st.lastUsed.Load() > int64(time.Second) {
		st.lastUsed.Store(now)
	}
}

// setSnapshot makes sn the current snapshot of st, in st and in st's slot.
func (ls *liveSet) setSnapshot(st *State, sn *Snapshot) {
	sh := ls.shard(st.h)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	st.snap.Store(sn)
	t := sh.tab.Load()
	if sh.n == 0 || t == nil {
		return
	}
	for i := st.h & t.mask; ; i = (i + 1) & t.mask {
		switch t.slots[i].st.Load() {
		case nil:
			return // not held (dropped)
		case st:
			t.slots[i].setSnapshot(st, sn)
			return
		}
	}
}

// getOrInsert returns the state of st.id, inserting st if there is none,
// or nil once closed reports true. To stay within the limit it drops
// states that are neither used lately nor busy (they are detached: see
// State.detach); cutoff is the lastUsed below which a state counts as idle.
func (ls *liveSet) getOrInsert(st *State, now, cutoff int64, closed func() bool) *State {
	h := maphash.String(ls.seed, st.id)
	sh := ls.shard(h)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if cur := lookup(sh, h, st.id); cur != nil {
		cur.touch(now)
		return cur
	}
	if closed() {
		return nil
	}
	// The limit is the set's, not a shard's: shards fill unevenly. A full
	// set drops a state of the shard the new one hashes to; if that shard
	// has none it can drop, it goes over the limit by one.
	slot := -1
	switch {
	case ls.n.Load() < ls.limit && len(sh.free) > 0:
		slot = sh.free[len(sh.free)-1]
		sh.free = sh.free[:len(sh.free)-1]
	case ls.n.Load() >= ls.limit && sh.n > 0:
		slot = ls.evictLocked(sh)
	}
	if slot < 0 {
		sh.ring = append(sh.ring, nil)
		slot = len(sh.ring) - 1
	}
	ls.n.Add(1)
	st.slot, st.h = slot, h
	st.lastUsed.Store(now)
	st.ref.Store(true) // in use: the hand passes it once
	sh.ring[slot] = st
	sh.insert(h, st)
	// Look at the next two states for idle ones.
	for range 2 {
		i := sh.hand
		sh.hand = (sh.hand + 1) % len(sh.ring)
		if v := sh.ring[i]; v != nil && v != st && v.lastUsed.Load() < cutoff && v.detach() {
			ls.removeLocked(sh, v)
		}
	}
	return st
}

// evictLocked drops the state at the CLOCK hand that was not used since
// the hand last passed and can be detached, and returns its ring slot
// (free for the caller), or -1 when one pass found none. Called with
// sh.mu held.
func (ls *liveSet) evictLocked(sh *liveShard) int {
	for range 2 * len(sh.ring) {
		i := sh.hand
		sh.hand = (sh.hand + 1) % len(sh.ring)
		v := sh.ring[i]
		switch {
		case v == nil:
		case v.ref.Load():
			v.ref.Store(false)
		case v.detach():
			ls.n.Add(-1)
			sh.delete(v.h, v)
			sh.ring[i] = nil
			return i
		}
	}
	return -1
}

func (ls *liveSet) removeLocked(sh *liveShard, st *State) {
	ls.n.Add(-1)
	sh.delete(st.h, st)
	sh.ring[st.slot] = nil
	sh.free = append(sh.free, st.slot)
}

// remove drops session id and returns its state, or nil.
func (ls *liveSet) remove(id string) *State {
	h := maphash.String(ls.seed, id)
	sh := ls.shard(h)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	st := lookup(sh, h, id)
	if st != nil {
		ls.removeLocked(sh, st)
	}
	return st
}

// drain empties the set and returns what it held.
func (ls *liveSet) drain() []*State {
	var out []*State
	for i := range ls.shards {
		sh := &ls.shards[i]
		sh.mu.Lock()
		if t := sh.tab.Load(); t != nil {
			for i := range t.slots {
				if st := t.slots[i].st.Load(); st != nil {
					out = append(out, st)
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

// len is the number of states held.
func (ls *liveSet) len() int { return int(ls.n.Load()) }
