package authcode

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/erpnetgo/auth/internal/erpnetctl"
)

const otherClient = "com.example/other"

// claimCase is an ID token tamper that must be refused, and the cause the
// Client logs. claims gets the Client's clock at the time of the token.
type claimCase struct {
	name   string
	claims func(now time.Time) map[string]any
	cause  string
}

func fixed(m map[string]any) func(time.Time) map[string]any {
	return func(time.Time) map[string]any { return m }
}

// idClaimCases are ID tokens whose signature, iss, exp and nbf are fine
// (go-oidc's Verify accepts them) but that OpenID Connect Core §3.1.3.7
// rejects.
var idClaimCases = []claimCase{
	{"extra audience without azp", fixed(map[string]any{"aud": []string{webID, otherClient}}), "no azp"},
	{"extra audience, azp names another client", fixed(map[string]any{"aud": []string{webID, otherClient}, "azp": otherClient}), "azp names another client"},
	{"one audience, azp names another client", fixed(map[string]any{"azp": otherClient}), "azp names another client"},
	{"one audience, empty azp", fixed(map[string]any{"azp": ""}), "azp names another client"},
	{"iat a year in the future", func(now time.Time) map[string]any { return map[string]any{"iat": now.AddDate(1, 0, 0).Unix()} }, "iat is in the future"},
	{"iat beyond the leeway", func(now time.Time) map[string]any {
		return map[string]any{"iat": now.Add(idTokenLeeway + time.Minute).Unix()}
	}, "iat is in the future"},
	{"no iat", fixed(map[string]any{"iat": nil}), "no iat"},
	{"iat not a number", fixed(map[string]any{"iat": "soon"}), "ID token rejected"},
	{"auth_time in the future", func(now time.Time) map[string]any {
		return map[string]any{"auth_time": now.AddDate(1, 0, 0).Unix()}
	}, "auth_time is in the future"},
	{"auth_time not a number", fixed(map[string]any{"auth_time": "yesterday"}), "auth_time"},
}

func TestIDTokenClaimChecksAtSignIn(t *testing.T) {
	e := newEnv(t)
	for _, tc := range idClaimCases {
		t.Run(tc.name, func(t *testing.T) {
			b := e.browser()
			cb := e.authorize(b, e.startSignIn(b, ""))
			erpnetctl.Of(e.idp).TamperNextIDToken(erpnetctl.Tamper{Claims: tc.claims(e.clk.Now())})
			requireRefused(t, e, b.get(cb), http.StatusBadGateway, titleVerify, tc.cause)
			_, err := e.sessionErr(b)
			assert.ErrorIs(t, err, ErrNoSession)
		})
	}
	assert.Equal(t, 0, e.sessionsInStore())

	// What the checks allow: further audiences when azp is this client,
	// and an iat within the clock-skew leeway.
	for _, claims := range []map[string]any{
		{"aud": []string{webID, otherClient}, "azp": webID},
		{"azp": webID},
		{"iat": e.clk.Now().Add(idTokenLeeway - time.Minute).Unix()},
	} {
		b := e.browser()
		cb := e.authorize(b, e.startSignIn(b, ""))
		erpnetctl.Of(e.idp).TamperNextIDToken(erpnetctl.Tamper{Claims: claims})
		r := b.get(cb)
		require.Equal(t, http.StatusSeeOther, r.StatusCode, "%v: %s", claims, r.body)
	}
	assert.Equal(t, 3, e.sessionsInStore())
}

func TestIDTokenMaxAge(t *testing.T) {
	e := newEnv(t, withClient(func(c *Config) { c.AuthParams = url.Values{"max_age": {"600"}} }))
	for _, tc := range []claimCase{
		{"no auth_time", fixed(map[string]any{"auth_time": nil}), "no auth_time"},
		{"auth_time older than max_age", func(now time.Time) map[string]any {
			return map[string]any{"auth_time": now.Add(-time.Hour).Unix()}
		}, "older than the requested max_age"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := e.browser()
			cb := e.authorize(b, e.startSignIn(b, ""))
			erpnetctl.Of(e.idp).TamperNextIDToken(erpnetctl.Tamper{Claims: tc.claims(e.clk.Now())})
			requireRefused(t, e, b.get(cb), http.StatusBadGateway, titleVerify, tc.cause)
		})
	}
	// A sign-in that just happened satisfies max_age.
	e.mustSignIn(e.browser(), "")
}

// refreshWith signs a browser in, then refreshes its session with the
// next ID token tampered by claims (nil: untampered); it returns the ID
// token of the session before and after.
func refreshWith(t *testing.T, e *env, claims func(time.Time) map[string]any) (before, after string) {
	t.Helper()
	b := e.browser()
	e.mustSignIn(b, "")
	s := e.session(b)
	before = e.record(s).IDToken
	e.advance(time.Hour + time.Minute) // the access token expired
	if claims != nil {
		erpnetctl.Of(e.idp).TamperNextIDToken(erpnetctl.Tamper{Claims: claims(e.clk.Now())})
	}
	refreshes := erpnetctl.Of(e.idp).Grants("refresh_token")
	tok, err := e.c.TokenSource(context.Background(), s).Token()
	require.NoError(t, err, "the refreshed access token is used whatever its ID token")
	require.Equal(t, refreshes+1, erpnetctl.Of(e.idp).Grants("refresh_token"))
	rec := e.record(s)
	require.Equal(t, tok.AccessToken, rec.AccessToken)
	return before, rec.IDToken
}

func TestIDTokenClaimChecksOnRefresh(t *testing.T) {
	e := newEnv(t)
	// Control: an untampered refresh replaces the ID token.
	before, after := refreshWith(t, e, nil)
	require.NotEqual(t, before, after)

	// OpenID Connect Core §12.2: the refreshed token must also match the
	// sign-in's aud, azp and auth_time (the sign-in's had one audience and
	// no azp).
	cases := append(slices.Clone(idClaimCases),
		claimCase{"other audiences than at sign-in", fixed(map[string]any{"aud": []string{webID, otherClient}, "azp": webID}), "other audiences"},
		claimCase{"azp the sign-in did not have", fixed(map[string]any{"azp": webID}), "azp differs"},
		claimCase{"another auth_time", func(now time.Time) map[string]any {
			return map[string]any{"auth_time": now.Add(-time.Minute).Unix()}
		}, "auth_time differs"},
	)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			logged := len(e.logs.String())
			before, after := refreshWith(t, e, tc.claims)
			assert.Equal(t, before, after, "the rejected ID token is not kept; the sign-in's stays")
			logs := e.logs.String()[logged:]
			assert.Contains(t, logs, "refreshed ID token rejected")
			assert.Contains(t, logs, tc.cause)
		})
	}
}

func TestUnknownKeyIDsRefetchJWKSOncePerCooldown(t *testing.T) {
	e := newEnv(t)
	e.mustSignIn(e.browser(), "")
	require.Equal(t, 1, e.idp.Requests("jwks"))
	for range 5 {
		b := e.browser()
		cb := e.authorize(b, e.startSignIn(b, ""))
		erpnetctl.Of(e.idp).TamperNextIDToken(erpnetctl.Tamper{UnknownKey: true})
		requireRefused(t, e, b.get(cb), http.StatusBadGateway, titleVerify, "no key of the identity server's JWKS")
	}
	assert.Equal(t, 2, e.idp.Requests("jwks"), "5 unknown kids: one refetch")

	// Once the cooldown has passed on the Client's clock, a key rotation is
	// picked up by one more refetch.
	e.advance(jwksCooldown)
	e.idp.RotateKeys()
	e.mustSignIn(e.browser(), "")
	assert.Equal(t, 3, e.idp.Requests("jwks"))
	e.mustSignIn(e.browser(), "")
	assert.Equal(t, 3, e.idp.Requests("jwks"))
}
