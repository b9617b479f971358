package sessions

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/erpnetgo/auth/internal/clock"
)

func TestMemoryStoreAdd(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	s := newMemStore(clock.From(func() time.Time { return now }))
	ctx := context.Background()
	added, err := s.Add(ctx, "k", []byte("a"), time.Minute)
	require.NoError(t, err)
	assert.True(t, added)
	added, _ = s.Add(ctx, "k", []byte("b"), time.Minute)
	assert.False(t, added, "present key must not be replaced")
	v, _ := s.Load(ctx, "k")
	assert.Equal(t, "a", string(v))
	now = now.Add(2 * time.Minute)
	added, _ = s.Add(ctx, "k", []byte("c"), time.Minute)
	assert.True(t, added, "an expired key counts as absent")
}

// Records saved by the engine stay decoded: a load returns the very record
// saved, and its entry stays live until replaced or deleted; bytes saved
// through Store are decoded once.
func TestMemoryStoreKeepsRecordsDecoded(t *testing.T) {
	ctx := context.Background()
	s := newMemStore(clock.Real)
	rec := NewRecord(Record{Subject: "alice", AccessToken: "a", ClientID: "c"})
	require.NoError(t, s.save(ctx, "k", rec, time.Hour))
	got, org, err := s.load(ctx, "k", nil)
	require.NoError(t, err)
	assert.Same(t, rec, got)
	assert.True(t, org.mem.live(time.Now().UnixNano()))
	raw, err := s.Load(ctx, "k")
	require.NoError(t, err)
	require.NoError(t, s.Save(ctx, "k", raw, time.Hour))
	assert.False(t, org.mem.live(time.Now().UnixNano()), "a replaced entry is still live")
	d1, org1, err := s.load(ctx, "k", nil)
	require.NoError(t, err)
	d2, _, _ := s.load(ctx, "k", nil)
	assert.Same(t, d1, d2, "decoded twice")
	assert.Equal(t, "alice", d1.Subject)
	require.NoError(t, s.Delete(ctx, "k"))
	assert.False(t, org1.mem.live(time.Now().UnixNano()))
	_, _, err = s.load(ctx, "k", nil)
	assert.ErrorIs(t, err, ErrNotFound)
}

// A snapshot made from a memory store entry goes when the entry does
// (replaced, deleted) or expires, with no look-up in the store; one made
// from an entry that went already is born gone.
func TestSnapshotFollowsItsEntry(t *testing.T) {
	ctx := context.Background()
	s := newMemStore(clock.Real)
	st := &State{id: "sid", key: "k"}
	rec := NewRecord(Record{Subject: "alice", AccessToken: "a", ClientID: "c"})
	require.NoError(t, s.save(ctx, "k", rec, time.Hour))
	_, org, err := s.load(ctx, "k", nil)
	require.NoError(t, err)
	sn := newSnapshot(st, rec, org)
	now := time.Now().UnixNano()
	require.True(t, sn.current(now))
	assert.False(t, sn.current(now+int64(2*time.Hour)), "expired")
	require.NoError(t, s.save(ctx, "k", rec, time.Hour)) // replaced
	assert.False(t, sn.current(now), "the entry was replaced")

	_, org, err = s.load(ctx, "k", nil)
	require.NoError(t, err)
	require.NoError(t, s.Delete(ctx, "k"))
	late := newSnapshot(st, rec, org) // made after its entry went
	assert.False(t, late.current(now), "a snapshot of a deleted entry")
	assert.False(t, newSnapshot(st, rec, origin{raw: []byte("x")}).current(now), "another store's snapshot is never handed out unchecked")
}
