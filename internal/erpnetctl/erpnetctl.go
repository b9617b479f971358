// Package erpnetctl holds the knobs of an erpnettest.Server that only the
// SDK's own tests turn, so that the public kit stays lean: ID-token
// tampering, grant counts, the Domain API's call log, token records, sign-in
// without the form, and discovery variants. Package erpnettest registers the
// implementation in its init; a test imports both:
//
//	srv := erpnettest.NewServer(t)
//	erpnetctl.Of(srv).TamperNextIDToken(erpnetctl.Tamper{BadSignature: true})
package erpnetctl

import (
	"net/http"
	"net/url"
	"time"
)

// Controls are the test-only controls of one erpnettest.Server. They are
// safe for concurrent use.
type Controls interface {
	// TamperNextIDToken corrupts the next ID token the token endpoint issues.
	TamperNextIDToken(Tamper)
	// Grants returns how many token requests carried grant_type=g, refused
	// and faulted ones included.
	Grants(g string) int
	// ResetCounts zeroes the grant counts and the server's Requests counts.
	ResetCounts()
	// APICalls returns the Domain API's call log (the last 10,000 calls).
	APICalls() []APICall
	// ResetAPICalls empties the call log.
	ResetAPICalls()
	// Tokens describes every token the server remembers, oldest first;
	// the server keeps only hashes of token values.
	Tokens() []TokenRecord
	// AutoSignIn makes the authorize endpoint sign user in without the
	// form ("" shows the form again): a fresh sign-in when another user's
	// is in the browser or with prompt=login or an exceeded max_age.
	AutoSignIn(user string)
	// Set replaces the server's Knobs.
	Set(Knobs)
	// Authorize drives hc (a client with a cookie jar that follows no
	// redirects) from the app's sign-in URL through the sign-in form as
	// user, as Server.SignIn does, and returns the identity server's
	// redirect back to the app without following it.
	Authorize(hc *http.Client, appURL, user string) (*url.URL, error)
}

// Knobs are discovery and token-response variants; the zero value is the
// server's usual behaviour.
type Knobs struct {
	// NoRevocation leaves revocation_endpoint out of discovery; the
	// endpoint answers 404.
	NoRevocation bool
	// OmitTokenType leaves token_type out of token responses, as ERP.net
	// sometimes does.
	OmitTokenType bool
	// AuthMethods is token_endpoint_auth_methods_supported; nil means
	// client_secret_basic and client_secret_post (both are accepted always).
	AuthMethods []string
}

// Tamper corrupts an ID token, for attack tests of ID token verification.
type Tamper struct {
	// Claims overrides or adds claims; a nil value deletes one.
	Claims map[string]any
	// Alg is "" (RS256), "none" (unsigned, empty signature) or "HS256"
	// (keyed with the client secret presented, "x" for a public client).
	Alg string
	// BadSignature changes the signature; UnknownKey signs with a key the
	// JWKS does not publish.
	BadSignature, UnknownKey bool
}

// APICall is one Domain API request.
type APICall struct {
	Time              time.Time // by the server's clock
	Method, Path      string    // Path without the query
	Kind              string    // "user", "system", "pat", "sat"; "" unauthenticated
	Subject, ClientID string    // who the token acts as, and its application
	Via               string    // "bearer", "x-api-key" or "api-key"
	Status            int
	Session           string // the ERP.net API session's id, "" when none
	NewSession        bool   // this call opened it
}

// TokenRecord describes an issued token without its value.
type TokenRecord struct {
	Kind                   string // "access_token", "refresh_token" or "reference_token"
	ClientID, Subject, SID string
	Family, JTI            string // refresh token family; access token jti
	Scopes                 []string
	IssuedAt, ExpiresAt    time.Time
	Revoked                bool // a rotated refresh token counts as revoked
}

var of func(srv any) Controls

// Register is called by package erpnettest's init.
func Register(f func(srv any) Controls) { of = f }

// Of returns the controls of srv, an *erpnettest.Server.
func Of(srv any) Controls { return of(srv) }
