package hybrid

import (
	"context"
	"fmt"
	"net/http"

	"golang.org/x/oauth2"

	"github.com/erpnetgo/auth"
	"github.com/erpnetgo/auth/authcode"
)

// UserAPI calls ERP.net APIs as one signed-in user, for the request at
// hand. Get it from [App.User] or, behind [App.WithUser], from UserFrom.
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
// (use [App.RunAsService]). The zero UserAPI is not signed in: its client
// refuses every request with an error matching [authcode.ErrNoSession].
//
// A UserAPI holds nothing but a pointer, so fmt (any verb) and slog never
// print a token: %v and %s print String (the user's subject).
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
// token: the client of [authcode.Client.UserClient] (instance-bound,
// refreshed as needed, a 401 refreshed and retried once when the body can
// be replayed), behind one more check: a request that already carries
// credentials (Authorization, X-Api-Key, Api-Key, or user info in the URL)
// is refused with an error matching [ErrIdentityMix], before anything is
// sent.
func (u UserAPI) UserClient() *http.Client {
	if u.u == nil {
		return noUserClient
	}
	return u.u.client
}

// UserTokenSource returns the user's access tokens, for code written
// against golang.org/x/oauth2. The tokens carry no refresh token. Token
// fails with an error matching [auth.ErrReauthRequired] when the user must sign in
// again. Keep what it returns on the server: it must never reach a browser
// or a background job.
func (u UserAPI) UserTokenSource() oauth2.TokenSource {
	if u.u == nil {
		return errTokenSource{authcode.ErrNoSession}
	}
	return u.u.ts
}

// Session returns who the user is (Subject, the ERP.net user name; name,
// e-mail, issuer, granted scopes). It holds no readable token. Nil for the
// zero UserAPI.
func (u UserAPI) Session() *authcode.Session {
	if u.u == nil {
		return nil
	}
	return u.u.session
}

// String describes the user without any token.
func (u UserAPI) String() string {
	if u.u == nil || u.u.session == nil {
		return "hybrid.UserAPI(not signed in)"
	}
	return "hybrid.UserAPI{user: " + u.u.session.Subject + "}"
}

// ServiceAPI calls ERP.net APIs as the Trusted Application's System User,
// with a service token from the Client Credentials grant that is cached for
// this process. Get it from [App.Service], or in a job from [App.RunAsService].
//
// It is a different type from UserAPI (see there): it cannot be used where
// a user's identity is expected, nor the other way round. A ServiceAPI may
// be kept and shared between goroutines. The zero ServiceAPI refuses every
// request with [auth.ErrClosed]. Like a UserAPI it holds nothing but a
// pointer: fmt and slog never print a token; %v and %s print String (the
// client_id).
type ServiceAPI struct {
	s *serviceState
}

// serviceState is what a ServiceAPI holds (see userState).
type serviceState struct {
	app *App
	ctx context.Context // for ServiceTokenSource
}

// ServiceClient returns an *http.Client whose requests carry the service
// token, acting as the System User: the client of [clientcreds.Source.Client]
// (instance-bound, one per-process token cache, a 401 answered with a
// fresh token and one retry when the body can be replayed), behind one more
// check: a request that already carries credentials (say, a user's token
// copied onto it) is refused with an error matching [ErrIdentityMix], before
// anything is sent.
func (s ServiceAPI) ServiceClient() *http.Client {
	if s.s == nil {
		return noServiceClient
	}
	return s.s.app.svcClient
}

// ServiceTokenSource returns service tokens from the per-process cache, for
// code written against golang.org/x/oauth2. A service token must never
// reach a browser (a cookie, a page, a redirect) nor another process
// (ERP.net's license terms). Token calls use the context of the ServiceAPI:
// context.Background for [App.Service], the job's context in RunAsService.
func (s ServiceAPI) ServiceTokenSource() oauth2.TokenSource {
	if s.s == nil {
		return errTokenSource{auth.ErrClosed}
	}
	return serviceTokenSource{st: s.s}
}

// ClientID returns the client_id of the Trusted Application whose System
// User the service token acts as, or "" for the zero ServiceAPI.
func (s ServiceAPI) ClientID() string {
	if s.s == nil {
		return ""
	}
	return s.s.app.svcID
}

// String describes the service identity without any token.
func (s ServiceAPI) String() string {
	if s.s == nil {
		return "hybrid.ServiceAPI(zero)"
	}
	return "hybrid.ServiceAPI{system user of: " + s.s.app.svcID + "}"
}

// serviceTokenSource is ServiceTokenSource: it remembers the tokens it
// hands out, so the response guard can recognise them.
type serviceTokenSource struct{ st *serviceState }

func (ts serviceTokenSource) Token() (*oauth2.Token, error) {
	if ts.st.app.closed.Load() {
		return nil, auth.ErrClosed
	}
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
		fmt.Errorf("hybrid: the zero UserAPI cannot send requests; get one from App.User or UserFrom: %w", authcode.ErrNoSession)}}
	noServiceClient = &http.Client{Transport: refuseTransport{
		fmt.Errorf("hybrid: the zero ServiceAPI cannot send requests; get one from App.Service: %w", auth.ErrClosed)}}
)

type refuseTransport struct{ err error }

func (t refuseTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	closeBody(req)
	return nil, t.err
}
