package hybrid_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/erpnetgo/auth/erpnettest"
)

// TestSignedOutFormPost: the portal's "Import now" form, sent from a second
// tab after the user signed out in the first, gets a page saying so, not
// raw JSON; a fetch of the same endpoint gets JSON (issue 23).
func TestSignedOutFormPost(t *testing.T) {
	e := newEnv(t, nil)
	alice := e.browser()
	alice.signIn(erpnettest.Demo.Alice)
	r := alice.do(http.MethodPost, e.srv.URL+"/signout", http.Header{"Sec-Fetch-Site": {"same-origin"}, "Origin": {e.srv.URL}})
	require.NoError(t, r.err)

	r = alice.do(http.MethodPost, e.srv.URL+"/import", http.Header{
		"Accept": {"text/html,application/xhtml+xml,*/*;q=0.8"}, "Sec-Fetch-Mode": {"navigate"}, "Sec-Fetch-Dest": {"document"},
		"Content-Type": {"application/x-www-form-urlencoded"}, "Referer": {e.srv.URL + "/customers"}})
	require.NoError(t, r.err)
	assert.Equal(t, http.StatusUnauthorized, r.status)
	assert.Contains(t, r.header.Get("Content-Type"), "text/html")
	assert.Contains(t, r.body, "You are signed out")
	assert.Contains(t, r.body, `href="/signin?return_to=%2Fcustomers"`)

	r = alice.do(http.MethodPost, e.srv.URL+"/import", http.Header{"Accept": {"*/*"}, "Sec-Fetch-Mode": {"cors"}})
	require.NoError(t, r.err)
	assert.Equal(t, http.StatusUnauthorized, r.status)
	assert.Contains(t, r.header.Get("Content-Type"), "application/json")
	assert.Contains(t, r.body, `"login_required"`)
}
