package authcode

import (
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"
)

// liveSet holds this process's per-session state (userTokens), bounded by
// Config.MaxLiveSessions. It is split into shards, each with its own lock,
// hash table and CLOCK ring, so that requests of different users do not
// contend and eviction costs O(1) per insert (amortised): the hand skips,
// once, the entries used since it last passed and evicts the first one
// that was not. Each insert also looks at the next two entries and drops
// them if they have been idle for liveIdle.
//
// The tables are open-addressed (linear probing, at most half full) and
// hold each session's hash next to its state, and the state holds its id
// inline: a look-up reads one slot and the state it finds, and chases no
// pointer to a key. With many sessions each read is a cache miss, so this
// is what keeps a request's cost flat as sessions grow.
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
	h uint64
	u *userTokens // nil: empty
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

// inlineID is the longest session id a userTokens holds inline (the SDK's
// ids are 52 characters); longer ones are compared through the id string.
const inlineID = 64

// setInlineID copies u.id inline, for look-ups that chase no pointer.
func (u *userTokens) setInlineID() {
	if len(u.id) <= inlineID {
		u.idn = uint8(copy(u.idb[:], u.id))
	}
}

// hasID reports whether u is the state of session id.
func hasID[ID string | []byte](u *userTokens, id ID) bool {
	if u.idn != 0 {
		return int(u.idn) == len(id) && string(u.idb[:u.idn]) == string(id)
	}
	return u.id == string(id)
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
		if s.h == h && hasID(s.u, id) {
			return i, true
		}
	}
}

func lookup[ID string | []byte](sh *liveShard, h uint64, id ID) *userTokens {
	if sh.n == 0 {
		return nil
	}
	if i, ok := find(sh, h, id); ok {
		return sh.slots[i].u
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
	u := lookup(sh, h, id)
	if u != nil {
		u.touch(now)
	}
	sh.mu.Unlock()
	return u
}

// touch marks u used at now, writing only what changed (a request of a
// held session then dirties no cache line of u). Called with the shard
// lock held.
func (u *userTokens) touch(now int64) {
	if !u.ref {
		u.ref = true
	}
	if now-u.lastUsed > int64(time.Second) {
		u.lastUsed = now
	}
}

// getBytes is get for an id held in a byte slice (no conversion).
func (ls *liveSet) getBytes(id []byte, now int64) *userTokens {
	h := maphash.Bytes(ls.seed, id)
	sh := ls.shard(h)
	sh.mu.Lock()
	u := lookup(sh, h, id)
	if u != nil {
		u.touch(now)
	}
	sh.mu.Unlock()
	return u
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
			if v.ref {
				v.ref = false
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
	u.slot, u.lastUsed, u.ref, u.h = slot, now, true, h // in use: the hand passes it once
	u.setInlineID()
	sh.ring[slot] = u
	sh.insert(h, u)
	// Look at the next two entries for idle ones.
	for k := 1; k < len(out); k++ {
		h := sh.hand
		sh.hand = (sh.hand + 1) % len(sh.ring)
		if v := sh.ring[h]; v != nil && v != u && v.lastUsed < cutoff {
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
