package bff

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/erpnetgo/auth/internal/erpnetctl"
)

// parallel sends n API calls at once from b and returns their statuses.
func parallel(b *browser, n int, method, path string) []int {
	statuses := make([]int, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			statuses[i] = b.do(method, path, nil, "X-CSRF", "1").status
		})
	}
	close(start)
	wg.Wait()
	return statuses
}

func all(n, status int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = status
	}
	return out
}

// Many parallel SPA calls at token expiry make one refresh: whether the
// app's clock says the token expired (the session's token cache refreshes
// once for all) or only the Domain API refuses it (every call gets a 401,
// the first drops the token, all wait for the one refresh and retry).
// ERP.net rotates refresh tokens, so a second redemption would end the
// sign-in.
func TestParallelCallsAtExpiryRefreshOnce(t *testing.T) {
	for _, tc := range []struct {
		name    string
		advance func(w *world)
	}{
		{"the app's clock", func(w *world) { w.advance(61 * time.Minute) }},
		{"the Domain API's clock only", func(w *world) { w.idp.Advance(61 * time.Minute) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t)
			b := w.signedIn()
			require.Equal(t, all(3, http.StatusOK), parallel(b, 3, http.MethodGet, "/bff/api/Crm_Sales_Customers"))
			require.Equal(t, 0, erpnetctl.Of(w.idp).Grants("refresh_token"))
			require.Equal(t, 1, w.idp.SessionsOpened())
			tc.advance(w)
			assert.Equal(t, all(20, http.StatusOK), parallel(b, 20, http.MethodGet, "/bff/api/Crm_Sales_Customers"))
			assert.Equal(t, 1, erpnetctl.Of(w.idp).Grants("refresh_token"), "one refresh for 20 calls")
			assert.Equal(t, 2, w.idp.SessionsOpened(), "the refreshed token's calls share one ERP.net session")
			assert.Equal(t, http.StatusOK, b.get("/bff/user").status)
			assert.Equal(t, 1, erpnetctl.Of(w.idp).Grants("refresh_token"))
			w.requireNoTokens()
		})
	}
}

// A non-idempotent call answered 401 is not sent again (the Domain API
// may have acted on it); the refused token is dropped, so the SPA's retry
// carries a fresh one. An idempotent call is retried by the transport.
func TestNonIdempotentCallIsNotReplayed(t *testing.T) {
	for _, m := range []string{http.MethodPost, http.MethodPatch} {
		t.Run(m, func(t *testing.T) {
			w := newWorld(t)
			b := w.signedIn()
			path := "/bff/api/Crm_Sales_Customers"
			if m == http.MethodPatch {
				var list struct{ Value []struct{ Id string } }
				require.NoError(t, json.Unmarshal([]byte(b.get(path+"?$top=1").body), &list))
				require.Len(t, list.Value, 1)
				path += "(" + list.Value[0].Id + ")"
			}
			w.idp.Advance(61 * time.Minute) // the Domain API refuses the token; the app does not know yet
			before := w.domainAPICalls()
			r := b.do(m, path, strings.NewReader(`{"Name":"New"}`), "X-CSRF", "1", "Content-Type", "application/json")
			assert.Equal(t, http.StatusUnauthorized, r.status, r.body)
			assert.NotEqual(t, "reauth_required", r.json(t)["error"], "the session is alive")
			assert.Equal(t, before+1, w.domainAPICalls(), "sent once")
			assert.Zero(t, w.ev.Count("api.retry_401"))
			// The SPA retries: a fresh token, one refresh.
			r = b.do(m, path, strings.NewReader(`{"Name":"New"}`), "X-CSRF", "1", "Content-Type", "application/json")
			assert.Less(t, r.status, 300, r.body)
			assert.Equal(t, 1, erpnetctl.Of(w.idp).Grants("refresh_token"))
		})
	}
	t.Run("POST without a body", func(t *testing.T) {
		w := newWorld(t)
		b := w.signedIn()
		w.idp.Advance(61 * time.Minute)
		before := w.domainAPICalls()
		r := b.do(http.MethodPost, "/bff/api/Crm_Sales_Customers", nil, "X-CSRF", "1")
		assert.Equal(t, http.StatusUnauthorized, r.status, r.body)
		assert.Equal(t, before+1, w.domainAPICalls(), "sent once")
	})
	t.Run("GET and DELETE are retried", func(t *testing.T) {
		w := newWorld(t)
		b := w.signedIn()
		w.idp.Advance(61 * time.Minute)
		before := w.domainAPICalls()
		assert.Equal(t, http.StatusOK, b.get("/bff/api/Crm_Sales_Customers").status)
		assert.Equal(t, before+2, w.domainAPICalls())
		assert.Equal(t, 1, w.ev.Count("api.retry_401"))
		assert.Equal(t, 1, erpnetctl.Of(w.idp).Grants("refresh_token"))
	})
}

// Three tabs of one browser share one session: one ERP.net session (one
// license) for all their calls.
func TestTabsShareOneSession(t *testing.T) {
	w := newWorld(t)
	b := w.signedIn()
	for range 3 { // each tab loads the SPA: /bff/user, then the customers
		require.Equal(t, http.StatusOK, b.get("/bff/user").status)
		require.Equal(t, all(5, http.StatusOK), parallel(b, 5, http.MethodGet, "/bff/api/Crm_Sales_Customers"))
	}
	assert.Equal(t, 1, w.idp.SessionsOpened())
	assert.Equal(t, 1, w.idp.LicensesInUse())
	assert.Equal(t, 1, w.ev.Count("api.session_opened"))
	assert.Equal(t, 1, erpnetctl.Of(w.idp).Grants("authorization_code"))
	assert.Zero(t, erpnetctl.Of(w.idp).Grants("refresh_token"))
}
