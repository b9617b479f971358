package clientcreds_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/erpnetgo/auth"
	"github.com/erpnetgo/auth/clientcreds"
	"github.com/erpnetgo/auth/internal/oidctest"
	"github.com/erpnetgo/auth/internal/testutil"
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

// TestInteropERPNetStyle gets service tokens from oidc-provider laid out as
// ERP.net serves its identity server (under /id, IdentityServer's
// /connect/* routes, ERP.net auto-discovery at the root), given only the
// instance root as Authority: the Source finds the identity server and the
// Domain API through /sys/auto-discovery, fetches the token from
// /id/connect/token once, the token verifies against the JWKS at
// /id/.well-known/openid-configuration/jwks, and Client calls the Domain
// API root that auto-discovery named with it.
func TestInteropERPNetStyle(t *testing.T) {
	const id, secret = "com.example.erpnet/worker", "w:o%r+k/e=r"
	p := oidctest.Start(t, oidctest.Config{ERPNetStyle: true, Clients: []oidctest.Client{
		{ID: id, Secret: secret, GrantTypes: []string{"client_credentials"}, Scope: "read update"},
	}})
	require.Equal(t, p.Root()+"/id", p.Issuer())
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	log := &testutil.PathLog{Base: tr}
	src, err := clientcreds.New(clientcreds.Config{
		Authority:    p.Root(),
		ClientID:     id,
		ClientSecret: secret,
		Scopes:       []string{"read", "update"},
		HTTPClient:   &http.Client{Transport: log, Timeout: 20 * time.Second},
		Transport:    tr,
		Retry:        fast,
	})
	require.NoError(t, err)
	defer src.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	api, err := src.DomainAPI(ctx)
	require.NoError(t, err)
	assert.Equal(t, p.DomainAPI(), api)
	assert.Equal(t, p.Root()+"/api/domain/odata/", api)
	assert.Equal(t, []string{
		"GET /sys/auto-discovery 200",
		"GET /id/.well-known/openid-configuration 200",
	}, log.List())

	tok, err := src.Token(ctx)
	require.NoError(t, err)
	tok2, err := src.Token(ctx)
	require.NoError(t, err)
	assert.Equal(t, tok.AccessToken, tok2.AccessToken)
	assert.Equal(t, []string{
		"GET /sys/auto-discovery 200",
		"GET /id/.well-known/openid-configuration 200",
		"POST /id/connect/token 200",
	}, log.List(), "one token request, at the endpoint discovery names")

	keys := oidc.NewRemoteKeySet(oidc.ClientContext(ctx, &http.Client{Transport: tr}), p.Issuer()+"/.well-known/openid-configuration/jwks")
	_, err = keys.VerifySignature(ctx, tok.AccessToken)
	require.NoError(t, err, "signature against the JWKS at ERP.net's path")
	parsed, err := jwt.ParseSigned(tok.AccessToken, []jose.SignatureAlgorithm{jose.RS256})
	require.NoError(t, err)
	var claims jwt.Claims
	var extra struct {
		ClientID string `json:"client_id"`
		Scope    string `json:"scope"`
	}
	require.NoError(t, parsed.UnsafeClaimsWithoutVerification(&claims, &extra)) // signature verified above
	require.NoError(t, claims.Validate(jwt.Expected{Issuer: p.Issuer(), AnyAudience: jwt.Audience{p.Resource()}, Time: time.Now()}))
	assert.Equal(t, id, extra.ClientID)
	assert.Equal(t, "read update", extra.Scope)

	// The service token reaches the Domain API (whose stand-in answers 401
	// without a Bearer token).
	resp, err := src.Client(ctx).Get(api + "Crm_Sales_Customers?$top=1")
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	unauth, err := (&http.Client{Transport: tr}).Get(api + "Crm_Sales_Customers?$top=1")
	require.NoError(t, err)
	unauth.Body.Close()
	assert.Equal(t, http.StatusUnauthorized, unauth.StatusCode, "the stand-in refuses a request without a token")
	assert.Len(t, log.List(), 3, "no further token request")
	for _, l := range log.List() {
		path := strings.Fields(l)[1]
		assert.True(t, path == "/sys/auto-discovery" || strings.HasPrefix(path, "/id/"), l)
	}
}
