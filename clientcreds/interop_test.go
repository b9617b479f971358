package clientcreds_test

import (
	"context"
	"github.com/erpnetgo/auth"
	"golang.org/x/oauth2"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/erpnetgo/auth/clientcreds"
	"github.com/erpnetgo/auth/internal/oidctest"
)

// TestInteropOIDCProvider gets service tokens from the OpenID Certified
// oidc-provider package with both client authentication styles, for a
// client_id containing '/' and a secret full of characters that must be
// form-urlencoded, and verifies the JWT access token against the provider's
// JWKS.
func TestInteropOIDCProvider(t *testing.T) {
	const secret = "s3cr:et%+/=&?"
	clients := []oidctest.Client{
		{ID: "com.example/basic", Secret: secret, AuthMethod: "client_secret_basic", GrantTypes: []string{"client_credentials"}, Scope: "read update"},
		{ID: "com.example/post", Secret: secret, AuthMethod: "client_secret_post", GrantTypes: []string{"client_credentials"}, Scope: "read update"},
	}
	p := oidctest.Start(t, oidctest.Config{Clients: clients})
	ctx := context.Background()
	keys := oidc.NewRemoteKeySet(ctx, p.Issuer()+"/jwks")
	for _, c := range clients {
		t.Run(c.AuthMethod, func(t *testing.T) {
			style := oauth2.AuthStyleInHeader
			if c.AuthMethod == "client_secret_post" {
				style = oauth2.AuthStyleInParams
			}
			src, err := clientcreds.New(clientcreds.Config{Authority: p.Issuer(), ClientID: c.ID, ClientSecret: c.Secret,
				Scopes: []string{"read"}, AuthStyle: style, Retry: fast})
			require.NoError(t, err)
			defer src.Close()
			tok, err := src.Token(ctx)
			require.NoError(t, err)
			assert.WithinDuration(t, time.Now().Add(10*time.Minute), tok.Expiry, time.Minute)

			payload, err := keys.VerifySignature(ctx, tok.AccessToken)
			require.NoError(t, err, "signature against the provider's JWKS")
			parsed, err := jwt.ParseSigned(tok.AccessToken, []jose.SignatureAlgorithm{jose.RS256})
			require.NoError(t, err)
			var claims jwt.Claims
			var extra struct {
				ClientID string `json:"client_id"`
				Scope    string `json:"scope"`
			}
			require.NoError(t, parsed.UnsafeClaimsWithoutVerification(&claims, &extra)) // signature verified above
			require.NotEmpty(t, payload)
			require.NoError(t, claims.Validate(jwt.Expected{Issuer: p.Issuer(), AnyAudience: jwt.Audience{p.Resource()}, Time: time.Now()}))
			assert.Equal(t, c.ID, extra.ClientID)
			assert.Equal(t, "read", extra.Scope)

			// The auto style picks what discovery allows; the wrong secret is
			// a misconfiguration, reported without the secret.
			bad, err := clientcreds.New(clientcreds.Config{Authority: p.Issuer(), ClientID: c.ID, ClientSecret: secret + "x", Retry: fast})
			require.NoError(t, err)
			defer bad.Close()
			_, err = bad.Token(ctx)
			require.ErrorIs(t, err, auth.ErrMisconfigured)
			assert.NotContains(t, err.Error(), secret)
		})
	}
}
