package redisstore_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/erpnetgo/auth/authcode"
	"github.com/erpnetgo/auth/erpnettest"
	"github.com/erpnetgo/auth/internal/erpnetctl"
)

// A sign-out on replica A wins over a refresh running on replica B at that
// moment: the refresh cannot write the session back, and the old cookie
// works on neither replica afterwards.
func TestSignOutWinsOverRefreshInFlight(t *testing.T) {
	t.Parallel() // waits on Redis and processes: overlaps with the others
	w := newWorld(t)
	// Without a revocation endpoint B's redemption succeeds, so only the
	// refresh lock keeps it from saving the session after A deleted it.
	w.ds = erpnettest.NewServer(t, erpnettest.Config{AccessTokenLifetime: accessLifetime})
	erpnetctl.Of(w.ds).Set(erpnetctl.Knobs{NoRevocation: true})
	erpnetctl.Of(w.ds).AutoSignIn(erpnettest.Demo.Alice)
	a := w.replica(t, 0, 5*time.Second)
	b := w.replica(t, clockOffset, 5*time.Second) // B sees the token expired: it refreshes
	cookie := signIn(t, a).String()

	// B's refresh reaches the token endpoint and is held there.
	w.ds.InjectFault("token", erpnettest.Fault{Latency: 2 * time.Second})
	refreshes := erpnetctl.Of(w.ds).Grants("refresh_token")
	done := make(chan error, 1)
	go func() {
		_, err := sessionToken(context.Background(), b.client, cookie)
		done <- err
	}()
	deadline := time.Now().Add(30 * time.Second)
	for erpnetctl.Of(w.ds).Grants("refresh_token") == refreshes {
		if time.Now().After(deadline) {
			t.Fatal("replica B never started its refresh")
		}
		time.Sleep(5 * time.Millisecond)
	}

	// A signs the user out while B's refresh is in flight.
	sess, err := a.client.UserSession(request(context.Background(), cookie))
	require.NoError(t, err)
	require.NoError(t, a.client.SignOutSession(context.Background(), sess))
	<-done // B's refresh ended, whatever its result

	for name, rep := range map[string]*replica{"A": a, "B": b} {
		_, err := rep.client.UserSession(request(context.Background(), cookie))
		if !errors.Is(err, authcode.ErrNoSession) {
			t.Errorf("replica %s: the signed-out session is back (err = %v)", name, err)
		}
	}
}
