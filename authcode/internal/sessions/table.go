package sessions

import (
	"sync/atomic"

	"github.com/erpnetgo/auth/internal/tokencache"
)

// liveTable is an open-addressed table; len(slots) is a power of two.
type liveTable struct {
	slots []liveSlot
	mask  uint64
}

// liveSlot is one table entry. Its fields are written under the shard's
// lock and read without it.
type liveSlot struct {
	h  atomic.Uint64
	st atomic.Pointer[State] // nil: empty
	sn atomic.Pointer[Snapshot]
	// e was the state's token entry when sn was made: a hint, to start
	// loading it early (the token cache holds the current one).
	e atomic.Pointer[tokencache.Entry]
}

// set fills s (st stored last: a reader seeing st sees the rest).
func (s *liveSlot) set(h uint64, st *State) {
	s.h.Store(h)
	s.setSnapshot(st, st.snap.Load())
	s.st.Store(st)
}

// setSnapshot stores st's snapshot sn and its token entry hint.
func (s *liveSlot) setSnapshot(st *State, sn *Snapshot) {
	s.sn.Store(sn)
	s.e.Store(st.cache.Peek())
}

func (s *liveSlot) clear() {
	s.st.Store(nil)
	s.sn.Store(nil)
	s.e.Store(nil)
	s.h.Store(0)
}

// find returns the index of the slot holding id (hash h), or of the empty
// slot where the probe ended (found false). Called with sh.mu held.
func find[ID string | []byte](t *liveTable, h uint64, id ID) (i uint64, found bool) {
	for i = h & t.mask; ; i = (i + 1) & t.mask {
		s := &t.slots[i]
		st := s.st.Load()
		if st == nil {
			return i, false
		}
		if s.h.Load() == h && st.id == string(id) {
			return i, true
		}
	}
}

// lookup returns the state of session id (hash h), or nil. Called with
// sh.mu held.
func lookup[ID string | []byte](sh *liveShard, h uint64, id ID) *State {
	t := sh.tab.Load()
	if sh.n == 0 || t == nil {
		return nil
	}
	if i, ok := find(t, h, id); ok {
		return t.slots[i].st.Load()
	}
	return nil
}

// insert adds st (not held yet) under hash h, growing the table to keep it
// at most half full. Called with sh.mu held.
func (sh *liveShard) insert(h uint64, st *State) {
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
				if v := s.st.Load(); v != nil {
					j := s.h.Load() & nt.mask
					for nt.slots[j].st.Load() != nil {
						j = (j + 1) & nt.mask
					}
					nt.slots[j].set(s.h.Load(), v)
				}
			}
		}
		sh.tab.Store(nt)
		t = nt
	}
	i, _ := find(t, h, st.id)
	t.slots[i].set(h, st)
	sh.n++
}

// delete removes the slot of st (hash h), shifting back the entries that
// follow it in their probe run (no tombstones). Called with sh.mu held.
func (sh *liveShard) delete(h uint64, st *State) {
	t := sh.tab.Load()
	if sh.n == 0 || t == nil {
		return
	}
	i := h & t.mask
	for t.slots[i].st.Load() != st {
		if t.slots[i].st.Load() == nil {
			return // not held
		}
		i = (i + 1) & t.mask
	}
	sh.n--
	for j := i; ; {
		j = (j + 1) & t.mask
		s := &t.slots[j]
		sj := s.st.Load()
		if sj == nil {
			break
		}
		// s may move to the hole at i unless its home slot lies
		// cyclically within (i, j].
		hj := s.h.Load()
		if home := hj & t.mask; (j-home)&t.mask < (j-i)&t.mask {
			continue
		}
		t.slots[i].clear()
		t.slots[i].set(hj, sj)
		i = j
	}
	t.slots[i].clear()
}
