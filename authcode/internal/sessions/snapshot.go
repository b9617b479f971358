package sessions

import (
	"sync/atomic"
	"time"
)

// inlineID is the longest session id a snapshot holds inline (authcode's
// ids are 52 characters); longer ones are compared through the state.
const inlineID = 52

// Public is what a Session shows of a sign-in: authcode copies it into
// every Session it hands out.
type Public struct {
	ID                string
	Subject           string
	Name              string
	PreferredUsername string
	Email             string
	Issuer            string
	Scopes            []string // the snapshot's own; callers get copies
	SignedInAt        time.Time
	Expiry            time.Time
}

// Snapshot is one stored version of a sign-in as requests read it. It is
// immutable but for gone.
//
// Its first cache line holds all the fast path reads of it: the session id
// (the live set compares it), whether the memory store still holds the
// entry it was made from, and when that entry expires.
type Snapshot struct {
	idb  [inlineID]byte
	idn  uint8 // 0: the id is longer than inlineID
	fast bool  // made from an entry of the memory store: peek may hand it out
	// gone is set when the memory store's entry the snapshot was made
	// from is replaced or deleted (memStore.retire).
	gone atomic.Bool
	// exp is when the entry expires, in unix seconds rounded down (so a
	// snapshot goes at most a second early); 0: never.
	exp uint32
	mem *memEntry // where it came from, with the memory store
	// Public is what a Session shows.
	Public
	// Rec is the record the snapshot shows.
	Rec *Record
	// State is this process's live state of the sign-in.
	State *State
	// scopes holds Public.Scopes (up to five, the default set) next to
	// the other fields a request copies, rather than in an object of its
	// own: one memory access less per request.
	scopes [5]string
	// Key is the session's Store key.
	Key string
	raw []byte  // where it came from, with another Store
	_   [8]byte // 384 bytes: snapshots start on cache lines (TestHotLayout)
}

func newSnapshot(st *State, rec *Record, org origin) *Snapshot {
	sn := &Snapshot{mem: org.mem, raw: org.raw, Rec: rec, State: st, Key: st.key,
		Public: Public{
			ID:                st.id,
			Subject:           rec.Subject,
			Name:              rec.Name,
			PreferredUsername: rec.Username,
			Email:             rec.Email,
			Issuer:            rec.Issuer,
			SignedInAt:        rec.SignedInAt,
			Expiry:            rec.Expiry,
		}}
	if n := len(rec.Scopes); n <= len(sn.scopes) {
		sn.Scopes = sn.scopes[:copy(sn.scopes[:], rec.Scopes):n]
	} else {
		sn.Scopes = append([]string(nil), rec.Scopes...)
	}
	if len(st.id) <= inlineID {
		sn.idn = uint8(copy(sn.idb[:], st.id))
	}
	if m := org.mem; m != nil {
		sn.fast = true
		if m.exp != 0 {
			sn.exp = uint32(m.exp / int64(time.Second))
		}
		// The entry tells this snapshot when it goes; if it went already,
		// the snapshot is born gone (one of the two sees the other).
		m.view.Store(sn)
		if m.gone.Load() {
			sn.gone.Store(true)
		}
	}
	return sn
}

// current reports whether sn may be handed out without a look-up at now
// (unix nanoseconds): made from the memory store's entry that is still
// stored and unexpired.
func (sn *Snapshot) current(now int64) bool {
	return sn.fast && !sn.gone.Load() && (sn.exp == 0 || now/int64(time.Second) < int64(sn.exp))
}

// Owner returns the Config.Owner of the engine the snapshot belongs to.
func (sn *Snapshot) Owner() any {
	if sn.State == nil {
		return nil
	}
	return sn.State.e.cfg.Owner
}

func (sn *Snapshot) origin() origin { return origin{mem: sn.mem, raw: sn.raw} }

// hasID reports whether sn is a snapshot of session id.
func hasID[ID string | []byte](sn *Snapshot, id ID) bool {
	if sn.idn == 0 {
		return sn.State.id == string(id)
	}
	return int(sn.idn) == len(id) && string(sn.idb[:sn.idn]) == string(id)
}
