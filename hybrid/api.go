package hybrid

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"

	"golang.org/x/oauth2"

	"github.com/erpnetgo/auth/authcode"
)

// UserAPI calls ERP.net APIs as one signed-in user, for the request at
// hand. Get it from App.User or, behind App.WithUser, from UserFrom.
//
// UserAPI and ServiceAPI are deliberately different types: neither can be
// assigned or converted to the other, and they share no method that hands
// out a client or a token (UserClient and UserTokenSource here,
// ServiceClient and ServiceTokenSource there), so no interface can carry
// both. Code that passes a user's identity where the System User's is
// expected does not compile.
//
// A UserAPI is request-scoped: its token source uses the request's context.
// Do not keep it beyond the request, and never hand it to background work
// (use App.RunAsService). The zero UserAPI is not signed in: its client
// refuses every request with ErrNoSession. fmt and slog print only the
// user's subject, never a token.
type UserAPI struct {
	u *userState
}

// userState is what a UserAPI holds; ServiceAPI holds a serviceState, so
// the two struct types have different fields and are not convertible.
type userState struct {
	app     *App
	session *authcode.Session
	client  *http.Client
	ts      oauth2.TokenSource
}

// UserClient returns an *http.Client whose requests carry the user's access
// token ("Authorization: Bearer ..."), refreshed as needed; on a 401 it
// refreshes and retries once when the body can be replayed. A request that
// already carries credentials (Authorization, X-Api-Key, Api-Key, or user
// info in the URL) is refused with an error matching ErrIdentityMix, before
// anything is sent.
func (u UserAPI) UserClient() *http.Client {
	if u.u == nil {
		return noUserClient
	}
	return u.u.client
}

// UserTokenSource returns the user's access tokens, for code written
// against golang.org/x/oauth2. The tokens carry no refresh token. Token
// fails with an error matching ErrReauthRequired when the user must sign in
// again. Keep what it returns on the server: it must never reach a browser
// or a background job.
func (u UserAPI) UserTokenSource() oauth2.TokenSource {
	if u.u == nil {
		return errTokenSource{ErrNoSession}
	}
	return u.u.ts
}

// Session returns who the user is (subject, name, e-mail, issuer, granted
// scopes). It holds no readable token. Nil for the zero UserAPI.
func (u UserAPI) Session() *authcode.Session {
	if u.u == nil {
		return nil
	}
	return u.u.session
}

// Subject returns the user's ERP.net user name (the ID token's "sub"), or
// "" for the zero UserAPI.
func (u UserAPI) Subject() string {
	if u.u == nil || u.u.session == nil {
		return ""
	}
	return u.u.session.Subject
}

// String describes the user without any token.
func (u UserAPI) String() string {
	if u.u == nil {
		return "hybrid.UserAPI(not signed in)"
	}
	return "hybrid.UserAPI{user: " + u.Subject() + "}"
}

// GoString is String: %#v never shows a token either.
func (u UserAPI) GoString() string { return u.String() }

// Format makes every fmt verb print String.
func (u UserAPI) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(u.String())) }

// LogValue logs the user as a group of non-secret attributes.
func (u UserAPI) LogValue() slog.Value {
	if u.u == nil {
		return slog.StringValue("not signed in")
	}
	return slog.GroupValue(slog.String("kind", "user"), slog.String("subject", u.Subject()))
}

// ServiceAPI calls ERP.net APIs as the Trusted Application's System User,
// with a service token from the Client Credentials grant that is cached for
// this process. Get it from App.Service, or in a job from App.RunAsService.
//
// It is a different type from UserAPI (see there): it cannot be used where
// a user's identity is expected, nor the other way round. A ServiceAPI may
// be kept and shared between goroutines. The zero ServiceAPI refuses every
// request with ErrClosed. fmt and slog print only the client_id, never a
// token.
type ServiceAPI struct {
	s *serviceState
}

// serviceState is what a ServiceAPI holds (see userState).
type serviceState struct {
	app      *App
	clientID string
	client   *http.Client
	ctx      context.Context // for ServiceTokenSource
}

// ServiceClient returns an *http.Client whose requests carry the service
// token, acting as the System User. It shares the one per-process token
// cache: one token request an hour, not one per call. On a 401 it fetches a
// fresh token and retries once when the body can be replayed. A request
// that already carries credentials (say, a user's token copied onto it) is
// refused with an error matching ErrIdentityMix, before anything is sent.
func (s ServiceAPI) ServiceClient() *http.Client {
	if s.s == nil {
		return noServiceClient
	}
	return s.s.client
}

// ServiceTokenSource returns service tokens from the per-process cache, for
// code written against golang.org/x/oauth2. A service token must never
// reach a browser (a cookie, a page, a redirect) nor another process
// (ERP.net's license terms). Token calls use the context of the ServiceAPI:
// context.Background for App.Service, the job's context in RunAsService.
func (s ServiceAPI) ServiceTokenSource() oauth2.TokenSource {
	if s.s == nil {
		return errTokenSource{ErrClosed}
	}
	return serviceTokenSource{st: s.s}
}

// ClientID returns the client_id of the Trusted Application whose System
// User the service token acts as, or "" for the zero ServiceAPI.
func (s ServiceAPI) ClientID() string {
	if s.s == nil {
		return ""
	}
	return s.s.clientID
}

// String describes the service identity without any token.
func (s ServiceAPI) String() string {
	if s.s == nil {
		return "hybrid.ServiceAPI(zero)"
	}
	return "hybrid.ServiceAPI{system user of: " + s.s.clientID + "}"
}

// GoString is String: %#v never shows a token either.
func (s ServiceAPI) GoString() string { return s.String() }

// Format makes every fmt verb print String.
func (s ServiceAPI) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(s.String())) }

// LogValue logs the service identity as a group of non-secret attributes.
func (s ServiceAPI) LogValue() slog.Value {
	if s.s == nil {
		return slog.StringValue("zero")
	}
	return slog.GroupValue(slog.String("kind", "system"), slog.String("client_id", s.s.clientID))
}

// serviceTokenSource is ServiceTokenSource: it remembers the tokens it
// hands out, so the response guard can recognise them.
type serviceTokenSource struct{ st *serviceState }

func (ts serviceTokenSource) Token() (*oauth2.Token, error) {
	tok, err := ts.st.app.svc.Token(ts.st.ctx)
	if err != nil {
		return nil, err
	}
	ts.st.app.noteServiceToken(tok.AccessToken)
	return tok, nil
}

type errTokenSource struct{ err error }

func (e errTokenSource) Token() (*oauth2.Token, error) { return nil, e.err }

// The clients of a zero UserAPI and a zero ServiceAPI.
var (
	noUserClient = &http.Client{Transport: refuseTransport{
		fmt.Errorf("hybrid: the zero UserAPI cannot send requests; get one from App.User or UserFrom: %w", ErrNoSession)}}
	noServiceClient = &http.Client{Transport: refuseTransport{
		fmt.Errorf("hybrid: the zero ServiceAPI cannot send requests; get one from App.Service: %w", ErrClosed)}}
)

type refuseTransport struct{ err error }

func (t refuseTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	closeBody(req)
	return nil, t.err
}
