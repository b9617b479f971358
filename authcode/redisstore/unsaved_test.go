package redisstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/erpnetgo/auth"
	"github.com/erpnetgo/auth/authcode"
)

// TestUnsavedRefreshIsNeverResurrected: a replica redeems a refresh token
// but cannot save the rotated tokens (Redis goes down). It keeps them
// unsaved and hands none out. If Redis comes back and another replica
// refreshes the session first, that replica can only redeem the dead
// refresh token still in the Store (invalid_grant: the sign-in is revoked,
// which is the price of a failed write). What must never happen is the
// first replica saving its stale copy over the deleted session and handing
// out revoked tokens: it must see the session is gone.
func TestUnsavedRefreshIsNeverResurrected(t *testing.T) {
	t.Parallel() // waits on Redis and processes: overlaps with the others
	w, cookie, r, sess, err := refreshDuringOutage(t)
	ctx := context.Background()
	require.ErrorIs(t, err, auth.ErrTemporary, "the failed save surfaces")
	w.redis.Restart()
	time.Sleep(1500 * time.Millisecond) // r's unreleased lock expires

	other := w.replica(t, clockOffset, time.Second)
	_, err = sessionToken(ctx, other.client, cookie)
	t.Logf("the other replica, redeeming the refresh token left in the Store: %v", err)

	_, err = r.client.TokenSource(ctx, sess).Token()
	require.ErrorIs(t, err, auth.ErrReauthRequired, "r must not hand out its unsaved, revoked tokens")
	_, err = w.replica(t, 0, 0).client.UserSession(request(ctx, cookie))
	assert.ErrorIs(t, err, authcode.ErrNoSession, "the deleted session must not come back")
}
