package authcode

import (
	"hash/maphash"
	"sync"
	"time"
)

// liveSet holds this process's per-session state (userTokens), bounded by
// Config.MaxLiveSessions. It is split into shards, each with its own lock,
// map and CLOCK ring, so that requests of different users do not contend
// and eviction costs O(1) per insert (amortised): the hand skips, once,
// the entries used since it last passed and evicts the first one that was
// not. Each insert also looks at the next two entries and drops them if
// they have been idle for liveIdle.
type liveSet struct {
	seed   maphash.Seed
	mask   uint64
	shards []liveShard
}

type liveShard struct {
	mu   sync.Mutex
	m    map[string]*userTokens
	ring []*userTokens // nil slots are listed in free
	free []int
	hand int
	cap  int
	_    [64]byte // keep shards on their own cache lines
}

// maxLiveShards bounds the shards; each holds at least minPerShard
// sessions so that small limits stay exact.
const (
	maxLiveShards = 64
	minPerShard   = 16
)

func newLiveSet(limit int) *liveSet {
	n := 1
	for n < maxLiveShards && limit/(n*2) >= minPerShard {
		n *= 2
	}
	ls := &liveSet{seed: maphash.MakeSeed(), mask: uint64(n - 1), shards: make([]liveShard, n)}
	for i := range ls.shards {
		sh := &ls.shards[i]
		sh.m = map[string]*userTokens{}
		sh.cap = limit / n
		if i < limit%n {
			sh.cap++
		}
	}
	return ls
}

func (ls *liveSet) shard(id string) *liveShard {
	if ls.mask == 0 {
		return &ls.shards[0]
	}
	return &ls.shards[maphash.String(ls.seed, id)&ls.mask]
}

// get returns the state of session id, marking it used at now (unix
// nanoseconds), or nil.
func (ls *liveSet) get(id string, now int64) *userTokens {
	sh := ls.shard(id)
	sh.mu.Lock()
	u := sh.m[id]
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
	sh := &ls.shards[0]
	if ls.mask != 0 {
		sh = &ls.shards[maphash.Bytes(ls.seed, id)&ls.mask]
	}
	sh.mu.Lock()
	u := sh.m[string(id)]
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
	sh := ls.shard(u.id)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if cur := sh.m[u.id]; cur != nil {
		cur.touch(now)
		return cur, out
	}
	if closed() {
		return nil, out
	}
	var slot int
	switch {
	case len(sh.free) > 0:
		slot = sh.free[len(sh.free)-1]
		sh.free = sh.free[:len(sh.free)-1]
	case len(sh.ring) < sh.cap:
		sh.ring = append(sh.ring, nil)
		slot = len(sh.ring) - 1
	default:
		for {
			v := sh.ring[sh.hand]
			if v.ref {
				v.ref = false
				sh.hand = (sh.hand + 1) % len(sh.ring)
				continue
			}
			delete(sh.m, v.id)
			out[0] = v
			slot = sh.hand
			sh.hand = (sh.hand + 1) % len(sh.ring)
			break
		}
	}
	u.slot, u.lastUsed, u.ref = slot, now, true // in use: the hand passes it once
	sh.ring[slot] = u
	sh.m[u.id] = u
	// Look at the next two entries for idle ones.
	for k := 1; k < len(out); k++ {
		h := sh.hand
		sh.hand = (sh.hand + 1) % len(sh.ring)
		if v := sh.ring[h]; v != nil && v != u && v.lastUsed < cutoff {
			sh.removeLocked(v)
			out[k] = v
		}
	}
	return u, out
}

func (sh *liveShard) removeLocked(u *userTokens) {
	delete(sh.m, u.id)
	sh.ring[u.slot] = nil
	sh.free = append(sh.free, u.slot)
}

// remove drops session id and returns its state, or nil.
func (ls *liveSet) remove(id string) *userTokens {
	sh := ls.shard(id)
	sh.mu.Lock()
	u := sh.m[id]
	if u != nil {
		sh.removeLocked(u)
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
		for _, u := range sh.m {
			out = append(out, u)
		}
		sh.m = map[string]*userTokens{}
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
		n += len(sh.m)
		sh.mu.Unlock()
	}
	return n
}
