package auth_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/erpnetgo/auth"
	"github.com/erpnetgo/auth/internal/testutil"
)

func TestMain(m *testing.M) { testutil.VerifyNoLeaks(m) }

func TestErrorMatchesKindAndCause(t *testing.T) {
	e := &auth.Error{Op: "token request (refresh_token)", Code: "invalid_grant", StatusCode: 400, Attempts: 1,
		Kind: auth.ErrReauthRequired, Err: context.DeadlineExceeded}
	wrapped := fmt.Errorf("calling: %w", e)
	if !errors.Is(wrapped, auth.ErrReauthRequired) || !errors.Is(wrapped, context.DeadlineExceeded) || errors.Is(wrapped, auth.ErrTemporary) {
		t.Fatal("errors.Is does not see kind and cause")
	}
	var got *auth.Error
	if !errors.As(wrapped, &got) || got.Code != "invalid_grant" {
		t.Fatal("errors.As")
	}
	msg := e.Error()
	for _, want := range []string{"token request (refresh_token) failed", "HTTP 400", "invalid_grant", "re-authentication required"} {
		if !strings.Contains(msg, want) {
			t.Errorf("%q lacks %q", msg, want)
		}
	}
}

func TestTokenEndpointErrorReadsAsRetrieveError(t *testing.T) {
	e := fmt.Errorf("wrapped: %w", &auth.Error{Op: "token request (client_credentials)", Code: "invalid_client",
		Description: "unknown client", StatusCode: 401, RetryAfter: 1500 * time.Millisecond, Kind: auth.ErrMisconfigured})
	var re *oauth2.RetrieveError
	if !errors.As(e, &re) {
		t.Fatal("errors.As into *oauth2.RetrieveError failed")
	}
	if re.ErrorCode != "invalid_client" || re.ErrorDescription != "unknown client" || re.Response.StatusCode != 401 ||
		re.Response.Header.Get("Retry-After") != "2" {
		t.Fatalf("RetrieveError = %+v, response %+v", re, re.Response)
	}
	// Errors that are not token-endpoint answers do not pretend to be.
	for _, other := range []error{
		&auth.Error{Op: "discovery", StatusCode: 404},
		&auth.Error{Op: "token request (refresh_token)", Err: context.Canceled},
		&auth.ConfigError{Field: "ClientID", Reason: "is required"},
	} {
		if errors.As(other, &re) {
			t.Errorf("%v reads as a RetrieveError", other)
		}
	}
}

func TestConfigErrorFormat(t *testing.T) {
	err := error(&auth.ConfigError{Field: "Scopes[1]", Reason: "must not contain spaces"})
	if !errors.Is(err, auth.ErrMisconfigured) || errors.Is(err, auth.ErrTemporary) {
		t.Fatal("ConfigError must match ErrMisconfigured only")
	}
	if got, want := err.Error(), "erpnet auth: config: Scopes[1] must not contain spaces"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}
