package auth_test

import (
	"context"
	"errors"
	"fmt"
	"io"
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

// TestErrorReadsOnce: however deeply the SDK's errors wrap each other, the
// message has one prefix and one kind tag, and the error matches one kind:
// the one its cause already has (issue 23: "erpnet auth: ... erpnet auth:
// ... [temporary failure] [temporary failure]", and a FileStore mode error
// matching both ErrMisconfigured and ErrTemporary).
func TestErrorReadsOnce(t *testing.T) {
	custom := errors.New("token rejected")
	kinds := []error{auth.ErrReauthRequired, auth.ErrTemporary, auth.ErrMisconfigured, auth.ErrClosed, custom}
	for _, c := range []struct {
		name string
		err  error
		kind error
		want string
	}{
		{"store error inside a store error",
			&auth.Error{Op: "session store load", Kind: auth.ErrTemporary,
				Err: &auth.Error{Op: "redis load", Kind: auth.ErrTemporary, Err: io.EOF}},
			auth.ErrTemporary,
			"erpnet auth: session store load failed: redis load failed: EOF [temporary failure]"},
		{"the cause's kind wins",
			&auth.Error{Op: "session store save", Kind: auth.ErrTemporary,
				Err: &auth.Error{Op: "file store", Kind: auth.ErrMisconfigured, Err: errors.New("f has mode -rw-r--r--")}},
			auth.ErrMisconfigured,
			"erpnet auth: session store save failed: file store failed: f has mode -rw-r--r-- [misconfigured]"},
		{"wrapped by fmt.Errorf in between",
			&auth.Error{Op: "token refresh", Kind: auth.ErrTemporary,
				Err: fmt.Errorf("saving: %w", &auth.Error{Op: "redis save", Kind: auth.ErrTemporary, Attempts: 2, Err: io.ErrUnexpectedEOF})},
			auth.ErrTemporary,
			"erpnet auth: token refresh failed: saving: redis save failed: unexpected EOF after 2 attempts [temporary failure]"},
		{"a config error inside",
			&auth.Error{Op: "session store save", Kind: auth.ErrTemporary, Err: &auth.ConfigError{Field: "FileStore.Path", Reason: "is required"}},
			auth.ErrMisconfigured,
			"erpnet auth: session store save failed: config: FileStore.Path is required [misconfigured]"},
		{"a kind as the cause",
			&auth.Error{Op: "token fetch", Kind: auth.ErrTemporary, Err: fmt.Errorf("stopped: %w", auth.ErrClosed)},
			auth.ErrClosed,
			"erpnet auth: token fetch failed: stopped: closed [closed]"},
		{"a package's own kind inside",
			&auth.Error{Op: "API request", Kind: auth.ErrTemporary, Err: &auth.Error{Op: "API request", StatusCode: 401, Kind: custom}},
			custom,
			"erpnet auth: API request failed: API request failed: HTTP 401 [token rejected]"},
		{"three deep, kinds on the outer two only",
			&auth.Error{Op: "a", Kind: auth.ErrTemporary, Err: &auth.Error{Op: "b", Kind: auth.ErrReauthRequired, Err: &auth.Error{Op: "c"}}},
			auth.ErrReauthRequired,
			"erpnet auth: a failed: b failed: c failed [re-authentication required]"},
	} {
		t.Run(c.name, func(t *testing.T) {
			wrapped := fmt.Errorf("calling: %w", c.err)
			for _, k := range kinds {
				if got := errors.Is(wrapped, k); got != (k == c.kind) {
					t.Errorf("errors.Is(err, %v) = %v", k, got)
				}
			}
			if got := c.err.Error(); got != c.want {
				t.Errorf("message\n got %q\nwant %q", got, c.want)
			}
			if n := strings.Count(wrapped.Error(), "erpnet auth:"); n != 1 {
				t.Errorf("%d prefixes in %q", n, wrapped.Error())
			}
		})
	}
}

// Every error matches at most one kind, ErrLicenseExhausted included: a
// cause that already has a kind decides it over the wrapper's Kind.
func TestErrorMatchesAtMostOneKind(t *testing.T) {
	kinds := []error{auth.ErrReauthRequired, auth.ErrTemporary, auth.ErrMisconfigured, auth.ErrClosed, auth.ErrLicenseExhausted}
	for _, cause := range kinds {
		for _, outer := range kinds {
			e := &auth.Error{Op: "API request", Kind: outer, Err: fmt.Errorf("x: %w", cause)}
			var matched []error
			for _, k := range kinds {
				if errors.Is(e, k) {
					matched = append(matched, k)
				}
			}
			if len(matched) != 1 || matched[0] != cause {
				t.Errorf("Kind %v, cause %v: matches %v; want only the cause's kind", outer, cause, matched)
			}
		}
	}
}
