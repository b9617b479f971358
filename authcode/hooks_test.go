package authcode

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/erpnetgo/auth/erpnettest"
	"github.com/erpnetgo/auth/internal/testutil"
)

// A sign-in, a forced refresh and a sign-out, as the hooks and the log
// see them: the events are counted once each, and no user name appears
// anywhere unless the app opted in.
func TestHooksSignInRefreshSignOut(t *testing.T) {
	for _, optIn := range []bool{false, true} {
		var rec testutil.Recorder
		e := newEnv(t, withClient(func(c *Config) { c.Hooks = rec.Hooks(optIn); c.LogUsers = optIn }))
		b := e.browser()
		e.mustSignIn(b, "")
		s := e.session(b)
		e.c.Invalidate(s)
		tok, err := e.c.TokenSource(context.Background(), s).Token()
		require.NoError(t, err)
		require.NoError(t, e.c.SignOutSession(context.Background(), s))

		assert.Equal(t, 1, rec.Count("signin.completed"))
		assert.Equal(t, 1, rec.Count("signout.completed"))
		assert.Equal(t, 0, rec.Count("signin.failed"))
		assert.Equal(t, 2, rec.Count("token.issued"), "the code exchange and one refresh")
		assert.Equal(t, 1, rec.Calls("revocation"))
		grants := map[string]int{}
		for _, ev := range rec.Events() {
			assert.Equal(t, "authcode", ev.Flow)
			if ev.Name == "token.issued" {
				grants[ev.Grant]++
			}
			if ev.Name == "signin.completed" || ev.Name == "signout.completed" {
				if optIn {
					assert.Equal(t, erpnettest.Demo.Alice, ev.User)
				} else {
					assert.Empty(t, ev.User)
				}
			}
		}
		assert.Equal(t, map[string]int{"authorization_code": 1, "refresh_token": 1}, grants)

		dump, logs := rec.Dump(), e.logs.String()
		for _, secret := range []string{tok.AccessToken, erpnettest.Demo.WebAppSecret} {
			assert.False(t, strings.Contains(dump, secret), "a secret reached a hook")
			assert.False(t, strings.Contains(logs, secret), "a secret reached the log")
		}
		if !optIn {
			assert.False(t, strings.Contains(dump, erpnettest.Demo.Alice), "a user name reached a hook:\n%s", dump)
			assert.False(t, strings.Contains(logs, `"subject"`), "a user name reached the log:\n%s", logs)
		} else {
			assert.Contains(t, logs, `"subject":"`+erpnettest.Demo.Alice+`"`)
		}
	}
}

// A refresh token the server refused ends the session and is reported.
func TestHooksReauthRequired(t *testing.T) {
	var rec testutil.Recorder
	e := newEnv(t, withClient(func(c *Config) { c.Hooks = rec.Hooks(false) }))
	b := e.browser()
	e.mustSignIn(b, "")
	s := e.session(b)
	e.idp.RevokeUser(erpnettest.Demo.Alice)
	e.c.Invalidate(s)
	_, err := e.c.TokenSource(context.Background(), s).Token()
	require.Error(t, err)
	assert.Equal(t, 1, rec.Count("reauth.required"))
	assert.Equal(t, 1, rec.Count("token.failed"))
}
