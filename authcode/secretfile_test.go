package authcode_test

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/erpnetgo/auth"
	"github.com/erpnetgo/auth/authcode"
	"github.com/erpnetgo/auth/erpnettest"
	"github.com/erpnetgo/auth/internal/testutil"
)

// idpLog records, for every request to the token and revocation
// endpoints, the grant ("revocation" for the latter) and the status.
type idpLog struct {
	mu      sync.Mutex
	answers []string
}

func (l *idpLog) RoundTrip(req *http.Request) (*http.Response, error) {
	what := ""
	switch {
	case strings.HasSuffix(req.URL.Path, "/connect/token"):
		b, _ := io.ReadAll(req.Body)
		req.Body.Close()
		req.Body = io.NopCloser(bytes.NewReader(b))
		q, _ := url.ParseQuery(string(b))
		what = q.Get("grant_type")
	case strings.HasSuffix(req.URL.Path, "/connect/revocation"):
		what = "revocation"
	}
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err == nil && what != "" {
		l.mu.Lock()
		l.answers = append(l.answers, what+" "+resp.Status[:3])
		l.mu.Unlock()
	}
	return resp, err
}

// take returns the answers recorded since the last take.
func (l *idpLog) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := l.answers
	l.answers = nil
	return out
}

// secretApp is a web app whose client secret is in a mounted file.
type secretApp struct {
	srv   *erpnettest.Server
	mount *testutil.SecretMount
	c     *authcode.Client
	ts    *httptest.Server
	idp   *idpLog
	logs  *testutil.SyncBuffer
	rec   *testutil.Recorder
}

func newSecretApp(t *testing.T) *secretApp {
	a := &secretApp{srv: erpnettest.NewServer(t), idp: &idpLog{}, logs: &testutil.SyncBuffer{}, rec: &testutil.Recorder{}}
	a.mount = testutil.NewSecretMount(t, erpnettest.Demo.WebAppSecret)
	mux := http.NewServeMux()
	a.ts = httptest.NewServer(mux)
	t.Cleanup(a.ts.Close)
	c, err := authcode.New(authcode.Config{
		Authority:             a.srv.URL(),
		ClientID:              erpnettest.Demo.WebAppID,
		ClientSecretFile:      a.mount.Path(),
		RedirectURL:           a.ts.URL + "/callback",
		PostLogoutRedirectURL: a.ts.URL + "/",
		Keys:                  [][]byte{bytes.Repeat([]byte{9}, 32)},
		HTTPClient:            &http.Client{Transport: a.idp},
		Logger:                slog.New(slog.NewTextHandler(a.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Hooks:                 a.rec.Hooks(false),
	})
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	a.c = c
	mux.Handle("/signin", c.SignIn())
	mux.Handle("/callback", c.Callback())
	mux.Handle("POST /signout", c.SignOut())
	// /api calls the Domain API as the user; ?refresh first drops the
	// cached access token so the call redeems the refresh token.
	mux.Handle("/api", c.RequireUser(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := authcode.SessionFromContext(r.Context())
		if r.URL.Query().Has("refresh") {
			c.Invalidate(s)
		}
		resp, err := c.UserClient(r.Context(), s).Get(a.srv.DomainAPI() + "Crm_Sales_Customers?$top=1")
		switch {
		case errors.Is(err, auth.ErrMisconfigured):
			http.Error(w, "misconfigured", http.StatusBadGateway)
		case err != nil:
			http.Error(w, "failed", http.StatusServiceUnavailable)
		default:
			resp.Body.Close()
			w.WriteHeader(resp.StatusCode)
		}
	})))
	return a
}

func (a *secretApp) signIn(t *testing.T, user string) *http.Client {
	t.Helper()
	hc, err := a.srv.SignIn(a.ts.URL+"/signin", user)
	require.NoError(t, err)
	return hc
}

func (a *secretApp) get(t *testing.T, hc *http.Client, path string) int {
	t.Helper()
	resp, err := hc.Get(a.ts.URL + path)
	require.NoError(t, err)
	resp.Body.Close()
	return resp.StatusCode
}

func (a *secretApp) rotate(t *testing.T, secret string, replaceFile bool) {
	a.srv.SetSecret(erpnettest.Demo.WebAppID, secret)
	if replaceFile {
		a.mount.Write(secret)
	}
}

func (a *secretApp) assertNoSecret(t *testing.T, secrets ...string) {
	t.Helper()
	all := a.logs.String() + a.rec.Dump()
	for _, s := range append(secrets, erpnettest.Demo.WebAppSecret) {
		assert.NotContains(t, all, s, "a secret reached a log or hook event")
	}
}

// The code exchange, the refresh and the revocation each survive a secret
// rotation with one refused request and one good one.
func TestSecretRotationCodeExchangeRefreshRevocation(t *testing.T) {
	a := newSecretApp(t)
	alice := a.signIn(t, erpnettest.Demo.Alice)
	require.Equal(t, http.StatusOK, a.get(t, alice, "/api"))
	assert.Equal(t, []string{"authorization_code 200"}, a.idp.take())

	a.rotate(t, "second-s3cret", true)
	bob := a.signIn(t, erpnettest.Demo.Bob)
	assert.Equal(t, []string{"authorization_code 401", "authorization_code 200"}, a.idp.take(), "code exchange")
	require.Equal(t, http.StatusOK, a.get(t, bob, "/api"))

	a.rotate(t, "third-s3cret", true)
	require.Equal(t, http.StatusOK, a.get(t, alice, "/api?refresh"))
	assert.Equal(t, []string{"refresh_token 401", "refresh_token 200"}, a.idp.take(), "refresh")

	a.rotate(t, "fourth-s3cret", true)
	resp, err := alice.Post(a.ts.URL+"/signout", "application/x-www-form-urlencoded", nil)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, []string{"revocation 401", "revocation 200"}, a.idp.take(), "revocation")
	assert.Equal(t, 3, strings.Count(a.logs.String(), "ClientSecretFile holds a new one"))
	a.assertNoSecret(t, "second-s3cret", "third-s3cret", "fourth-s3cret")
}

// When the file still holds the refused secret, the refresh fails at once
// with ErrMisconfigured (one request), the session keeps its tokens, and
// replacing the file brings it back.
func TestSecretRotationFileNotReplacedKeepsTheSession(t *testing.T) {
	a := newSecretApp(t)
	alice := a.signIn(t, erpnettest.Demo.Alice)
	a.idp.take()
	a.rotate(t, "second-s3cret", false)
	assert.Equal(t, http.StatusBadGateway, a.get(t, alice, "/api?refresh"))
	assert.Equal(t, []string{"refresh_token 401"}, a.idp.take(), "one request for the one token call")
	// The cache is empty now: RequireUser's token call and the handler's
	// each make one request, each refused at once.
	assert.Equal(t, http.StatusBadGateway, a.get(t, alice, "/api"))
	assert.Equal(t, []string{"refresh_token 401", "refresh_token 401"}, a.idp.take())

	a.mount.Write("second-s3cret")
	assert.Equal(t, http.StatusOK, a.get(t, alice, "/api"))
	assert.Equal(t, []string{"refresh_token 401", "refresh_token 200"}, a.idp.take(), "the refresh token was not used up")
	a.assertNoSecret(t, "second-s3cret")
}

func TestSecretFileConfigIsExclusive(t *testing.T) {
	_, err := authcode.New(authcode.Config{Authority: "https://demodb.my.erp.net", ClientID: "com.example/x",
		ClientSecret: "s3cr3t-do-not-print", ClientSecretFile: "/run/secrets/erpnet"})
	var ce *auth.ConfigError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, "ClientSecretFile", ce.Field)
	assert.NotContains(t, err.Error(), "s3cr3t")
	_, err = authcode.New(authcode.Config{Authority: "https://demodb.my.erp.net", ClientID: "com.example/x", ClientSecretFile: "/run/secrets/erpnet"})
	assert.NoError(t, err, "New does not read the file")
}
