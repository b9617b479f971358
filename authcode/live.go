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
// slot holds the session's hash, its state, its current view, the view's
// store entry and its token entry, and the view holds the id inline: a
// request of a held session reads one slot, then everything else side by
// side, and chases no pointer to a key. With many sessions each of those
// reads is a cache miss, so the fewer reads that wait for one another,
// the flatter a request's cost as sessions grow.
type liveSet struct {
	seed   maphash.Seed
	shift  uint // a hash's top bits pick the shard
	shards []liveShard
	limit  int64
	n      atomic.Int64 // sessions held, in all shards
}

type liveShard struct {
	mu    sync.Mutex
	slots []liveSlot    // open addressing; len is a power of two, or 0
	n     int           // sessions held
	ring  []*userTokens // nil slots are listed in free
	free  []int
	hand  int
	_     [64]byte // keep shards on their own cache lines
}

type liveSlot struct {
	h   uint64
	u   *userTokens  // nil: empty
	v   *sessionView // u's current view, or nil
	mem *memEntry    // v.mem
	// e was u's token entry when v was made: a hint, to start loading it
	// early (the token cache holds the current one).
	e *tokencache.Entry
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

// hasID reports whether s holds session id.
func hasID[ID string | []byte](s *liveSlot, id ID) bool {
	if v := s.v; v != nil && v.idn != 0 {
		return int(v.idn) == len(id) && string(v.idb[:v.idn]) == string(id)
	}
	return s.u.id == string(id)
}

// find returns the index of the slot holding id (hash h), or of the empty
// slot where the probe ended (found false). Called with sh.mu held, and
// sh.slots not empty.
func find[ID string | []byte](sh *liveShard, h uint64, id ID) (i uint64, found bool) {
	mask := uint64(len(sh.slots) - 1)
	for i = h & mask; ; i = (i + 1) & mask {
		s := &sh.slots[i]
		if s.u == nil {
			return i, false
		}
		if s.h == h && hasID(s, id) {
			return i, true
		}
	}
}

func lookup[ID string | []byte](sh *liveShard, h uint64, id ID) *liveSlot {
	if sh.n == 0 {
		return nil
	}
	if i, ok := find(sh, h, id); ok {
		return &sh.slots[i]
	}
	return nil
}

// insert adds u (not held yet) under hash h, growing the table to keep it
// at most half full. Called with sh.mu held.
func (sh *liveShard) insert(h uint64, u *userTokens) {
	if 2*(sh.n+1) > len(sh.slots) {
		old := sh.slots
		sh.slots = make([]liveSlot, max(16, 2*len(old)))
		mask := uint64(len(sh.slots) - 1)
		for _, s := range old {
			if s.u != nil {
				i := s.h & mask
				for sh.slots[i].u != nil {
					i = (i + 1) & mask
				}
				sh.slots[i] = s
			}
		}
	}
	i, _ := find(sh, h, u.id)
	sh.slots[i] = liveSlot{h: h, u: u}
	sh.slots[i].setView(u.view.Load())
	sh.n++
}

// delete removes the slot of u (hash h), shifting back the entries that
// follow it in their probe run (no tombstones). Called with sh.mu held.
func (sh *liveShard) delete(h uint64, u *userTokens) {
	if sh.n == 0 {
		return
	}
	mask := uint64(len(sh.slots) - 1)
	i := h & mask
	for sh.slots[i].u != u {
		if sh.slots[i].u == nil {
			return // not held
		}
		i = (i + 1) & mask
	}
	sh.n--
	for j := i; ; {
		j = (j + 1) & mask
		s := sh.slots[j]
		if s.u == nil {
			break
		}
		// s may move to the hole at i unless its home slot lies
		// cyclically within (i, j].
		if home := s.h & mask; (j-home)&mask < (j-i)&mask {
			continue
		}
		sh.slots[i] = s
		i = j
	}
	sh.slots[i] = liveSlot{}
}

// get returns the state of session id, marking it used at now (unix
// nanoseconds), or nil.
func (ls *liveSet) get(id string, now int64) *userTokens {
	h := maphash.String(ls.seed, id)
	sh := ls.shard(h)
	sh.mu.Lock()
	var u *userTokens
	if s := lookup(sh, h, id); s != nil {
		u = s.u
		u.touch(now)
	}
	sh.mu.Unlock()
	return u
}

// touch marks u used at now, writing only what changed: a request of a
// held session then writes nothing, and since an atomic write is a full
// barrier on most processors, the loads around it are not held back
// either. It takes no lock (getBytes calls it after releasing the
// shard's, so that the look-up's reads and u's overlap).
func (u *userTokens) touch(now int64) {
	if !u.ref.Load() {
		u.ref.Store(true)
	}
	if now-u.lastUsed.Load() > int64(time.Second) {
		u.lastUsed.Store(now)
	}
}

// getBytes is get for an id held in a byte slice (no conversion); it
// returns a copy of the session's slot, or a zero slot.
func (ls *liveSet) getBytes(id []byte, now int64) liveSlot {
	h := maphash.Bytes(ls.seed, id)
	sh := ls.shard(h)
	sh.mu.Lock()
	// Under the lock, only the hash is compared: releasing a lock is a
	// full barrier on most processors, so every load made before it must
	// complete first. The id is compared after it, while the state, view
	// and entries load side by side. (Another session with the same
	// 64-bit hash sends the look-up through the lock again.)
	var out liveSlot
	if sh.n > 0 {
		mask := uint64(len(sh.slots) - 1)
		for i := h & mask; sh.slots[i].u != nil; i = (i + 1) & mask {
			if sh.slots[i].h == h {
				out = sh.slots[i]
				break
			}
		}
	}
	sh.mu.Unlock()
	if out.u != nil && !hasID(&out, id) {
		sh.mu.Lock()
		out = liveSlot{}
		if s := lookup(sh, h, id); s != nil {
			out = *s
		}
		sh.mu.Unlock()
	}
	if out.u != nil {
		out.u.touch(now)
	}
	return out
}

// setView fills the slot's copies of view v (nil: none).
func (s *liveSlot) setView(v *sessionView) {
	s.v, s.mem, s.e = v, nil, nil
	if v != nil {
		s.mem, s.e = v.mem, s.u.cache.Peek()
	}
}

// setView makes v the current view of u, in u and in u's slot.
func (ls *liveSet) setView(u *userTokens, v *sessionView) {
	sh := ls.shard(u.h)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	u.view.Store(v)
	if sh.n == 0 {
		return
	}
	mask := uint64(len(sh.slots) - 1)
	for i := u.h & mask; sh.slots[i].u != nil; i = (i + 1) & mask {
		if sh.slots[i].u == u {
			sh.slots[i].setView(v)
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
	if s := lookup(sh, h, u.id); s != nil {
		s.u.touch(now)
		return s.u, out
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
	var u *userTokens
	if s := lookup(sh, h, id); s != nil {
		u = s.u
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
		for _, s := range sh.slots {
			if s.u != nil {
				out = append(out, s.u)
			}
		}
		ls.n.Add(-int64(sh.n))
		sh.slots, sh.n = nil, 0
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
