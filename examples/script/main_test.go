package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/erpnetgo/auth/erpnettest"
)

// setenv sets the ERPNET_* variables for one test, unsetting those not given.
func setenv(t *testing.T, m map[string]string) {
	for _, k := range []string{"ERPNET_TOKEN", "ERPNET_URL", "ERPNET_HEADER"} {
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
	setenv(t, map[string]string{"ERPNET_TOKEN": bad, "ERPNET_URL": "https://x.example"})
	err := run(t.Context(), &out)
	require.ErrorContains(t, err, `malformed reference token in environment variable "ERPNET_TOKEN"`)
	assert.NotContains(t, err.Error(), strings.TrimPrefix(bad, "enrt_"))

	const good = "enrt_0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF"
	setenv(t, map[string]string{"ERPNET_TOKEN": good})
	err = run(t.Context(), &out)
	assert.ErrorContains(t, err, "ERPNET_URL")
	setenv(t, map[string]string{"ERPNET_TOKEN": good, "ERPNET_URL": "http://erp.example.com"})
	err = run(t.Context(), &out)
	assert.ErrorContains(t, err, "must use https")
	assert.NotContains(t, err.Error(), strings.TrimPrefix(good, "enrt_"))
}

func TestRunWithConfiguredToken(t *testing.T) {
	srv := erpnettest.NewServer(t)
	raw := srv.MintSAT(erpnettest.Demo.WorkerID, "read")
	setenv(t, map[string]string{"ERPNET_TOKEN": raw + "\n", "ERPNET_URL": srv.URL() + "/", "ERPNET_HEADER": "apikey"})
	var out bytes.Buffer
	require.NoError(t, run(t.Context(), &out))
	assert.Contains(t, out.String(), "Caller: sat:worker-system (token sent as X-Api-Key)")
	assert.NotContains(t, out.String(), "in-process")

	srv.RevokeToken(raw)
	err := run(t.Context(), &out)
	assert.ErrorContains(t, err, "HTTP 401")
	assert.NotContains(t, err.Error(), strings.TrimPrefix(raw, "enrt_"))
}
