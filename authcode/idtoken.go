package authcode

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"

	"github.com/erpnetgo/auth"
	"github.com/erpnetgo/auth/internal/flight"
	"github.com/erpnetgo/auth/internal/httpx"
	"github.com/erpnetgo/auth/internal/retry"
)

// Checks of ID tokens beyond go-oidc's verifier.
const (
	// idTokenLeeway is the clock skew tolerated between the identity server
	// and this process: an ID token whose iat (or auth_time) lies further in
	// the future than this is rejected, as is a max_age exceeded by more.
	idTokenLeeway = 5 * time.Minute
	// jwksCooldown is the least time between two JWKS refetches: an ID token
	// whose key the cached JWKS lacks (a key rotation, or a forged kid)
	// refetches it at most once per cooldown, on the Client's clock.
	jwksCooldown = time.Minute
)

// idClaims are the ID token claims go-oidc's verifier does not check.
type idClaims struct {
	AZP      *string          `json:"azp"`
	AuthTime *json.RawMessage `json:"auth_time"`
}

// checkIDToken applies the checks of OpenID Connect Core §3.1.3.7 that
// go-oidc's Verify skips (it checks signature, alg, iss, that aud contains
// the client_id, exp and nbf):
//
//   - with several audiences, azp must be present; when present (even with
//     one audience) it must be the client_id. Further audiences are trusted
//     only when the token names this client as its authorized party;
//   - iat must be present and at most idTokenLeeway in the future;
//   - auth_time, when present, at most idTokenLeeway in the future; and
//     when the authorization request set max_age ([Config.AuthParams]),
//     present and no older than max_age (plus the leeway).
//
// The nonce, at_hash and sub are checked by the caller.
func (c *Client) checkIDToken(idt *oidc.IDToken, signIn bool) error {
	var cl idClaims
	if err := idt.Claims(&cl); err != nil {
		return fmt.Errorf("%w: malformed azp or auth_time claim", ErrInvalidIDToken)
	}
	switch {
	case cl.AZP != nil && *cl.AZP != c.cfg.ClientID:
		return fmt.Errorf("%w: azp names another client", ErrInvalidIDToken)
	case len(idt.Audience) > 1 && cl.AZP == nil:
		return fmt.Errorf("%w: several audiences and no azp claim", ErrInvalidIDToken)
	}
	now := c.now()
	switch {
	case idt.IssuedAt.IsZero():
		return fmt.Errorf("%w: no iat claim", ErrInvalidIDToken)
	case idt.IssuedAt.After(now.Add(idTokenLeeway)):
		return fmt.Errorf("%w: iat is in the future (beyond %s of clock skew)", ErrInvalidIDToken, idTokenLeeway)
	}
	var authTime time.Time
	if cl.AuthTime != nil {
		sec, err := strconv.ParseFloat(string(*cl.AuthTime), 64)
		if err != nil {
			return fmt.Errorf("%w: auth_time is not a number", ErrInvalidIDToken)
		}
		authTime = time.Unix(int64(sec), 0)
		if authTime.After(now.Add(idTokenLeeway)) {
			return fmt.Errorf("%w: auth_time is in the future (beyond %s of clock skew)", ErrInvalidIDToken, idTokenLeeway)
		}
	}
	if ma := c.cfg.AuthParams.Get("max_age"); signIn && ma != "" {
		if maxAge, err := strconv.ParseInt(ma, 10, 64); err == nil && maxAge >= 0 {
			switch {
			case authTime.IsZero():
				return fmt.Errorf("%w: max_age was requested but there is no auth_time claim", ErrInvalidIDToken)
			case now.Sub(authTime) > time.Duration(maxAge)*time.Second+idTokenLeeway:
				return fmt.Errorf("%w: auth_time is older than the requested max_age", ErrInvalidIDToken)
			}
		}
	}
	return nil
}

// checkRefreshedClaims applies OpenID Connect Core §12.2 to an ID token from
// a refresh, against the claims of the sign-in's ID token: same aud, same
// azp (or none when the first had none) and, when present, same auth_time.
// The subject is compared by the caller.
func checkRefreshedClaims(idt *oidc.IDToken, orig json.RawMessage) error {
	if len(orig) == 0 {
		return nil // a session from before claims were kept: nothing to compare
	}
	var was struct {
		Aud      audience         `json:"aud"`
		AZP      *string          `json:"azp"`
		AuthTime *json.RawMessage `json:"auth_time"`
	}
	if err := json.Unmarshal(orig, &was); err != nil {
		return nil
	}
	var now idClaims
	if err := idt.Claims(&now); err != nil {
		return fmt.Errorf("%w: malformed azp or auth_time claim", ErrInvalidIDToken)
	}
	a, b := slices.Clone(idt.Audience), slices.Clone([]string(was.Aud))
	slices.Sort(a)
	slices.Sort(b)
	switch {
	case !slices.Equal(a, b):
		return fmt.Errorf("%w: the refreshed ID token has other audiences than the sign-in's", ErrInvalidIDToken)
	case (was.AZP == nil) != (now.AZP == nil) || (was.AZP != nil && *was.AZP != *now.AZP):
		return fmt.Errorf("%w: the refreshed ID token's azp differs from the sign-in's", ErrInvalidIDToken)
	case was.AuthTime != nil && now.AuthTime != nil && !bytes.Equal(*was.AuthTime, *now.AuthTime):
		return fmt.Errorf("%w: the refreshed ID token's auth_time differs from the sign-in's", ErrInvalidIDToken)
	}
	return nil
}

// audience is the aud claim: a string or an array of strings.
type audience []string

func (a *audience) UnmarshalJSON(b []byte) error {
	var s string
	if json.Unmarshal(b, &s) == nil {
		*a = audience{s}
		return nil
	}
	var l []string
	if err := json.Unmarshal(b, &l); err != nil {
		return err
	}
	*a = l
	return nil
}

// keySet is the identity server's JWKS, cached, for go-oidc's verifier
// (it implements oidc.KeySet). It is fetched on first use; a token that no
// cached key verifies refetches it, at most once per jwksCooldown on the
// Client's clock, so tokens with made-up key ids cannot make the Client
// hammer the identity server. Fetches are bound to the Client: Close ends
// them, and waits for them.
type keySet struct {
	c   *Client
	uri string

	mu          sync.Mutex
	keys        []jose.JSONWebKey
	have        bool      // a fetch succeeded once
	lastRefetch time.Time // of the last refetch (not the first fetch)
	flight      flight.Group[[]jose.JSONWebKey]
}

// errNoKey is returned when no key of the JWKS verifies the signature.
var errNoKey = errors.New("no key of the identity server's JWKS verifies the signature")

// jwsAlgs are the algorithms a JWS is parsed with here; the verifier has
// already restricted them to [Config.IDTokenSigningAlgs].
var jwsAlgs = []jose.SignatureAlgorithm{jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512,
	jose.ES256, jose.ES384, jose.ES512, jose.EdDSA}

// VerifySignature implements oidc.KeySet.
func (k *keySet) VerifySignature(ctx context.Context, jwt string) ([]byte, error) {
	jws, err := jose.ParseSignedCompact(jwt, jwsAlgs)
	if err != nil {
		return nil, fmt.Errorf("malformed JWS: %v", err)
	}
	if len(jws.Signatures) != 1 {
		return nil, errors.New("the JWS must have exactly one signature")
	}
	kid := jws.Signatures[0].Header.KeyID
	k.mu.Lock()
	keys, have := k.keys, k.have
	k.mu.Unlock()
	if !have {
		if keys, err = k.fetch(ctx, false); err != nil {
			return nil, err
		}
	}
	if payload, ok := verifyWith(jws, keys, kid); ok {
		return payload, nil
	}
	// No cached key verifies: the server may have rotated its keys.
	keys, err = k.fetch(ctx, true)
	if err != nil {
		return nil, err
	}
	if payload, ok := verifyWith(jws, keys, kid); ok {
		return payload, nil
	}
	return nil, errNoKey
}

func verifyWith(jws *jose.JSONWebSignature, keys []jose.JSONWebKey, kid string) ([]byte, bool) {
	for i := range keys {
		if (kid != "" && keys[i].KeyID != kid) || keys[i].Use == "enc" {
			continue
		}
		if payload, err := jws.Verify(&keys[i]); err == nil {
			return payload, true
		}
	}
	return nil, false
}

// fetch returns the keys after a fetch, joining one in flight. A refetch
// (refetch true) within jwksCooldown of the previous one is not made: it
// fails with errNoKey. ctx bounds the wait only; the fetch itself is
// bound to the Client.
func (k *keySet) fetch(ctx context.Context, refetch bool) ([]jose.JSONWebKey, error) {
	k.mu.Lock()
	f := k.flight.Current()
	if f == nil {
		if k.have && !refetch {
			keys := k.keys
			k.mu.Unlock()
			return keys, nil // another caller fetched them meanwhile
		}
		now := k.c.now()
		if refetch {
			if !k.lastRefetch.IsZero() && now.Sub(k.lastRefetch) < jwksCooldown {
				k.mu.Unlock()
				return nil, fmt.Errorf("%w (the JWKS was refetched less than %s ago)", errNoKey, jwksCooldown)
			}
			k.lastRefetch = now
		}
		f = k.flight.Start(&k.mu, k.c.life, k.get, func(keys []jose.JSONWebKey, err error) ([]jose.JSONWebKey, error) {
			if err == nil {
				k.keys, k.have = keys, true
			}
			return keys, err
		})
	}
	k.mu.Unlock()
	return f.Wait(ctx)
}

// get downloads and parses the JWKS. Keys go-jose cannot parse (other key
// types, say) are skipped rather than failing the whole set.
func (k *keySet) get(ctx context.Context) (keys []jose.JSONWebKey, err error) {
	ctx, end := k.c.rep.Call(ctx, "jwks")
	defer func() { end(err) }()
	resp, attempts, err := httpx.Send(ctx, httpx.Request{
		Op: "jwks", Client: k.c.hc, Policy: retry.Policy{},
		Build: func(ctx context.Context) (*http.Request, error) {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, k.uri, nil)
			if err == nil {
				req.Header.Set("Accept", "application/json")
			}
			return req, err
		},
	})
	if err != nil {
		return nil, err
	}
	if resp.Status != http.StatusOK {
		kind := auth.ErrMisconfigured
		if retry.Retryable(resp.Status) {
			kind = auth.ErrTemporary
		}
		return nil, &auth.Error{Op: "jwks", StatusCode: resp.Status, Attempts: attempts, Kind: kind,
			Err: fmt.Errorf("GET %s", k.uri)}
	}
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(resp.Body, &set); err != nil {
		return nil, &auth.Error{Op: "jwks", StatusCode: resp.Status, Kind: auth.ErrMisconfigured,
			Err: fmt.Errorf("GET %s: response is not a JWKS", k.uri)}
	}
	keys = make([]jose.JSONWebKey, 0, len(set.Keys))
	for _, raw := range set.Keys {
		var key jose.JSONWebKey
		if json.Unmarshal(raw, &key) == nil && key.Valid() && key.IsPublic() {
			keys = append(keys, key)
		}
	}
	return keys, nil
}
