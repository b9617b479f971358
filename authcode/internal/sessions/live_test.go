package sessions

import (
	"fmt"
	"hash/maphash"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/erpnetgo/auth/internal/lifetime"
	"github.com/erpnetgo/auth/internal/tokencache"
)

// liveEntry is a state with an idle token cache, for the live set alone.
func liveEntry(t testing.TB, id string) *State {
	life := lifetime.New()
	t.Cleanup(func() { life.Close() })
	st := &State{id: id}
	st.cache.Init(nil, tokencache.Options{Life: life})
	return st
}

func never() bool { return false }

// holds reports whether ls holds session id, without marking it used.
func holds(ls *liveSet, id string) bool {
	h := maphash.String(ls.seed, id)
	sh := ls.shard(h)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return lookup(sh, h, id) != nil
}

// The live set never holds more than its limit, and its CLOCK gives a
// second chance: a state used since the hand last passed survives the next
// eviction, one not used goes first.
func TestLiveSetClock(t *testing.T) {
	const limit = 8 // one shard
	ls := newLiveSet(limit)
	require.Len(t, ls.shards, 1)
	held := map[string]*State{}
	insert := func(id string, now int64) {
		st := ls.getOrInsert(liveEntry(t, id), now, 0, never)
		require.Equal(t, id, st.id)
		held[id] = st
	}
	evicted := func() []string {
		var out []string
		for id, st := range held {
			if !holds(ls, id) {
				out = append(out, id)
				require.True(t, st.cache.Detach(), "an evicted state is detached")
				delete(held, id)
			}
		}
		return out
	}
	for i := range limit {
		insert(fmt.Sprint(i), 1)
	}
	assert.Equal(t, limit, ls.len())
	assert.Empty(t, evicted())
	// A full pass of the hand clears every mark: the first insert over the
	// limit evicts one of the eight, the one at the hand.
	insert("first", 2)
	out := evicted()
	require.Len(t, out, 1)
	first := out[0]
	// Using every survivor but one leaves that one as the victim.
	var spare string
	for i := range limit {
		if id := fmt.Sprint(i); id != first {
			if spare == "" {
				spare = id
				continue
			}
			require.NotNil(t, ls.get(id, 2))
		}
	}
	require.NotNil(t, ls.get("first", 2))
	insert("new", 3)
	assert.Equal(t, []string{spare}, evicted())
	assert.Equal(t, limit, ls.len())
	// The hand cleared the others' marks on its way: the next insert evicts
	// the oldest of them, not the one just inserted.
	insert("newer", 5)
	out = evicted()
	assert.Len(t, out, 1)
	assert.NotContains(t, out, "new")
	// remove frees a slot: the next insert evicts nothing.
	require.NotNil(t, ls.remove("newer"))
	delete(held, "newer")
	insert("again", 6)
	assert.Empty(t, evicted())
	assert.LessOrEqual(t, ls.len(), limit)
	ls.drain()
	assert.Zero(t, ls.len())
}

// A busy state (a refresh in flight, or refreshed tokens not yet saved) is
// never evicted: the hand passes it by, and the set goes over its limit by
// one rather than abandon it.
func TestLiveSetNeverEvictsBusyStates(t *testing.T) {
	ls := newLiveSet(2)
	a := ls.getOrInsert(liveEntry(t, "a"), 1, 0, never)
	b := ls.getOrInsert(liveEntry(t, "b"), 1, 0, never)
	a.unsaved = &Record{}
	b.unsaved = &Record{}
	ls.getOrInsert(liveEntry(t, "c"), 2, 0, never)
	assert.Same(t, a, ls.get("a", 3))
	assert.Same(t, b, ls.get("b", 3))
	assert.Equal(t, 3, ls.len())
	b.unsaved = nil
	ls.getOrInsert(liveEntry(t, "d"), 4, 0, never)
	ls.getOrInsert(liveEntry(t, "e"), 5, 0, never)
	assert.Same(t, a, ls.get("a", 6), "the busy state was evicted")
}

// Inserts drop states idle since before the cutoff as the hand passes.
func TestLiveSetIdle(t *testing.T) {
	ls := newLiveSet(10_000)
	require.Greater(t, len(ls.shards), 1)
	for i := range 200 {
		ls.getOrInsert(liveEntry(t, fmt.Sprint("old", i)), 1, 0, never)
	}
	require.Equal(t, 200, ls.len())
	// Now everything inserted at time 1 is idle (cutoff 100); keep
	// inserting until the hands have passed every state.
	for i := range 4000 {
		ls.getOrInsert(liveEntry(t, fmt.Sprint("new", i)), 200, 100, never)
	}
	for i := range 200 {
		assert.Nil(t, ls.get(fmt.Sprint("old", i), 300), "idle state kept")
	}
	for i := range 4000 {
		require.NotNil(t, ls.get(fmt.Sprint("new", i), 300), "fresh state dropped")
	}
	assert.Equal(t, 4000, ls.len())
	for _, st := range ls.drain() {
		assert.False(t, strings.HasPrefix(st.id, "old"))
	}
}

// The limit is the set's, whatever the shards: a full set holds exactly
// its limit (shards fill unevenly, so a per-shard limit would evict
// early), and deleting from it goes on working after many evictions (the
// tables shift entries back instead of leaving tombstones).
func TestLiveSetLimitIsGlobal(t *testing.T) {
	for _, limit := range []int{1, 2, 31, 32, 100, 10_000} {
		ls := newLiveSet(limit)
		var all []*State
		for i := range 3 * limit {
			st := ls.getOrInsert(liveEntry(t, fmt.Sprint("s", i)), 1, 0, never)
			require.NotNil(t, st)
			all = append(all, st)
			if i < limit {
				require.Equal(t, i+1, ls.len(), "limit %d: evicted with %d held", limit, i)
			}
			require.LessOrEqual(t, ls.len(), limit+len(ls.shards)-1, "limit %d", limit)
		}
		evictions := 0
		for _, st := range all {
			if ls.get(st.id, 1) == nil {
				evictions++
			}
		}
		assert.Equal(t, 3*limit-ls.len(), evictions, "limit %d", limit)
		// Every state held is found, and removing each leaves the rest
		// findable.
		held := ls.drain()
		ls = newLiveSet(limit)
		for _, st := range held {
			ls.getOrInsert(st, 1, 0, never)
		}
		for i, st := range held {
			require.Same(t, st, ls.remove(st.id), "limit %d", limit)
			for _, v := range held[i+1 : min(len(held), i+20)] {
				require.Same(t, v, ls.get(v.id, 1), "limit %d", limit)
			}
		}
		assert.Zero(t, ls.len())
	}
}

// What a request of a held session reads sits on as few cache lines as
// possible: a snapshot's first line holds its store entry and id; a
// state's first line its token cache's hot fields; and both sizes are
// multiples of 64 that are also allocation size classes, so every object
// starts on a cache line. A field added to either struct must keep this
// (adjust the padding).
func TestHotLayout(t *testing.T) {
	if unsafe.Sizeof(uintptr(0)) != 8 {
		t.Skip("the layout is tuned for 64-bit platforms")
	}
	var st State
	var sn Snapshot
	for _, size := range []uintptr{unsafe.Sizeof(st), unsafe.Sizeof(sn)} {
		assert.Zero(t, size%64, "size %d", size)
		assert.LessOrEqual(t, size, uintptr(768), "size %d", size) // size classes up to 768 include every multiple of 64
	}
	assert.LessOrEqual(t, unsafe.Offsetof(st.cache)+24, uintptr(64), "the token cache's hot fields leave the first line")
	assert.Equal(t, uintptr(64), unsafe.Offsetof(sn.mem), "a snapshot's id, gone flag and expiry leave the first line")
}

// Requests read the live set without a lock while other goroutines
// insert, evict, remove and replace snapshots: a reader may miss a session
// (it then takes the locked path) but never gets another session's
// snapshot.
func TestLiveSetLockFreeReadersNeverSeeAnotherSession(t *testing.T) {
	const sessions, limit = 200, 64
	ls := newLiveSet(limit)
	ids := make([]string, sessions)
	for i := range ids {
		ids[i] = fmt.Sprintf("%052d", i)
	}
	snapshotOf := func(st *State) *Snapshot {
		sn := &Snapshot{fast: true, State: st}
		sn.ID = st.id
		sn.idn = uint8(copy(sn.idb[:], st.id))
		return sn
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var found, missed atomic.Int64
	for r := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := r; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				id := ids[i%sessions]
				if sn := ls.peek([]byte(id), 1); sn != nil {
					if sn.ID != id {
						t.Errorf("peek(%s) returned the snapshot of %s", id, sn.ID)
						return
					}
					found.Add(1)
				} else {
					missed.Add(1)
				}
			}
		}()
	}
	for i := range 20_000 {
		id := ids[(i*7)%sessions]
		st := ls.getOrInsert(liveEntry(t, id), int64(i), 0, never)
		ls.setSnapshot(st, snapshotOf(st))
		if i%5 == 0 {
			ls.remove(ids[(i*13)%sessions])
		}
	}
	close(stop)
	wg.Wait()
	ls.drain()
	assert.Positive(t, found.Load(), "readers never found a session")
	t.Logf("found %d, missed %d", found.Load(), missed.Load())

	// A reader that reads a slot half rewritten (the hash of one session,
	// the snapshot of another) does not hand that snapshot out.
	ls = newLiveSet(limit)
	x := ls.getOrInsert(liveEntry(t, ids[0]), 1, 0, never)
	y := liveEntry(t, ids[1])
	ls.setSnapshot(x, snapshotOf(x))
	require.NotNil(t, ls.peek([]byte(ids[0]), 1))
	tab := ls.shard(x.h).tab.Load()
	for i := range tab.slots {
		if tab.slots[i].st.Load() == x {
			torn := snapshotOf(y) // as current as x's: only the id differs
			tab.slots[i].sn.Store(torn)
		}
	}
	assert.Nil(t, ls.peek([]byte(ids[0]), 1), "a snapshot of another session was handed out")
}
