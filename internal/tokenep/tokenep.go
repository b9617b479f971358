// Package tokenep performs token-endpoint requests (RFC 6749 §4, §6) for
// every flow of the SDK: client authentication, retries through
// internal/httpx, response parsing with sane defaults, and error
// classification into the SDK's error kinds (auth.ErrTemporary, ...).
package tokenep

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/erpnetgo/auth"
	"github.com/erpnetgo/auth/internal/discovery"
	"github.com/erpnetgo/auth/internal/hook"
	"github.com/erpnetgo/auth/internal/httpx"
	"github.com/erpnetgo/auth/internal/redact"
	"github.com/erpnetgo/auth/internal/retry"
)

// DefaultLifetime is assumed for an access token whose response has no
// expires_in and which is not a JWT with an exp claim: short, so a token of
// unknown life is never trusted for long.
const DefaultLifetime = 5 * time.Minute

// Client is a confidential or public OAuth client talking to one token
// endpoint.
type Client struct {
	HTTPClient   *http.Client
	ClientID     string
	ClientSecret string // empty: public client, no secret is ever sent
	// SecretFile, if set, supplies the secret instead of ClientSecret, and
	// an invalid_client answer is sent once more when the file then holds
	// another secret (rotation without a restart).
	SecretFile *SecretFile
	// Style is how the secret is sent; oauth2.AuthStyleAutoDetect picks
	// HTTP Basic unless discovery lists only client_secret_post.
	Style  oauth2.AuthStyle
	Policy retry.Policy
	// Hold remembers a Retry-After the retries did not wait for, so that
	// calls fail fast until then without a request.
	Hold retry.Hold
	// Report receives token.issued and token.failed, and the token and
	// revocation calls.
	Report *hook.Reporter
	// Now is the clock used for expiry; nil is time.Now.
	Now func() time.Time
}

// style resolves oauth2.AuthStyleAutoDetect against the methods discovery advertises.
func (c *Client) style(methods []string) oauth2.AuthStyle {
	if c.Style != oauth2.AuthStyleAutoDetect {
		return c.Style
	}
	if !discovery.Supports(methods, "client_secret_basic") && discovery.Supports(methods, "client_secret_post") {
		return oauth2.AuthStyleInParams
	}
	return oauth2.AuthStyleInHeader
}

type tokenJSON struct {
	AccessToken  string          `json:"access_token"`
	TokenType    string          `json:"token_type"`
	RefreshToken string          `json:"refresh_token"`
	IDToken      string          `json:"id_token"`
	Scope        string          `json:"scope"`
	ExpiresIn    json.RawMessage `json:"expires_in"`
}

type errorJSON struct {
	Error            string `json:"error"`
	ErrorDescription string `json:"error_description"`
	ErrorURI         string `json:"error_uri"`
}

// Exchange posts form (which must hold grant_type and the grant's
// parameters) to doc's token endpoint and returns the token. The returned
// token's Extra carries "id_token" and "scope" when the server sent them.
func (c *Client) Exchange(ctx context.Context, doc *discovery.Document, form url.Values) (tok *oauth2.Token, err error) {
	grant := form.Get("grant_type")
	start := time.Now()
	ctx, end := c.Report.Call(ctx, "token")
	attempts := 0
	defer func() {
		end(err)
		if !c.Report.Enabled() {
			return
		}
		e := auth.Event{Name: "token.issued", Grant: grant, Duration: time.Since(start), Attempts: attempts, Err: err}
		if err != nil {
			e.Name = "token.failed"
			var ae *auth.Error
			if errors.As(err, &ae) {
				e.StatusCode, e.RetryAfter, e.Attempts = ae.StatusCode, ae.RetryAfter, ae.Attempts
			}
		}
		c.Report.Emit(ctx, e)
	}()
	op := "token request (" + grant + ")"
	var tj tokenJSON
	check := func(resp *httpx.Response) error {
		if resp.Status != http.StatusOK {
			return nil
		}
		tj = tokenJSON{}
		if err := json.Unmarshal(resp.Body, &tj); err != nil || tj.AccessToken == "" {
			what := "is not valid JSON"
			if err == nil {
				what = "has no access_token"
			}
			return fmt.Errorf("token response %s (%d bytes, content type %q)", what, len(resp.Body), resp.Header.Get("Content-Type"))
		}
		return nil
	}
	_, attempts, err = c.post(ctx, doc.TokenEndpoint, doc.TokenEndpointAuthMethods, op, form, check, oneTime(grant))
	if err != nil {
		return nil, err
	}
	now := time.Now
	if c.Now != nil {
		now = c.Now
	}
	tok = &oauth2.Token{
		AccessToken:  tj.AccessToken,
		TokenType:    tj.TokenType,
		RefreshToken: tj.RefreshToken,
	}
	if tok.TokenType == "" || strings.EqualFold(tok.TokenType, "bearer") {
		tok.TokenType = "Bearer"
	}
	t0 := now()
	if secs := expiresIn(tj.ExpiresIn); secs > 0 {
		tok.ExpiresIn = secs
		tok.Expiry = t0.Add(time.Duration(secs) * time.Second)
	} else if exp, ok := JWTExpiry(tj.AccessToken); ok && exp.After(t0) {
		tok.Expiry = exp
	} else {
		tok.Expiry = t0.Add(DefaultLifetime)
	}
	extra := map[string]any{}
	if tj.IDToken != "" {
		extra["id_token"] = tj.IDToken
	}
	if tj.Scope != "" {
		extra["scope"] = tj.Scope
	}
	return tok.WithExtra(extra), nil
}

func (c *Client) errorFrom(op, grant, secret string, resp *httpx.Response, attempts int, form url.Values) error {
	e := &auth.Error{Op: op, StatusCode: resp.Status, Attempts: attempts,
		RetryAfter: retry.ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now())}
	var ej errorJSON
	if json.Unmarshal(resp.Body, &ej) == nil && ej.Error != "" {
		secrets := []string{secret, form.Get("refresh_token"), form.Get("code"), form.Get("code_verifier")}
		e.Code = redact.Truncate(redact.Scrub(ej.Error, secrets...), 64)
		e.Description = redact.Truncate(redact.Scrub(ej.ErrorDescription, secrets...), 256)
		e.URI = redact.Truncate(ej.ErrorURI, 256)
		e.Kind = Classify(ej.Error, grant == "refresh_token")
	}
	if e.Kind == nil {
		switch {
		case retry.Retryable(resp.Status):
			e.Kind = auth.ErrTemporary
		case resp.Status == http.StatusUnauthorized:
			e.Kind = auth.ErrMisconfigured
		}
	}
	return e
}

func expiresIn(raw json.RawMessage) int64 {
	s := strings.Trim(string(bytes.TrimSpace(raw)), `"`)
	if s == "" {
		return 0
	}
	n, err := strconv.ParseFloat(s, 64)
	if err != nil || n <= 0 || n > 1<<31 {
		return 0
	}
	return int64(n)
}

// JWTExpiry reads the exp claim of a JWT without verifying it. It is used
// only to decide how long to cache a token whose response omitted
// expires_in; never to trust it.
func JWTExpiry(tok string) (time.Time, bool) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 || len(parts[1]) > 64<<10 {
		return time.Time{}, false
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return time.Time{}, false
	}
	var claims struct {
		Exp json.Number `json:"exp"`
	}
	if json.Unmarshal(payload, &claims) != nil {
		return time.Time{}, false
	}
	f, err := claims.Exp.Float64()
	if err != nil || f <= 0 {
		return time.Time{}, false
	}
	return time.Unix(int64(f), 0), true
}

// Revoke revokes token (RFC 7009) at doc's revocation endpoint. hint is
// "refresh_token" or "access_token". It returns nil without a request when
// discovery lists no revocation endpoint.
func (c *Client) Revoke(ctx context.Context, doc *discovery.Document, token, hint string) error {
	if doc.RevocationEndpoint == "" {
		return nil
	}
	ctx, end := c.Report.Call(ctx, "revocation")
	form := url.Values{"token": {token}, "token_type_hint": {hint}}
	_, _, err := c.post(ctx, doc.RevocationEndpoint, doc.TokenEndpointAuthMethods, "token revocation", form, nil, "")
	end(err)
	return err
}

// oneTime says why a token request of grant must not be sent twice, or ""
// when it may be (client_credentials asks for a new token and redeems
// nothing). An answer that cannot be used (malformed, empty, oversized) is
// then not retried: the server may have redeemed the code or refresh token
// already, and a second redemption would be refused, or revoke the session.
func oneTime(grant string) string {
	switch grant {
	case "client_credentials":
		return ""
	case "authorization_code":
		return "an authorization code is redeemed only once, and the server may already have redeemed this one"
	case "refresh_token":
		return "a refresh token is redeemed only once (rotation), and the server may already have redeemed this one"
	}
	return "a " + grant + " grant may redeem something only once"
}

// post sends form to endpoint with client authentication and returns the
// 200 response, or an *auth.Error for any other outcome. check and oneTime
// are httpx.Request's Check and OneTime. With a SecretFile, a refused
// secret (invalid_client) is sent once more when the file holds another
// one by then; otherwise the refusal is returned at once.
func (c *Client) post(ctx context.Context, endpoint string, methods []string, op string, form url.Values, check func(*httpx.Response) error, oneTime string) (*httpx.Response, int, error) {
	secret := c.ClientSecret
	if c.SecretFile != nil {
		var err error
		if secret, err = c.SecretFile.Get(); err != nil {
			return nil, 0, err
		}
	}
	resp, attempts, err := c.postWith(ctx, endpoint, methods, op, form, check, oneTime, secret)
	if c.SecretFile == nil || !clientRefused(err) {
		return resp, attempts, err
	}
	next, changed := c.SecretFile.Reload(secret)
	if !changed {
		var ae *auth.Error
		if errors.As(err, &ae) && ae.Err == nil {
			ae.Err = errSecretUnchanged
		}
		return nil, attempts, err
	}
	resp, more, err := c.postWith(ctx, endpoint, methods, op, form, check, oneTime, next)
	return resp, attempts + more, err
}

// clientRefused reports whether err is the identity server refusing the
// client's authentication: invalid_client, or a 401 without an error code.
func clientRefused(err error) bool {
	var ae *auth.Error
	if !errors.As(err, &ae) {
		return false
	}
	return ae.Code == "invalid_client" || (ae.Code == "" && ae.StatusCode == http.StatusUnauthorized)
}

// postWith is post with the given secret ("": a public client).
func (c *Client) postWith(ctx context.Context, endpoint string, methods []string, op string, form url.Values, check func(*httpx.Response) error, oneTime, secret string) (*httpx.Response, int, error) {
	body := make(url.Values, len(form)+2)
	for k, v := range form {
		body[k] = v
	}
	var basic string
	switch {
	case secret == "":
		body.Set("client_id", c.ClientID)
	case c.style(methods) == oauth2.AuthStyleInParams:
		body.Set("client_id", c.ClientID)
		body.Set("client_secret", secret)
	default:
		basic = "Basic " + base64.StdEncoding.EncodeToString(
			[]byte(url.QueryEscape(c.ClientID)+":"+url.QueryEscape(secret)))
	}
	encoded := body.Encode()
	resp, attempts, err := httpx.Send(ctx, httpx.Request{
		Op: op, Client: c.HTTPClient, Policy: c.Policy, Hold: &c.Hold, Check: check, OneTime: oneTime,
		Build: func(ctx context.Context) (*http.Request, error) {
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(encoded))
			if err != nil {
				return nil, err
			}
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Accept", "application/json")
			if basic != "" {
				req.Header.Set("Authorization", basic)
			}
			return req, nil
		},
	})
	if err != nil {
		return nil, attempts, err
	}
	if resp.Status != http.StatusOK {
		return nil, attempts, c.errorFrom(op, form.Get("grant_type"), secret, resp, attempts, form)
	}
	return resp, attempts, nil
}

// Classify maps an RFC 6749 error code of a token-endpoint answer to the
// SDK's error kinds. On a refresh grant, every code that does not mean a
// misconfiguration of the client or a passing failure means the refresh
// token is dead, whatever the server calls it (Dex answers a rotated-out
// refresh token with invalid_request, others with invalid_grant): the user
// must sign in again, and the token is never redeemed a second time.
func Classify(code string, refresh bool) error {
	switch code {
	case "invalid_client", "unauthorized_client", "unsupported_grant_type":
		return auth.ErrMisconfigured
	case "temporarily_unavailable", "server_error":
		return auth.ErrTemporary
	}
	if refresh {
		return auth.ErrReauthRequired
	}
	if code == "invalid_scope" {
		return auth.ErrMisconfigured
	}
	return nil
}
