package sessions

import (
	"context"
	"errors"

	"golang.org/x/oauth2"

	"github.com/erpnetgo/auth"
)

// fetch is the token cache's fetch: it redeems the session's refresh token
// (Config.Redeem), writes the rotated tokens to the Store, and only then
// returns the new access token. It holds the session's refresh lock and
// first reloads the record, so that when another replica has already
// refreshed, its tokens are used without a token request.
//
// ctx is the owner's (Client.Close ends it), never a caller's: a refresh
// runs to completion even when its state leaves the live set.
func (st *State) fetch(ctx context.Context) (*oauth2.Token, error) {
	if err := st.deadErr(); err != nil {
		return nil, err
	}
	unlock, err := st.e.locker.LockRefresh(ctx, st.key)
	if err != nil {
		return nil, &auth.Error{Op: "session refresh lock", Kind: auth.ErrTemporary, Err: err}
	}
	defer unlock()
	if err := st.deadErr(); err != nil {
		return nil, err // signed out while this waited for the lock
	}
	cur, tok, err := st.reconcile(ctx)
	if tok != nil || err != nil {
		return tok, err
	}
	if cur.RefreshToken == "" {
		err := reauth("the access token expired and the session has no refresh token (offline_access not granted)")
		st.kill(err)
		return nil, err
	}
	next, err := st.e.cfg.Redeem(ctx, cur)
	if err != nil {
		if errors.Is(err, auth.ErrReauthRequired) {
			st.end(ctx, err, cur)
		}
		return nil, err
	}
	if err := st.persist(ctx, next); err != nil {
		return nil, err
	}
	return next.Token(), nil
}

// reconcile brings st up to the Store before a redemption, under the
// refresh lock. It returns the record to redeem, or a token when none is
// needed (another process refreshed, or unsaved tokens were saved now).
func (st *State) reconcile(ctx context.Context) (*Record, *oauth2.Token, error) {
	st.mu.Lock()
	cur, unsaved, en := st.rec, st.unsaved, st.cache.Peek()
	st.mu.Unlock()
	if unsaved == nil && en != nil && en.Fresh(st.e.clock.Now()) {
		// A newer record reached this state while this refresh waited
		// (a request loaded what another replica saved): nothing to redeem.
		return nil, en.Token, nil
	}
	latest, err := st.reload(ctx)
	if err != nil {
		return nil, nil, err
	}
	if unsaved != nil && latest.Ver < unsaved.Ver {
		// An earlier refresh rotated the refresh token but could not save
		// it: save it now rather than redeem the old (now dead) one.
		if err := st.persist(ctx, unsaved); err != nil {
			return nil, nil, err
		}
		st.e.log.Info("authcode: saved refreshed session after an earlier store failure", st.e.user(unsaved.Subject)...)
		if st.usable(unsaved) {
			return nil, unsaved.Token(), nil
		}
		return unsaved, nil, nil
	}
	if latest.Ver > cur.Ver || unsaved != nil {
		// Another process refreshed (or saved our unsaved tokens) already.
		st.commit(latest)
		cur = latest
		if st.usable(latest) {
			return nil, latest.Token(), nil
		}
	}
	return cur, nil, nil
}

// reload loads st's record from the Store. A session the Store no longer
// holds is over: signed out, or ended by a replica.
func (st *State) reload(ctx context.Context) (*Record, error) {
	rec, _, err := st.e.src.load(ctx, st.key, st.snap.Load())
	switch {
	case errors.Is(err, ErrNotFound):
		err = reauth("the session no longer exists (signed out or expired)")
		st.kill(err)
		return nil, err
	case errors.Is(err, errUndecodable):
		err = reauth("the session in the store cannot be read")
		st.kill(err)
		return nil, err
	case err != nil:
		return nil, &auth.Error{Op: "session store load", Kind: auth.ErrTemporary, Err: err}
	}
	return rec, nil
}

// persist saves refreshed tokens. When the save fails they are kept as
// unsaved, to be saved before any later redemption (the refresh token they
// replaced is dead). With a Store that has no refresh lock, a sign-out
// elsewhere may have happened while this refresh ran: its marker, found
// after the save, deletes the session again, so the sign-out wins.
func (st *State) persist(ctx context.Context, rec *Record) error {
	e := st.e
	if err := e.src.save(ctx, st.key, rec, e.cfg.TTL); err != nil {
		st.mu.Lock()
		st.unsaved = rec
		st.mu.Unlock()
		e.log.Error("authcode: refreshed tokens could not be saved; keeping the previous session", "error", err.Error())
		return &auth.Error{Op: "session store save", Kind: auth.ErrTemporary, Err: err}
	}
	if e.markers {
		ek, err := e.endedKey(ctx, st.id)
		if err == nil {
			_, err = e.store.Load(ctx, ek)
		}
		switch {
		case err == nil:
			err := reauth("the user signed out")
			st.kill(err)
			if derr := e.store.Delete(context.WithoutCancel(ctx), st.key); derr != nil {
				e.log.Error("authcode: cannot delete a session signed out during its refresh", "error", derr.Error())
			}
			return err
		case !errors.Is(err, ErrNotFound):
			e.log.Warn("authcode: cannot check for a sign-out during a refresh", "error", err.Error())
		}
	}
	st.commit(rec)
	return nil
}

// end ends a session whose refresh token the identity server refused: it
// is killed here and deleted from the Store, so no replica redeems it
// again.
func (st *State) end(ctx context.Context, err error, cur *Record) {
	e := st.e
	st.kill(err)
	e.log.Info("authcode: refresh token rejected; the user must sign in again", e.user(cur.Subject)...)
	e.cfg.Report.Emit(ctx, auth.Event{Name: "reauth.required", User: cur.Subject, Err: err})
	if derr := e.store.Delete(context.WithoutCancel(ctx), st.key); derr != nil {
		e.log.Warn("authcode: cannot delete the dead session", "error", derr.Error())
	}
}
