// Package sessions is authcode's per-user session engine: where a user's
// sign-in is kept, how a request finds it, and how its tokens are handed
// out and refreshed. It never sees the Client: the Client gives it a Config
// (the Store, a clock, a lifetime, and Redeem, which asks the identity
// server for new tokens) and asks it for snapshots.
//
// Its words, used the same way in code and docs:
//
//   - record: what the Store keeps for one sign-in (tokens, claims,
//     version). A record is immutable; an update is a new record with the
//     next version.
//   - live state: this process's state of one sign-in (State): its token
//     cache, the single-flight of its refresh, the latest record known
//     here. At most Config.MaxLive are held; the rest are reloaded from the
//     Store when used.
//   - snapshot: an immutable view of one record that requests read. Every
//     Session the Client hands out is built from one and shares no slice,
//     map or pointer a caller can reach with it or another caller.
//
// Rules:
//
//   - One load path for every Store (Engine.open). The default memory store
//     keeps records decoded and marks an entry gone when it is replaced, so
//     a held session's snapshot is handed out while its entry is the stored
//     one (the fast path, peek); any other Store costs one Load, and a
//     record is decoded only when its bytes changed.
//   - A refresh, once started, runs to completion and saves its rotated
//     token, even when its live state is dropped from memory meanwhile: only
//     the owner's lifetime (Client.Close) ends it. A live state is dropped
//     only when nothing of it is in flight or unsaved, and a caller holding
//     a dropped state is sent to the state that replaced it.
//   - A rotated refresh token is saved to the Store before the new access
//     token is handed to anyone; if the save fails, the previous record
//     stays and the new tokens are saved before any later redemption.
//   - A sign-out wins over any refresh: with a RefreshLocker store both
//     take the session's refresh lock; with a Store that has none, a
//     sign-out leaves a marker that a refresh checks after its save.
package sessions
