package clientcreds_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/erpnetgo/auth/erpnettest"
	"github.com/erpnetgo/auth/internal/testutil"
)

// A worker's run as its operator sees it through the hooks: one token,
// one ERP.net session, cache hits for the rest, retries inside the one
// token request during an outage, and no secret in any event.
func TestHooksReportAWorkerRun(t *testing.T) {
	s := erpnettest.NewServer(t)
	s.InjectFault("token", erpnettest.Fault{Status: 503, Times: 2})
	var rec testutil.Recorder
	cfg := workerConfig(s)
	cfg.Hooks = rec.Hooks(false)
	src := newSource(t, cfg)
	hc := src.Client(context.Background())
	root, err := src.DomainAPI(context.Background())
	require.NoError(t, err)
	const calls = 5
	for i := 0; i < calls; i++ {
		resp, err := hc.Get(root + "Crm_Sales_Customers?$top=1")
		require.NoError(t, err)
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
	}
	assert.Equal(t, 1, rec.Count("token.issued"))
	assert.Equal(t, 0, rec.Count("token.failed"))
	assert.Equal(t, 1, rec.Count("token.wait"), "only the first call waited")
	assert.Equal(t, calls-1, rec.Count("token.cache_hit"))
	assert.Equal(t, 1, rec.Count("api.session_opened"), "one ERP.net session for one token")
	assert.Equal(t, 1, s.LicensesInUse())
	assert.Equal(t, 1, rec.Calls("discovery"))
	assert.Equal(t, 1, rec.Calls("token"))
	for _, e := range rec.Events() {
		assert.Equal(t, "clientcreds", e.Flow)
		assert.Equal(t, erpnettest.Demo.WorkerID, e.ClientID)
		if e.Name == "token.issued" {
			assert.Equal(t, "client_credentials", e.Grant)
			assert.Equal(t, 3, e.Attempts, "two 503s, then the token")
		}
	}
	tok, err := src.Token(context.Background())
	require.NoError(t, err)
	dump := rec.Dump()
	for _, secret := range []string{tok.AccessToken, erpnettest.Demo.WorkerSecret} {
		assert.False(t, strings.Contains(dump, secret), "a secret reached a hook")
	}
}

// An API answering 429 is retried, and each backoff is reported.
func TestHooksReportAPIBackoff(t *testing.T) {
	s := erpnettest.NewServer(t)
	s.InjectFault("domainapi", erpnettest.Fault{Status: 429})
	var rec testutil.Recorder
	cfg := workerConfig(s)
	cfg.Hooks = rec.Hooks(false)
	src := newSource(t, cfg)
	root, err := src.DomainAPI(context.Background())
	require.NoError(t, err)
	resp, err := src.Client(context.Background()).Get(root + "Crm_Sales_Customers")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, 1, rec.Count("api.backoff"))
	assert.Equal(t, 1, rec.Count("api.session_opened"))
}
