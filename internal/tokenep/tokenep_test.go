package tokenep

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"golang.org/x/oauth2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/erpnetgo/auth"
	"github.com/erpnetgo/auth/internal/discovery"
)

// serve answers every token request with status and body.
func serve(t *testing.T, status int, body string) (*discovery.Document, *[]*http.Request) {
	var reqs []*http.Request
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		reqs = append(reqs, r)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		fmt.Fprint(w, body)
	}))
	t.Cleanup(srv.Close)
	return &discovery.Document{TokenEndpoint: srv.URL + "/token", RevocationEndpoint: srv.URL + "/revoke"}, &reqs
}

func jwtWithExp(exp int64) string {
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"RS256"}`)) + "." + enc([]byte(fmt.Sprintf(`{"exp":%d}`, exp))) + ".sig"
}

func TestDefaultsForSparseResponses(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	c := &Client{ClientID: "id", ClientSecret: "secret", Now: func() time.Time { return now }}
	form := url.Values{"grant_type": {"client_credentials"}}

	doc, _ := serve(t, 200, `{"access_token":"opaque"}`)
	tok, err := c.Exchange(context.Background(), doc, form)
	if err != nil {
		t.Fatal(err)
	}
	if tok.TokenType != "Bearer" || !tok.Expiry.Equal(now.Add(DefaultLifetime)) {
		t.Fatalf("missing token_type/expires_in: %q %v", tok.TokenType, tok.Expiry)
	}

	doc, _ = serve(t, 200, fmt.Sprintf(`{"access_token":%q,"token_type":"bearer"}`, jwtWithExp(now.Unix()+600)))
	tok, _ = c.Exchange(context.Background(), doc, form)
	if !tok.Expiry.Equal(now.Add(600*time.Second)) || tok.TokenType != "Bearer" {
		t.Fatalf("JWT exp not used: %v", tok.Expiry)
	}

	doc, _ = serve(t, 200, `{"access_token":"x","expires_in":"3600","scope":"read update","id_token":"idt","refresh_token":"rt"}`)
	tok, _ = c.Exchange(context.Background(), doc, form)
	if !tok.Expiry.Equal(now.Add(time.Hour)) || tok.Extra("scope") != "read update" || tok.Extra("id_token") != "idt" || tok.RefreshToken != "rt" {
		t.Fatalf("string expires_in or extras: %+v", tok)
	}
}

func TestErrorClassificationAndScrubbing(t *testing.T) {
	c := &Client{ClientID: "id", ClientSecret: "very-secret-value"}
	for _, tc := range []struct {
		status int
		code   string
		grant  string
		kind   error
	}{
		{401, "invalid_client", "client_credentials", auth.ErrMisconfigured},
		{400, "unauthorized_client", "client_credentials", auth.ErrMisconfigured},
		{400, "invalid_scope", "client_credentials", auth.ErrMisconfigured},
		{400, "invalid_grant", "refresh_token", auth.ErrReauthRequired},
		{400, "invalid_grant", "authorization_code", nil},
		{400, "invalid_request", "client_credentials", nil},
	} {
		doc, _ := serve(t, tc.status, fmt.Sprintf(`{"error":%q,"error_description":"bad very-secret-value rt-1234"}`, tc.code))
		_, err := c.Exchange(context.Background(), doc, url.Values{"grant_type": {tc.grant}, "refresh_token": {"rt-1234"}})
		var e *auth.Error
		if !errors.As(err, &e) || e.Code != tc.code || e.StatusCode != tc.status {
			t.Fatalf("%s: %v", tc.code, err)
		}
		if tc.kind != nil && !errors.Is(err, tc.kind) {
			t.Fatalf("%s/%s: want %v, got %v", tc.code, tc.grant, tc.kind, err)
		}
		if strings.Contains(err.Error(), "very-secret-value") || strings.Contains(err.Error(), "rt-1234") {
			t.Fatalf("secret echoed: %v", err)
		}
	}
}

func TestPublicClientSendsNoSecretAndRevoke(t *testing.T) {
	doc, reqs := serve(t, 200, `{"access_token":"a"}`)
	c := &Client{ClientID: "com.example/cli"}
	if _, err := c.Exchange(context.Background(), doc, url.Values{"grant_type": {"authorization_code"}}); err != nil {
		t.Fatal(err)
	}
	r := (*reqs)[0]
	if _, _, ok := r.BasicAuth(); ok || r.PostForm.Has("client_secret") || r.PostForm.Get("client_id") != "com.example/cli" {
		t.Fatalf("public client auth wrong: %v", r.PostForm)
	}
	if err := c.Revoke(context.Background(), doc, "rt", "refresh_token"); err != nil {
		t.Fatal(err)
	}
	if r := (*reqs)[1]; r.URL.Path != "/revoke" || r.PostForm.Get("token") != "rt" {
		t.Fatalf("revocation request wrong: %v %v", r.URL, r.PostForm)
	}
	doc.RevocationEndpoint = ""
	if err := c.Revoke(context.Background(), doc, "rt", "refresh_token"); err != nil || len(*reqs) != 2 {
		t.Fatal("revoke without an endpoint must be a no-op")
	}
}

func TestBasicEncodesSpecialCharacters(t *testing.T) {
	doc, reqs := serve(t, 200, `{"access_token":"a"}`)
	c := &Client{ClientID: "com.example/app", ClientSecret: "a:b%c+d/e= f", Style: oauth2.AuthStyleInHeader}
	c.Exchange(context.Background(), doc, url.Values{"grant_type": {"client_credentials"}})
	u, p, _ := (*reqs)[0].BasicAuth()
	if u != url.QueryEscape("com.example/app") || p != url.QueryEscape("a:b%c+d/e= f") {
		t.Fatalf("basic credentials not form-urlencoded: %q %q", u, p)
	}
	if id, _ := url.QueryUnescape(u); id != "com.example/app" {
		t.Fatal("round trip")
	}
}

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		code    string
		refresh bool
		want    error
	}{
		{"invalid_client", false, auth.ErrMisconfigured},
		{"unauthorized_client", true, auth.ErrMisconfigured},
		{"invalid_scope", false, auth.ErrMisconfigured},
		{"unsupported_grant_type", false, auth.ErrMisconfigured},
		{"invalid_grant", true, auth.ErrReauthRequired},
		{"invalid_grant", false, nil},
		{"temporarily_unavailable", false, auth.ErrTemporary},
		{"invalid_request", false, nil},
		// Any other 4xx OAuth error on a refresh grant ends the session
		// (Dex: invalid_request for a rotated-out refresh token).
		{"invalid_request", true, auth.ErrReauthRequired},
		{"invalid_scope", true, auth.ErrReauthRequired},
		{"access_denied", true, auth.ErrReauthRequired},
	} {
		if got := Classify(tc.code, tc.refresh); got != tc.want {
			t.Errorf("%s refresh=%v: %v", tc.code, tc.refresh, got)
		}
	}
}

// TestUnusableAnswers: a 200 whose body is malformed, empty or oversized is
// retried for client_credentials (a new token, nothing redeemed) as
// Retry.Attempts allows, and not retried for the one-time grants, whose
// error says so and why (issue 23).
func TestUnusableAnswers(t *testing.T) {
	bodies := map[string]func(w http.ResponseWriter){
		"malformed": func(w http.ResponseWriter) { fmt.Fprint(w, `{"access_token":"x`) },
		"empty":     func(w http.ResponseWriter) {},
		"no token":  func(w http.ResponseWriter) { fmt.Fprint(w, `{"token_type":"Bearer"}`) },
		"oversized": func(w http.ResponseWriter) {
			fmt.Fprintf(w, `{"access_token":"x","pad":%q}`, strings.Repeat("p", 2<<20))
		},
	}
	for name, bad := range bodies {
		for _, grant := range []string{"client_credentials", "authorization_code", "refresh_token"} {
			t.Run(name+"/"+grant, func(t *testing.T) {
				var n int
				srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					n++
					w.Header().Set("Content-Type", "application/json")
					if n <= 2 {
						bad(w)
						return
					}
					fmt.Fprint(w, `{"access_token":"good","expires_in":3600}`)
				}))
				defer srv.Close()
				doc := &discovery.Document{TokenEndpoint: srv.URL}
				c := &Client{ClientID: "id", ClientSecret: "s", Policy: auth.Retry{Attempts: 3, Base: time.Millisecond}}
				tok, err := c.Exchange(context.Background(), doc, url.Values{"grant_type": {grant}, "refresh_token": {"rt"}, "code": {"c"}})
				if grant == "client_credentials" {
					if err != nil || tok.AccessToken != "good" || n != 3 {
						t.Fatalf("requests %d, err %v", n, err)
					}
					return
				}
				var ae *auth.Error
				if err == nil || !errors.As(err, &ae) || !errors.Is(err, auth.ErrTemporary) || n != 1 || ae.Attempts != 1 {
					t.Fatalf("requests %d, err %v", n, err)
				}
				if msg := err.Error(); !strings.Contains(msg, "not retried: a") || !strings.Contains(msg, "redeemed only once") {
					t.Fatalf("the error does not say why it was not retried: %v", err)
				}
			})
		}
	}
	// Out of attempts, client_credentials reports the last unusable answer.
	doc, reqs := serve(t, 200, `not json`)
	c := &Client{ClientID: "id", ClientSecret: "s", Policy: auth.Retry{Attempts: 2, Base: time.Millisecond}}
	_, err := c.Exchange(context.Background(), doc, url.Values{"grant_type": {"client_credentials"}})
	var ae *auth.Error
	if !errors.As(err, &ae) || !errors.Is(err, auth.ErrTemporary) || ae.Attempts != 2 || len(*reqs) != 2 || !strings.Contains(err.Error(), "not valid JSON") {
		t.Fatalf("requests %d, err %v", len(*reqs), err)
	}
}
