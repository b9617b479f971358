package sessions

import "time"

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
// immutable.
//
// Its first cache line holds what the fast path reads first: the memory
// store's entry and the session id (the live set compares it).
type Snapshot struct {
	mem *memEntry // where it came from, with the memory store
	idb [inlineID]byte
	idn uint8 // 0: the id is longer than inlineID
	// Public is what a Session shows.
	Public
	// Rec is the record the snapshot shows.
	Rec *Record
	// State is this process's live state of the sign-in.
	State *State
	// Key is the session's Store key.
	Key string
	raw []byte   // where it came from, with another Store
	_   [32]byte // 320 bytes: snapshots start on cache lines (TestHotLayout)
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
			Scopes:            append([]string(nil), rec.Scopes...),
			SignedInAt:        rec.SignedInAt,
			Expiry:            rec.Expiry,
		}}
	if len(st.id) <= inlineID {
		sn.idn = uint8(copy(sn.idb[:], st.id))
	}
	return sn
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
