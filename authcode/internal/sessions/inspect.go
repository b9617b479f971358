package sessions

import (
	"hash/maphash"

	"golang.org/x/oauth2"
)

// What the engine holds, for tests and diagnostics; nothing here changes
// anything.

// Held returns the live state of session id, or nil when none is held.
func (e *Engine) Held(id string) *State {
	h := maphash.String(e.live.seed, id)
	sh := e.live.shard(h)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return lookup(sh, h, id)
}

// Len is the number of live states held.
func (e *Engine) Len() int { return e.live.len() }

// Cached returns the access token st's cache holds, without fetching, or
// nil.
func (st *State) Cached() *oauth2.Token {
	if en := st.cache.Peek(); en != nil {
		return en.Token
	}
	return nil
}

// MemoryKeys returns the keys the engine's memory store holds, or nil when
// the Store is another.
func (e *Engine) MemoryKeys() []string {
	if m, ok := e.store.(*memStore); ok {
		return m.keys()
	}
	return nil
}
