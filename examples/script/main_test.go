package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/erpnetgo/auth/erpnettest"
	"github.com/erpnetgo/auth/internal/testutil"
)

// setenv sets the ERPNET_* variables for one test, unsetting those not given.
func setenv(t *testing.T, m map[string]string) {
	for _, k := range []string{"ERPNET_TOKEN", "ERPNET_AUTHORITY", "ERPNET_HEADER", "ERPNET_DOMAIN_API"} {
		t.Setenv(k, m[k])
	}
}

func TestRunAgainstInProcessDevServer(t *testing.T) {
	defer goleak.VerifyNone(t)
	for _, h := range []string{"", "apikey"} {
		var out bytes.Buffer
		setenv(t, map[string]string{"ERPNET_HEADER": h})
		require.NoError(t, run(t.Context(), &out))
		s := out.String()
		assert.Contains(t, s, "ERPNET_TOKEN is not set: using an in-process dev server")
		assert.Contains(t, s, "Caller: pat:alice")
		assert.Contains(t, s, "Acme Manufacturing Ltd")
		assert.NotContains(t, s, "enrt_", "the token must not be printed")
	}
}

func TestRunFailsWithoutLeakingTheToken(t *testing.T) {
	const bad = "enrt_0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	var out bytes.Buffer
	setenv(t, map[string]string{"ERPNET_TOKEN": bad, "ERPNET_AUTHORITY": "https://x.example"})
	err := run(t.Context(), &out)
	require.ErrorContains(t, err, `malformed reference token in environment variable "ERPNET_TOKEN"`)
	assert.NotContains(t, err.Error(), strings.TrimPrefix(bad, "enrt_"))

	const good = "enrt_0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF"
	setenv(t, map[string]string{"ERPNET_TOKEN": good})
	err = run(t.Context(), &out)
	assert.ErrorContains(t, err, "ERPNET_AUTHORITY")
	setenv(t, map[string]string{"ERPNET_TOKEN": good, "ERPNET_AUTHORITY": "http://erp.example.com"})
	err = run(t.Context(), &out)
	assert.ErrorContains(t, err, "must use https")
	assert.NotContains(t, err.Error(), strings.TrimPrefix(good, "enrt_"))
}

func TestRunWithConfiguredToken(t *testing.T) {
	srv := erpnettest.NewServer(t)
	raw := srv.MintSAT(erpnettest.Demo.WorkerID, "read")
	setenv(t, map[string]string{"ERPNET_TOKEN": raw + "\n", "ERPNET_AUTHORITY": srv.URL() + "/", "ERPNET_HEADER": "apikey"})
	var out bytes.Buffer
	require.NoError(t, run(t.Context(), &out))
	assert.Contains(t, out.String(), "Caller: sat:worker-system (token sent as X-Api-Key)")
	assert.NotContains(t, out.String(), "in-process")
	// Like every other example: the identity server's /id URL works too.
	setenv(t, map[string]string{"ERPNET_TOKEN": raw, "ERPNET_AUTHORITY": srv.Authority()})
	out.Reset()
	require.NoError(t, run(t.Context(), &out))
	assert.Contains(t, out.String(), "Caller: sat:worker-system (token sent as Bearer)")

	srv.RevokeToken(raw)
	err := run(t.Context(), &out)
	assert.ErrorContains(t, err, "HTTP 401")
	assert.NotContains(t, err.Error(), strings.TrimPrefix(raw, "enrt_"))
}

// TestHelp: -h prints the usage, with the environment it reads, and runs
// nothing (issue 23: it ran).
func TestHelp(t *testing.T) {
	out, err := testutil.RunMain(t, "-h")
	if err != nil || !strings.Contains(out, "Usage: go run ./examples/script") || !strings.Contains(out, "ERPNET_AUTHORITY") ||
		strings.Contains(out, "customers:") {
		t.Fatalf("script -h: %v\n%s", err, out)
	}
}
