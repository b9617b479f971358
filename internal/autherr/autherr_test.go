package autherr

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestErrorMatchesKindAndCause(t *testing.T) {
	e := &Error{Op: "token request (refresh_token)", Code: "invalid_grant", StatusCode: 400, Attempts: 1,
		Kind: ErrReauthRequired, Err: context.DeadlineExceeded}
	wrapped := fmt.Errorf("calling: %w", e)
	if !errors.Is(wrapped, ErrReauthRequired) || !errors.Is(wrapped, context.DeadlineExceeded) || errors.Is(wrapped, ErrTemporary) {
		t.Fatal("errors.Is does not see kind and cause")
	}
	var got *Error
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

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		code    string
		refresh bool
		want    error
	}{
		{"invalid_client", false, ErrMisconfigured},
		{"unauthorized_client", true, ErrMisconfigured},
		{"invalid_scope", false, ErrMisconfigured},
		{"unsupported_grant_type", false, ErrMisconfigured},
		{"invalid_grant", true, ErrReauthRequired},
		{"invalid_grant", false, nil},
		{"temporarily_unavailable", false, ErrTemporary},
		{"invalid_request", false, nil},
	} {
		if got := Classify(tc.code, tc.refresh); got != tc.want {
			t.Errorf("%s refresh=%v: %v", tc.code, tc.refresh, got)
		}
	}
}

func TestConfigErrorIsMisconfigured(t *testing.T) {
	err := error(&ConfigError{Field: "ClientSecret", Reason: "is required"})
	if !errors.Is(err, ErrMisconfigured) || err.Error() != "erpnet auth: config: ClientSecret is required" {
		t.Fatal(err)
	}
}
