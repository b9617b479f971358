package tokenep

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/erpnetgo/auth"
	"github.com/erpnetgo/auth/internal/discovery"
	"github.com/erpnetgo/auth/internal/testutil"
)

// secretServer is a token endpoint that accepts one client secret at a
// time, as ERP.net does (one secret hash per Trusted Application).
type secretServer struct {
	secret   atomic.Pointer[string]
	requests atomic.Int64
	refused  atomic.Int64
	doc      *discovery.Document
}

func newSecretServer(t *testing.T, secret string) *secretServer {
	s := &secretServer{}
	s.secret.Store(&secret)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		_, got, _ := r.BasicAuth()
		got, _ = url.QueryUnescape(got)
		w.Header().Set("Content-Type", "application/json")
		if got != *s.secret.Load() {
			s.refused.Add(1)
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprint(w, `{"error":"invalid_client","error_description":"client authentication failed"}`)
			return
		}
		fmt.Fprint(w, `{"access_token":"at","expires_in":3600}`)
	}))
	t.Cleanup(srv.Close)
	s.doc = &discovery.Document{TokenEndpoint: srv.URL + "/token", RevocationEndpoint: srv.URL + "/revoke"}
	return s
}

func (s *secretServer) rotate(secret string) { s.secret.Store(&secret) }

var ccForm = url.Values{"grant_type": {"client_credentials"}}

func TestSecretFileRotationRetriesOnceWithTheNewSecret(t *testing.T) {
	srv := newSecretServer(t, "old-secret")
	mount := testutil.NewSecretMount(t, "old-secret")
	logs := &testutil.SyncBuffer{}
	c := &Client{ClientID: "com.example/worker", SecretFile: NewSecretFile(mount.Path(), slog.New(slog.NewTextHandler(logs, nil)))}

	_, err := c.Exchange(context.Background(), srv.doc, ccForm)
	if err != nil {
		t.Fatal(err)
	}
	if srv.requests.Load() != 1 {
		t.Fatalf("%d requests for the first token", srv.requests.Load())
	}

	// The admin stores a new secret (the old one fails at once), and the
	// kubelet swaps the mounted file.
	srv.rotate("new-secret")
	mount.Write("new-secret")
	tok, err := c.Exchange(context.Background(), srv.doc, ccForm)
	if err != nil {
		t.Fatalf("after rotation: %v", err)
	}
	if tok.AccessToken != "at" {
		t.Fatal("no token")
	}
	if got, refused := srv.requests.Load()-1, srv.refused.Load(); got != 2 || refused != 1 {
		t.Fatalf("rotation took %d requests (%d refused), want one refused and one good", got, refused)
	}
	// The new secret is kept: the next request needs no retry.
	if _, err := c.Exchange(context.Background(), srv.doc, ccForm); err != nil || srv.requests.Load() != 4 {
		t.Fatalf("after rotation, another token: %v, %d requests", err, srv.requests.Load())
	}
	for _, s := range []string{"old-secret", "new-secret"} {
		if strings.Contains(logs.String(), s) {
			t.Fatalf("a secret reached the log: %s", logs.String())
		}
	}
	if !strings.Contains(logs.String(), "ClientSecretFile holds a new one") {
		t.Fatalf("the rotation is not logged: %s", logs.String())
	}
}

func TestSecretFileUnchangedIsMisconfiguredAtOnce(t *testing.T) {
	srv := newSecretServer(t, "the-admins-new-secret")
	file := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(file, []byte("stale-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := &Client{ClientID: "id", SecretFile: NewSecretFile(file, nil)}
	for call := 1; call <= 3; call++ {
		_, err := c.Exchange(context.Background(), srv.doc, ccForm)
		if !errors.Is(err, auth.ErrMisconfigured) {
			t.Fatalf("call %d: %v, want ErrMisconfigured", call, err)
		}
		var ae *auth.Error
		if !errors.As(err, &ae) || ae.Code != "invalid_client" {
			t.Fatalf("call %d: %#v", call, err)
		}
		if !strings.Contains(err.Error(), "ClientSecretFile holds no other") || strings.Contains(err.Error(), "stale-secret") {
			t.Fatalf("call %d: %q", call, err)
		}
		if got := srv.requests.Load(); got != int64(call) {
			t.Fatalf("call %d: %d requests in all, want one per call", call, got)
		}
	}
	// Revocation goes the same way.
	if err := c.Revoke(context.Background(), srv.doc, "rt", "refresh_token"); !errors.Is(err, auth.ErrMisconfigured) || srv.requests.Load() != 4 {
		t.Fatalf("revoke: %v after %d requests", err, srv.requests.Load())
	}
}

func TestSecretFileRevocationRetriesToo(t *testing.T) {
	srv := newSecretServer(t, "one")
	file := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(file, []byte("one"), 0o600)
	c := &Client{ClientID: "id", SecretFile: NewSecretFile(file, nil)}
	if _, err := c.Exchange(context.Background(), srv.doc, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"rt"}}); err != nil {
		t.Fatal(err)
	}
	srv.rotate("two")
	os.WriteFile(file, []byte("two\r\n"), 0o600)
	if err := c.Revoke(context.Background(), srv.doc, "rt", "refresh_token"); err != nil {
		t.Fatal(err)
	}
	if srv.requests.Load() != 3 || srv.refused.Load() != 1 {
		t.Fatalf("%d requests, %d refused", srv.requests.Load(), srv.refused.Load())
	}
}

func TestSecretFileConcurrentCallersShareTheReread(t *testing.T) {
	srv := newSecretServer(t, "old")
	mount := testutil.NewSecretMount(t, "old")
	logs := &testutil.SyncBuffer{}
	c := &Client{ClientID: "id", SecretFile: NewSecretFile(mount.Path(), slog.New(slog.NewTextHandler(logs, nil)))}
	if _, err := c.Exchange(context.Background(), srv.doc, ccForm); err != nil {
		t.Fatal(err)
	}
	srv.rotate("new")
	mount.Write("new")
	const n = 100
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := c.Exchange(context.Background(), srv.doc, ccForm)
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	// Each call sends at most one refused request and one good one; the
	// file is re-read once, by whichever caller was refused first.
	if got := srv.requests.Load() - 1; got > 2*n || srv.refused.Load() > n {
		t.Fatalf("%d requests (%d refused) for %d calls", got, srv.refused.Load(), n)
	}
	if got := strings.Count(logs.String(), "ClientSecretFile holds a new one"); got != 1 {
		t.Fatalf("the file was found changed %d times, want once:\n%s", got, logs.String())
	}
}

func TestSecretFileReadFaults(t *testing.T) {
	dir := t.TempDir()
	for name, tc := range map[string]struct {
		content string
		want    string
	}{
		"empty":     {"\n", "is empty"},
		"two lines": {"a-secret\nanother\n", "control characters or several lines"},
		"missing":   {"", "no such file"},
	} {
		t.Run(name, func(t *testing.T) {
			srv := newSecretServer(t, "x")
			file := filepath.Join(dir, strings.ReplaceAll(name, " ", "-"))
			if name != "missing" {
				os.WriteFile(file, []byte(tc.content), 0o600)
			}
			c := &Client{ClientID: "id", SecretFile: NewSecretFile(file, nil)}
			_, err := c.Exchange(context.Background(), srv.doc, ccForm)
			if !errors.Is(err, auth.ErrMisconfigured) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), file) {
				t.Fatalf("%v", err)
			}
			if strings.Contains(err.Error(), "a-secret") {
				t.Fatalf("the content reached the error: %v", err)
			}
			if srv.requests.Load() != 0 {
				t.Fatal("a request was sent without a secret")
			}
		})
	}
}

func TestSecretFileModeWarning(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		mode os.FileMode
		warn bool
	}{{0o600, false}, {0o400, false}, {0o644, true}, {0o640, true}, {0o700, true}} {
		file := filepath.Join(dir, fmt.Sprintf("s%o", tc.mode))
		os.WriteFile(file, []byte("the-secret\n"), 0o600)
		os.Chmod(file, tc.mode)
		logs := &testutil.SyncBuffer{}
		f := NewSecretFile(file, slog.New(slog.NewTextHandler(logs, nil)))
		s, err := f.Get()
		if err != nil || s != "the-secret" {
			t.Fatalf("mode %o: %q %v", tc.mode, s, err)
		}
		f.Reload("the-secret") // a second read of the same file does not repeat the warning
		warned := strings.Count(logs.String(), "wider than 0600")
		if tc.warn && (warned != 1 || !strings.Contains(logs.String(), fmt.Sprintf("%04o", tc.mode)) || !strings.Contains(logs.String(), file)) {
			t.Fatalf("mode %o: %d warnings: %s", tc.mode, warned, logs.String())
		}
		if !tc.warn && warned != 0 {
			t.Fatalf("mode %o warned: %s", tc.mode, logs.String())
		}
	}
}

func TestNoSecretFile(t *testing.T) {
	if NewSecretFile("", nil) != nil {
		t.Fatal("a SecretFile without a path")
	}
}
