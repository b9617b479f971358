package authcode

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/erpnetgo/auth"
	"github.com/erpnetgo/auth/authcode/internal/sessions"
	"github.com/erpnetgo/auth/internal/discovery"
	"github.com/erpnetgo/auth/internal/redact"
)

// attempt is one sign-in in progress: what the callback must check. It
// travels sealed in its own cookie (web) or stays in memory (loopback).
type attempt struct {
	State    string `json:"s"`
	Nonce    string `json:"n"`
	Verifier string `json:"v"`
	Return   string `json:"r,omitempty"`
	Created  int64  `json:"t"` // unix seconds
}

// newAttempt makes an attempt with state and nonce from crypto/rand.Text
// (130 bits each) and a 256-bit PKCE verifier.
func (c *Client) newAttempt(returnPath string) *attempt {
	a := &attempt{
		State:    rand.Text() + c.stateTag(), // 26 base32 characters (130 bits), then a bound Client's instance tag
		Nonce:    rand.Text(),
		Verifier: oauth2.GenerateVerifier(), // 256 bits, RFC 7636 §4.1
		Return:   returnPath,
		Created:  c.now().Unix(),
	}
	if c.nonce != nil {
		a.Nonce = c.nonce()
	}
	return a
}

func (a *attempt) expired(now time.Time) bool {
	age := now.Sub(time.Unix(a.Created, 0))
	return age > attemptTTL || age < -time.Minute
}

// challenge is the PKCE S256 code_challenge of the verifier.
func (a *attempt) challenge() string { return oauth2.S256ChallengeFromVerifier(a.Verifier) }

// authURL builds the authorization request for a.
func (c *Client) authURL(doc *discovery.Document, a *attempt, redirectURI string) (string, error) {
	if doc.AuthorizationEndpoint == "" {
		return "", &auth.Error{Op: "discovery", Kind: auth.ErrMisconfigured,
			Err: errors.New("discovery document has no authorization_endpoint")}
	}
	if len(doc.CodeChallengeMethodsSupported) > 0 && !discovery.Supports(doc.CodeChallengeMethodsSupported, "S256") {
		return "", &auth.Error{Op: "discovery", Kind: auth.ErrMisconfigured,
			Err: errors.New("the identity server does not support PKCE with S256")}
	}
	u, err := url.Parse(doc.AuthorizationEndpoint)
	if err != nil {
		return "", &auth.Error{Op: "discovery", Kind: auth.ErrMisconfigured,
			Err: errors.New("authorization_endpoint is not a valid URL")}
	}
	q := u.Query()
	for k, v := range c.cfg.AuthParams {
		q[k] = append([]string(nil), v...)
	}
	q.Set("response_type", "code")
	q.Set("client_id", c.cfg.ClientID)
	q.Set("redirect_uri", redirectURI)
	q.Set("scope", c.scope)
	q.Set("state", a.State)
	q.Set("nonce", a.Nonce)
	q.Set("code_challenge", a.challenge())
	q.Set("code_challenge_method", "S256")
	if c.cfg.PromptLogin {
		prompt := strings.Fields(strings.Join(q["prompt"], " "))
		if !slices.Contains(prompt, "login") {
			prompt = append([]string{"login"}, prompt...)
		}
		q.Set("prompt", strings.Join(prompt, " "))
	}
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// attemptCookieName names the cookie of the attempt with this state. Each
// attempt has its own cookie, so sign-ins in several tabs do not clobber
// each other.
func (c *Client) attemptCookieName(state string) string {
	sum := sha256.Sum256([]byte("erpnetgo/authcode attempt\x00" + state))
	name := c.cfg.CookieName + "_signin_" + base64.RawURLEncoding.EncodeToString(sum[:16])
	if c.secure {
		name = "__Secure-" + name
	}
	return name
}

// setAttemptCookie stores a sealed in its own cookie.
func (c *Client) setAttemptCookie(w http.ResponseWriter, a *attempt) {
	name := c.attemptCookieName(a.State)
	pt, _ := json.Marshal(a)
	http.SetCookie(w, &http.Cookie{
		Name:     name,
		Value:    base64.RawURLEncoding.EncodeToString(c.sealer.Seal(pt, c.attemptAAD(name))),
		Path:     c.attemptCP,
		MaxAge:   int(attemptTTL / time.Second),
		HttpOnly: true,
		Secure:   c.secure,
		SameSite: http.SameSiteLaxMode,
	})
}

func (c *Client) clearCookie(w http.ResponseWriter, name, path string) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: "", Path: path, MaxAge: -1,
		HttpOnly: true, Secure: c.secure, SameSite: http.SameSiteLaxMode})
}

// readAttempt finds, opens and checks the attempt cookie for state. found
// reports whether a cookie for that state was present (so the caller clears
// it whatever the outcome).
func (c *Client) readAttempt(r *http.Request, state string) (a *attempt, found bool, err error) {
	if state == "" || len(state) > 512 {
		return nil, false, fmt.Errorf("%w: the callback has no valid state parameter", ErrInvalidState)
	}
	name := c.attemptCookieName(state)
	ck, err := r.Cookie(name)
	if err != nil {
		return nil, false, fmt.Errorf("%w: no sign-in attempt for this state in this browser (expired, already used, or started elsewhere)", ErrInvalidState)
	}
	raw, err := base64.RawURLEncoding.DecodeString(ck.Value)
	if err != nil {
		return nil, true, fmt.Errorf("%w: the sign-in attempt cookie is malformed", ErrInvalidState)
	}
	pt, err := c.sealer.Open(raw, c.attemptAAD(name))
	if err != nil {
		return nil, true, fmt.Errorf("%w: the sign-in attempt cookie cannot be opened (tampered, or sealed with another key)", ErrInvalidState)
	}
	a = new(attempt)
	if err := json.Unmarshal(pt, a); err != nil || a.State == "" || a.Verifier == "" || a.Nonce == "" {
		return nil, true, fmt.Errorf("%w: the sign-in attempt cookie is malformed", ErrInvalidState)
	}
	if subtle.ConstantTimeCompare([]byte(a.State), []byte(state)) != 1 {
		return nil, true, fmt.Errorf("%w: state does not match the sign-in attempt", ErrInvalidState)
	}
	if a.expired(c.now()) {
		return nil, true, ErrAttemptExpired
	}
	return a, true, nil
}

// markStateUsed records a's state as consumed in the Store, atomically
// ([Store.Add]), so that a replayed callback fails in this process and in
// every replica sharing the Store.
func (c *Client) markStateUsed(ctx context.Context, a *attempt) error {
	sum := sha256.Sum256([]byte(a.State))
	prefix, err := c.keyPrefix(ctx)
	if err != nil {
		return err
	}
	key := prefix + "state/" + hex.EncodeToString(sum[:])
	added, err := c.sessions.Store().Add(ctx, key, []byte{1}, attemptTTL+time.Minute)
	switch {
	case err != nil:
		return &auth.Error{Op: "session store save", Kind: auth.ErrTemporary, Err: err}
	case !added:
		return fmt.Errorf("%w: this callback was already used", ErrInvalidState)
	}
	return nil
}

// complete checks an authorization response (q) for attempt a, redeems the
// code with the PKCE verifier and verifies the ID token. It returns the new
// session record. It is the part the web callback and the loopback
// sign-in share.
func (c *Client) complete(ctx context.Context, doc *discovery.Document, a *attempt, q url.Values, redirectURI string) (*sessions.Record, error) {
	if code := q.Get("error"); code != "" {
		return nil, &auth.Error{Op: "authorization", Code: redact.Truncate(code, 64),
			Description: redact.Truncate(q.Get("error_description"), 256)}
	}
	iss, hasIss := q["iss"]
	switch {
	case hasIss && (len(iss) != 1 || iss[0] != doc.Issuer):
		return nil, ErrIssuerMismatch
	case !hasIss && doc.AuthorizationResponseIss:
		return nil, fmt.Errorf("%w: the identity server advertises the iss parameter but the response has none", ErrIssuerMismatch)
	}
	code := q.Get("code")
	if code == "" {
		return nil, fmt.Errorf("%w: the callback has neither code nor error", ErrInvalidState)
	}
	tok, err := c.tep.Exchange(ctx, doc, url.Values{
		"grant_type":    {"authorization_code"},
		"code":          {code},
		"redirect_uri":  {redirectURI},
		"code_verifier": {a.Verifier},
	})
	if err != nil {
		return nil, err
	}
	rawID, _ := tok.Extra("id_token").(string)
	if rawID == "" {
		return nil, fmt.Errorf("%w: the token response has no id_token (was the openid scope granted?)", ErrInvalidIDToken)
	}
	v, err := c.idVerifier(doc)
	if err != nil {
		return nil, err
	}
	idt, err := v.Verify(ctx, rawID)
	if err != nil {
		return nil, fmt.Errorf("%w: %s", ErrInvalidIDToken, redact.Scrub(err.Error(), rawID, tok.AccessToken))
	}
	if err := c.checkIDToken(idt, true); err != nil {
		return nil, err
	}
	if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(a.Nonce)) != 1 {
		return nil, fmt.Errorf("%w: nonce does not match the sign-in attempt", ErrInvalidIDToken)
	}
	if idt.AccessTokenHash != "" {
		if err := idt.VerifyAccessToken(tok.AccessToken); err != nil {
			return nil, fmt.Errorf("%w: at_hash does not match the access token", ErrInvalidIDToken)
		}
	}
	if idt.Subject == "" {
		return nil, fmt.Errorf("%w: no sub claim", ErrInvalidIDToken)
	}
	var claims json.RawMessage
	var prof struct {
		Name              string `json:"name"`
		PreferredUsername string `json:"preferred_username"`
		Email             string `json:"email"`
	}
	_ = idt.Claims(&claims)
	_ = idt.Claims(&prof)
	scopes := c.cfg.Scopes
	if sc, ok := tok.Extra("scope").(string); ok && sc != "" {
		scopes = strings.Fields(sc)
	}
	return sessions.NewRecord(sessions.Record{
		Issuer:       doc.Issuer,
		ClientID:     c.cfg.ClientID,
		Subject:      idt.Subject,
		Name:         prof.Name,
		Username:     prof.PreferredUsername,
		Email:        prof.Email,
		Claims:       claims,
		Scopes:       scopes,
		SignedInAt:   c.now(),
		AccessToken:  tok.AccessToken,
		TokenType:    tok.TokenType,
		Expiry:       tok.Expiry,
		RefreshToken: tok.RefreshToken,
		IDToken:      rawID,
	}), nil
}
