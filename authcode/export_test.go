package authcode

import (
	"context"
	"testing"

	"github.com/erpnetgo/auth/authcode/internal/sessions"
)

// adopt saves rec as session id without a sign-in, as if discovery had
// named rec's issuer (benchmarks and tests of the session path).
func (c *Client) adopt(tb testing.TB, id string, rec *sessions.Record) *Session {
	tb.Helper()
	p := storePrefix(rec.Issuer, c.cfg.ClientID)
	c.prefix.CompareAndSwap(nil, &p)
	sn, err := c.sessions.Create(context.Background(), id, rec)
	if err != nil {
		tb.Fatal(err)
	}
	return newSession(sn)
}
