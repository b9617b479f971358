package clientcreds_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/erpnetgo/auth"
	"github.com/erpnetgo/auth/clientcreds"
	"github.com/erpnetgo/auth/erpnettest"
	"github.com/erpnetgo/auth/internal/testutil"
)

// tokenStatuses records the status of every token-endpoint answer.
type tokenStatuses struct {
	mu       sync.Mutex
	statuses []int
}

func (t *tokenStatuses) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err == nil && strings.HasSuffix(req.URL.Path, "/connect/token") {
		t.mu.Lock()
		t.statuses = append(t.statuses, resp.StatusCode)
		t.mu.Unlock()
	}
	return resp, err
}

func (t *tokenStatuses) since(n int) []int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]int(nil), t.statuses[n:]...)
}

func (t *tokenStatuses) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.statuses)
}

// rotationRig is a worker reading its secret from a Kubernetes-style
// mount, against an erpnettest server, with every log line, hook event and
// token answer recorded.
type rotationRig struct {
	srv    *erpnettest.Server
	mount  *testutil.SecretMount
	src    *clientcreds.Source
	hc     *http.Client
	root   string
	tokens *tokenStatuses
	rec    *testutil.Recorder
	logs   *testutil.SyncBuffer
}

func newRotationRig(t *testing.T) *rotationRig {
	r := &rotationRig{srv: erpnettest.NewServer(t), tokens: &tokenStatuses{}, rec: &testutil.Recorder{}, logs: &testutil.SyncBuffer{}}
	r.mount = testutil.NewSecretMount(t, erpnettest.Demo.WorkerSecret)
	r.src = newSource(t, clientcreds.Config{
		Authority:        r.srv.URL(),
		ClientID:         erpnettest.Demo.WorkerID,
		ClientSecretFile: r.mount.Path(),
		Scopes:           []string{"read"},
		Retry:            fast,
		HTTPClient:       &http.Client{Transport: r.tokens},
		Hooks:            r.rec.Hooks(false),
		Logger:           slog.New(slog.NewTextHandler(r.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	r.hc = r.src.Client(context.Background())
	var err error
	r.root, err = r.src.DomainAPI(context.Background())
	require.NoError(t, err)
	r.call(t)
	require.Equal(t, []int{200}, r.tokens.since(0))
	return r
}

func (r *rotationRig) call(t *testing.T) {
	t.Helper()
	resp, err := r.hc.Get(r.root + "Crm_Sales_Customers?$top=1")
	require.NoError(t, err)
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
}

// assertNoSecret checks the logs, hook events and err for both secrets.
func (r *rotationRig) assertNoSecret(t *testing.T, errs ...error) {
	t.Helper()
	var all strings.Builder
	all.WriteString(r.logs.String())
	all.WriteString(r.rec.Dump())
	for _, err := range errs {
		if err != nil {
			all.WriteString(err.Error())
		}
	}
	for _, s := range []string{erpnettest.Demo.WorkerSecret, "rotated-s3cret:%+/="} {
		assert.NotContains(t, all.String(), s, "a secret reached a log, hook event or error")
	}
}

// The worker keeps running across a rotation: the admin stores a new
// secret (the old one fails at once), the mounted file is swapped, and the
// next token comes with exactly one refused and one good request.
func TestSecretRotationWithoutRestart(t *testing.T) {
	r := newRotationRig(t)
	r.srv.SetSecret(erpnettest.Demo.WorkerID, "rotated-s3cret:%+/=")
	r.mount.Write("rotated-s3cret:%+/=")
	r.call(t) // the cached token is still valid: nothing to re-read
	before := r.tokens.len()
	require.Equal(t, 1, before)

	r.src.Invalidate() // the token's time is up
	r.call(t)
	assert.Equal(t, []int{401, 200}, r.tokens.since(before), "one refused request, one good one")
	assert.Equal(t, 0, r.rec.Count("token.failed"))
	var issued []auth.Event
	for _, e := range r.rec.Events() {
		if e.Name == "token.issued" {
			issued = append(issued, e)
		}
	}
	require.Len(t, issued, 2)
	assert.Equal(t, 2, issued[1].Attempts, "the rotation's token took the refused request and the good one")
	assert.Contains(t, r.logs.String(), "ClientSecretFile holds a new one")
	r.assertNoSecret(t)

	// The new secret is kept.
	r.src.Invalidate()
	r.call(t)
	assert.Equal(t, []int{401, 200, 200}, r.tokens.since(before))
}

// A thousand callers whose token expires across the switch share one
// token request and its one retry.
func TestSecretRotationThousandCallers(t *testing.T) {
	r := newRotationRig(t)
	r.srv.SetSecret(erpnettest.Demo.WorkerID, "rotated-s3cret:%+/=")
	r.mount.Write("rotated-s3cret:%+/=")
	r.src.Invalidate()
	before := r.tokens.len()
	var wg sync.WaitGroup
	errs := make(chan error, 1000)
	for range 1000 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := r.src.Token(context.Background())
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	got := r.tokens.since(before)
	assert.LessOrEqual(t, len(got), 2, "token requests for 1,000 callers across the switch")
	assert.Equal(t, 200, got[len(got)-1])
	r.assertNoSecret(t)
}

// The admin stored a new secret but the file still holds the old one:
// every call fails at once with ErrMisconfigured, one request each.
func TestSecretRotationFileNotReplaced(t *testing.T) {
	r := newRotationRig(t)
	r.srv.SetSecret(erpnettest.Demo.WorkerID, "rotated-s3cret:%+/=")
	r.src.Invalidate()
	var errs []error
	for call := 1; call <= 3; call++ {
		before := r.tokens.len()
		_, err := r.src.Token(context.Background())
		require.ErrorIs(t, err, auth.ErrMisconfigured)
		var ae *auth.Error
		require.ErrorAs(t, err, &ae)
		assert.Equal(t, "invalid_client", ae.Code)
		assert.Contains(t, err.Error(), "ClientSecretFile holds no other")
		assert.Equal(t, []int{401}, r.tokens.since(before), "call %d", call)
		errs = append(errs, err)
	}
	// The API call reports it too, and the operator's fix (the file)
	// brings the worker back without a restart.
	_, err := r.hc.Get(r.root + "Crm_Sales_Customers")
	require.ErrorIs(t, err, auth.ErrMisconfigured)
	errs = append(errs, err)
	r.mount.Write("rotated-s3cret:%+/=")
	r.call(t)
	r.assertNoSecret(t, errs...)
}

func TestSecretFileConfig(t *testing.T) {
	ok := clientcreds.Config{Authority: "https://demodb.my.erp.net", ClientID: "com.example/x", ClientSecretFile: "/run/secrets/erpnet"}
	_, err := clientcreds.New(ok)
	require.NoError(t, err, "New does not read the file")

	both := ok
	both.ClientSecret = "s3cr3t-do-not-print"
	_, err = clientcreds.New(both)
	var ce *auth.ConfigError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, "ClientSecretFile", ce.Field)
	assert.NotContains(t, err.Error(), "s3cr3t")

	none := ok
	none.ClientSecretFile = ""
	_, err = clientcreds.New(none)
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, "ClientSecret", ce.Field)
	assert.Contains(t, ce.Reason, "ClientSecretFile")

	// A missing file is reported on the first token, naming the path.
	srv := erpnettest.NewServer(t)
	src := newSource(t, clientcreds.Config{Authority: srv.URL(), ClientID: erpnettest.Demo.WorkerID, ClientSecretFile: filepath.Join(t.TempDir(), "nope")})
	_, err = src.Token(context.Background())
	require.ErrorIs(t, err, auth.ErrMisconfigured)
	assert.ErrorIs(t, err, os.ErrNotExist)
	assert.Zero(t, srv.Requests("token"), "no request without a secret")
}

func TestConfigFromEnvSecretFile(t *testing.T) {
	t.Setenv("ERPNET_AUTHORITY", "https://demodb.my.erp.net")
	t.Setenv("ERPNET_CLIENT_ID", "com.example/worker")
	t.Setenv("ERPNET_CLIENT_SECRET", "")
	t.Setenv("ERPNET_CLIENT_SECRET_FILE", "")
	_, err := clientcreds.ConfigFromEnv()
	require.ErrorContains(t, err, "ERPNET_CLIENT_SECRET or ERPNET_CLIENT_SECRET_FILE")
	t.Setenv("ERPNET_CLIENT_SECRET_FILE", "/var/run/secrets/erpnet/client-secret")
	cfg, err := clientcreds.ConfigFromEnv()
	require.NoError(t, err)
	assert.Equal(t, "/var/run/secrets/erpnet/client-secret", cfg.ClientSecretFile)
	assert.Empty(t, cfg.ClientSecret)
	_, err = clientcreds.New(cfg)
	require.NoError(t, err)
}

// A second Source for the same instance and client in one process costs a
// second license slot: the SDK warns once.
func TestSecondSourceForTheSameClientWarnsOnce(t *testing.T) {
	logs := &testutil.SyncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	mk := func(authority, clientID string) *clientcreds.Source {
		return newSource(t, clientcreds.Config{Authority: authority, ClientID: clientID, ClientSecret: "s", Logger: log})
	}
	const warning = "second clientcreds.Source for the same instance and client"
	a := mk("https://dup-test.example", "com.example/dup")
	mk("https://dup-test.example/id", "com.example/other")  // another client
	mk("https://other-dup-test.example", "com.example/dup") // another instance
	assert.NotContains(t, logs.String(), warning)
	require.NoError(t, a.Close())
	mk("https://dup-test.example", "com.example/dup") // the first one is closed
	assert.NotContains(t, logs.String(), warning)

	mk("https://dup-test.example/id", "com.example/dup") // the same instance, through its /id URL
	assert.Equal(t, 1, strings.Count(logs.String(), warning))
	assert.Contains(t, logs.String(), "com.example/dup")
	mk("https://dup-test.example", "com.example/dup")
	assert.Equal(t, 1, strings.Count(logs.String(), warning), "warned once")
}
