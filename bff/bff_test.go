package bff

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/erpnetgo/auth"
	"github.com/erpnetgo/auth/authcode"
	"github.com/erpnetgo/auth/internal/erpnetctl"
)

func TestNewChecksConfig(t *testing.T) {
	web, err := authcode.New(authcode.Config{Authority: "https://demodb.my.erp.net", ClientID: "com.example/spa", RedirectURL: "https://app.example.com/callback"})
	require.NoError(t, err)
	defer web.Close()
	noWeb, err := authcode.New(authcode.Config{Authority: "https://demodb.my.erp.net", ClientID: "com.example/cli"})
	require.NoError(t, err)
	defer noWeb.Close()
	for _, tc := range []struct {
		name  string
		cfg   Config
		field string
	}{
		{"no Client", Config{}, "Client"},
		{"Client without RedirectURL", Config{Client: noWeb}, "Client"},
		{"empty claim", Config{Client: web, Claims: []string{""}}, "Claims[0]"},
		{"claim with a space", Config{Client: web, Claims: []string{"email", "a b"}}, "Claims[1]"},
		{"claim shadowing logoutUrl", Config{Client: web, Claims: []string{"logoutUrl"}}, "Claims[0]"},
		{"lower-case method", Config{Client: web, Methods: []string{"get"}}, "Methods[0]"},
		{"TRACE", Config{Client: web, Methods: []string{"GET", "TRACE"}}, "Methods[1]"},
		{"CONNECT", Config{Client: web, Methods: []string{"CONNECT"}}, "Methods[0]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, err := New(tc.cfg)
			assert.Nil(t, h)
			var ce *auth.ConfigError
			require.True(t, errors.As(err, &ce), "%v", err)
			assert.Equal(t, tc.field, ce.Field)
			assert.True(t, errors.Is(err, auth.ErrMisconfigured))
		})
	}
	h, err := New(Config{Client: web, Claims: []string{"email", "sub", "email"}, Methods: []string{"GET", "GET", "PROPFIND"}})
	require.NoError(t, err)
	assert.Equal(t, []string{"email"}, h.(*handler).claims)
	assert.Equal(t, "GET, PROPFIND", h.(*handler).allow)
}

// The whole round: sign in through /bff/login, /bff/user, a Domain API
// call through /bff/api/, sign-out; no answer carries a token.
func TestSignInUserAPISignOut(t *testing.T) {
	w := newWorld(t)
	b := w.browser()
	assert.Equal(t, "/customers?page=2", b.signIn("/customers?page=2"))

	u := b.get("/bff/user")
	require.Equal(t, http.StatusOK, u.status, u.body)
	assert.Equal(t, "no-store", u.header.Get("Cache-Control"))
	info := u.json(t)
	assert.Equal(t, alice, info["sub"])
	assert.Equal(t, "Alice Anderson", info["name"])
	assert.Equal(t, "alice@example.com", info["email"], "Config.Claims lists email")
	assert.NotContains(t, info, "preferred_username", "only the claims the app allows")
	assert.InDelta(t, 14*24*3600, info["sessionExpiresIn"], 5)
	logoutURL, _ := info["logoutUrl"].(string)
	require.True(t, strings.HasPrefix(logoutURL, "/bff/logout?sid="), logoutURL)
	assert.Len(t, info, 5)

	r := b.get("/bff/api/Crm_Sales_Customers?$top=2")
	require.Equal(t, http.StatusOK, r.status, r.body)
	assert.Equal(t, "user:alice", r.header.Get("X-Erpnet-Caller"))
	assert.Contains(t, r.body, "Acme Manufacturing Ltd")
	var body struct{ Value []map[string]any }
	require.NoError(t, json.Unmarshal([]byte(r.body), &body))
	assert.Len(t, body.Value, 2, "the query reached the Domain API")
	calls := erpnetctl.Of(w.idp).APICalls()
	require.Len(t, calls, 1)
	assert.Equal(t, "/api/domain/odata/Crm_Sales_Customers", calls[0].Path)
	assert.Equal(t, "bearer", calls[0].Via)

	// The service document: /bff/api/ is the Domain API root.
	r = b.get("/bff/api/")
	require.Equal(t, http.StatusOK, r.status, r.body)
	assert.Contains(t, r.body, `"EntitySet"`)

	// Sign out with logoutUrl (a navigation): the identity server's
	// end-session endpoint, with the ID token hint and the return address.
	r = b.do(http.MethodGet, logoutURL, nil, "Accept", "text/html", "Sec-Fetch-Mode", "navigate", "Sec-Fetch-Site", "same-origin")
	require.Equal(t, http.StatusSeeOther, r.status, r.body)
	end, err := url.Parse(r.header.Get("Location"))
	require.NoError(t, err)
	assert.Equal(t, w.idp.Authority()+"/connect/endsession", end.Scheme+"://"+end.Host+end.Path)
	assert.NotEmpty(t, end.Query().Get("id_token_hint"))
	assert.Equal(t, w.app.URL+"/", end.Query().Get("post_logout_redirect_uri"))
	assert.Contains(t, strings.Join(r.header.Values("Set-Cookie"), "\n"), "erpnet_session=;", "the cookie is cleared")
	assert.Equal(t, 1, w.ev.Count("signout.completed"))
	assert.Equal(t, 1, w.idp.Requests("revocation"), "the refresh token is revoked")

	u = b.get("/bff/user")
	assert.Equal(t, http.StatusUnauthorized, u.status)
	assert.Equal(t, "login_required", u.json(t)["error"])
	before := w.domainAPICalls()
	r = b.get("/bff/api/Crm_Sales_Customers")
	assert.Equal(t, http.StatusUnauthorized, r.status)
	assert.Equal(t, "login_required", r.json(t)["error"])
	assert.Equal(t, before, w.domainAPICalls())

	w.requireNoTokens()
	for _, tok := range w.spy.all() {
		require.NotContains(t, w.logs.String(), tok, "a token in the logs")
	}
	assert.NotContains(t, w.logs.String(), "Crm_Sales_Customers", "API paths are not logged")
}

// The session cookie is authcode's: HttpOnly, SameSite=Lax (the identity
// server is always another site), Secure and __Host- prefixed over https.
func TestSessionCookie(t *testing.T) {
	for _, tc := range []struct {
		name   string
		opts   []func(*setup)
		cookie string
		secure bool
	}{
		{"http on loopback", nil, "erpnet_session", false},
		{"https", []func(*setup){withTLS()}, "__Host-erpnet_session", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, tc.opts...)
			b := w.browser()
			r := b.do(http.MethodGet, "/bff/login", nil)
			r = b.do(http.MethodGet, r.header.Get("Location"), nil)
			r = b.do(http.MethodGet, r.header.Get("Location"), nil)
			require.Equal(t, http.StatusSeeOther, r.status, r.body)
			var session *http.Cookie
			for _, c := range (&http.Response{Header: r.header}).Cookies() {
				if strings.HasSuffix(c.Name, "erpnet_session") && c.MaxAge > 0 {
					session = c
				}
			}
			require.NotNil(t, session, "%q", r.header.Values("Set-Cookie"))
			assert.Equal(t, tc.cookie, session.Name)
			assert.True(t, session.HttpOnly)
			assert.Equal(t, http.SameSiteLaxMode, session.SameSite)
			assert.Equal(t, "/", session.Path)
			assert.Empty(t, session.Domain)
			assert.Equal(t, tc.secure, session.Secure)
			assert.Equal(t, http.StatusOK, b.get("/bff/user").status)
			assert.Equal(t, http.StatusOK, b.get("/bff/api/Crm_Sales_Customers").status)
			w.requireNoTokens()
		})
	}
}

func TestLoginReturnURL(t *testing.T) {
	w := newWorld(t)
	for _, tc := range []struct{ ret, want string }{
		{"", "/"},
		{"/orders/7?tab=lines", "/orders/7?tab=lines"},
		{"https://evil.example/", "/"},
		{"//evil.example/x", "/"},
		{"/\\evil.example", "/"},
		{"/bff/login", "/"},
		{"/bff/user", "/"},
		{"/%62ff/login", "/"},
		{"/callback", "/"},
	} {
		t.Run(tc.ret, func(t *testing.T) {
			assert.Equal(t, tc.want, w.browser().signIn(tc.ret))
		})
	}
	r := w.browser().do(http.MethodPost, "/bff/login", nil)
	assert.Equal(t, http.StatusMethodNotAllowed, r.status)
	assert.Equal(t, "GET, HEAD", r.header.Get("Allow"))
}

// Without X-CSRF: 1, /bff/user and /bff/api/ answer 401 and nothing
// reaches the Domain API; people get a page, scripts JSON.
func TestAntiForgeryHeader(t *testing.T) {
	w := newWorld(t)
	b := w.signedIn()
	before := w.domainAPICalls()
	for _, tc := range []struct {
		name string
		hdr  []string
	}{
		{"no header", nil},
		{"X-CSRF: 0", []string{"X-CSRF", "0"}},
		{"X-CSRF: true", []string{"X-CSRF", "true"}},
		{"header from another site", []string{"X-CSRF", "1", "Sec-Fetch-Site", "cross-site"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodDelete} {
				r := b.do(m, "/bff/api/Crm_Sales_Customers", strings.NewReader(`{"Name":"x"}`), tc.hdr...)
				require.Equal(t, http.StatusUnauthorized, r.status, "%s: %s", m, r.body)
				assert.Equal(t, "antiforgery_required", r.json(t)["error"])
			}
			r := b.do(http.MethodGet, "/bff/user", nil, tc.hdr...)
			require.Equal(t, http.StatusUnauthorized, r.status, r.body)
			assert.Equal(t, "antiforgery_required", r.json(t)["error"])
		})
	}
	assert.Equal(t, before, w.domainAPICalls(), "nothing forwarded")

	// A cross-site form POST (a navigation): a plain page, no Go text.
	r := b.do(http.MethodPost, "/bff/api/Crm_Sales_Customers", strings.NewReader("Name=x"),
		"Content-Type", "application/x-www-form-urlencoded", "Accept", "text/html", "Sec-Fetch-Mode", "navigate", "Sec-Fetch-Site", "cross-site")
	assert.Equal(t, http.StatusUnauthorized, r.status)
	assert.Contains(t, r.header.Get("Content-Type"), "text/html")
	assert.Contains(t, r.body, "cannot be opened directly or from another site")
	assert.NotContains(t, r.body, "bff:")
	assert.Equal(t, before, w.domainAPICalls(), "nothing forwarded")

	refused := named(w.ev, "bff.refused")
	require.Len(t, refused, 4*4+1)
	assert.Equal(t, "bff", refused[0].Flow)
	assert.Equal(t, appID, refused[0].ClientID)
	assert.Equal(t, http.StatusUnauthorized, refused[0].StatusCode)
}

func TestSignedOutAnswers401(t *testing.T) {
	w := newWorld(t)
	b := w.browser()
	for _, p := range []string{"/bff/user", "/bff/api/Crm_Sales_Customers"} {
		r := b.get(p)
		require.Equal(t, http.StatusUnauthorized, r.status, r.body)
		assert.Equal(t, "login_required", r.json(t)["error"])
		assert.Equal(t, "no-store", r.header.Get("Cache-Control"))
	}
	assert.Zero(t, w.domainAPICalls())
	r := b.get("/bff/nothing")
	assert.Equal(t, http.StatusNotFound, r.status)
	r = b.do(http.MethodPost, "/bff/user", nil, "X-CSRF", "1")
	assert.Equal(t, http.StatusMethodNotAllowed, r.status)
}

// A dead refresh token (a password change revokes the user's sign-ins)
// ends the session: the next /bff/api call and /bff/user answer 401
// reauth_required, and nothing more is sent with the dead token.
func TestRevokedUserMustSignInAgain(t *testing.T) {
	t.Run("next API call", func(t *testing.T) {
		w := newWorld(t)
		b := w.signedIn()
		require.Equal(t, http.StatusOK, b.get("/bff/api/Crm_Sales_Customers").status)
		w.idp.RevokeUser(alice)
		r := b.get("/bff/api/Crm_Sales_Customers")
		require.Equal(t, http.StatusUnauthorized, r.status, r.body)
		assert.Equal(t, "reauth_required", r.json(t)["error"])
		before := w.domainAPICalls()
		for _, p := range []string{"/bff/user", "/bff/api/Crm_Sales_Customers"} {
			r = b.get(p)
			require.Equal(t, http.StatusUnauthorized, r.status, r.body)
			assert.Equal(t, "reauth_required", r.json(t)["error"], p)
		}
		assert.Equal(t, before, w.domainAPICalls(), "nothing forwarded once the session is dead")
		assert.Equal(t, 1, w.ev.Count("reauth.required"))
		// Signing in again works.
		assert.Equal(t, "/", b.signIn(""))
		assert.Equal(t, http.StatusOK, b.get("/bff/api/Crm_Sales_Customers").status)
	})
	t.Run("next /bff/user after expiry", func(t *testing.T) {
		w := newWorld(t)
		b := w.signedIn()
		w.idp.RevokeUser(alice)
		w.advance(2 * time.Hour) // the access token expired too: /bff/user must refresh
		r := b.get("/bff/user")
		require.Equal(t, http.StatusUnauthorized, r.status, r.body)
		assert.Equal(t, "reauth_required", r.json(t)["error"])
		assert.Zero(t, w.domainAPICalls())
	})
	t.Run("POST, not replayed", func(t *testing.T) {
		w := newWorld(t)
		b := w.signedIn()
		w.idp.RevokeUser(alice)
		r := b.do(http.MethodPost, "/bff/api/Crm_Sales_Customers", strings.NewReader(`{"Name":"x"}`), "X-CSRF", "1", "Content-Type", "application/json")
		require.Equal(t, http.StatusUnauthorized, r.status, r.body)
		assert.Equal(t, "reauth_required", r.json(t)["error"])
		assert.Equal(t, 1, w.domainAPICalls(), "the POST was sent once")
	})
}

// flakyStore is a shared Store that can be made to fail.
type flakyStore struct {
	mu   sync.Mutex
	m    map[string][]byte
	fail bool
}

var errStoreDown = errors.New("store down")

func (s *flakyStore) Load(_ context.Context, key string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail {
		return nil, errStoreDown
	}
	v, ok := s.m[key]
	if !ok {
		return nil, authcode.ErrSessionNotFound
	}
	return v, nil
}

func (s *flakyStore) Save(_ context.Context, key string, v []byte, _ time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail {
		return errStoreDown
	}
	s.m[key] = append([]byte(nil), v...)
	return nil
}

func (s *flakyStore) Add(_ context.Context, key string, v []byte, _ time.Duration) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail {
		return false, errStoreDown
	}
	if _, ok := s.m[key]; ok {
		return false, nil
	}
	s.m[key] = append([]byte(nil), v...)
	return true, nil
}

func (s *flakyStore) Delete(_ context.Context, key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail {
		return errStoreDown
	}
	delete(s.m, key)
	return nil
}

func (s *flakyStore) setFail(v bool) { s.mu.Lock(); s.fail = v; s.mu.Unlock() }

// A session store that is down is not a sign-out: 503, and the user is
// still signed in when it is back.
func TestStoreDownIsNotSignedOut(t *testing.T) {
	store := &flakyStore{m: map[string][]byte{}}
	w := newWorld(t, withClient(func(c *authcode.Config) { c.Store = store }))
	b := w.signedIn()
	// A second replica that does not hold the session in memory.
	ac2, err := authcode.New(w.acfg)
	require.NoError(t, err)
	defer ac2.Close()
	h2, err := New(Config{Client: ac2})
	require.NoError(t, err)
	replica := httptest.NewServer(h2)
	defer replica.Close()

	store.setFail(true)
	before := w.domainAPICalls()
	for _, p := range []string{"/bff/user", "/bff/api/Crm_Sales_Customers"} {
		r := b.get(replica.URL + p)
		require.Equal(t, http.StatusServiceUnavailable, r.status, r.body)
		assert.Equal(t, "temporarily_unavailable", r.json(t)["error"])
		assert.NotContains(t, r.body, "store down")
	}
	assert.Equal(t, before, w.domainAPICalls())
	store.setFail(false)
	assert.Equal(t, http.StatusOK, b.get(replica.URL+"/bff/user").status)
	assert.Equal(t, http.StatusOK, b.get(replica.URL+"/bff/api/Crm_Sales_Customers").status)
}
