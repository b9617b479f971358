package erpnettest

import (
	"bytes"
	"cmp"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/erpnetgo/auth/internal/erpnetctl"
)

// control is the state of the test-only controls (package erpnetctl).
type control struct {
	mu     sync.Mutex // for grants
	grants map[string]int
	tamper atomic.Pointer[erpnetctl.Tamper] // for the next ID token
	auto   atomic.Pointer[string]           // the user signed in without the form
	k      atomic.Pointer[erpnetctl.Knobs]
}

func (c *control) knobs() erpnetctl.Knobs {
	if k := c.k.Load(); k != nil {
		return *k
	}
	return erpnetctl.Knobs{}
}

func (c *control) autoUser() string {
	if u := c.auto.Load(); u != nil {
		return *u
	}
	return ""
}

// countGrant counts a token request's grant_type before any fault is applied.
func (c *control) countGrant(r *http.Request) {
	var v url.Values
	if r.Method == http.MethodPost { // read the body, and put it back
		body, _ := io.ReadAll(io.LimitReader(r.Body, maxFormBytes+1)) // one more: the handler refuses it
		_ = r.Body.Close()
		r.Body = io.NopCloser(bytes.NewReader(body))
		v, _ = url.ParseQuery(string(body))
	}
	grant := v.Get("grant_type")
	c.mu.Lock()
	c.grants[grant[:min(len(grant), 100)]]++
	c.mu.Unlock()
}

// ctl implements erpnetctl.Controls for a Server.
type ctl struct{ *Server }

func init() {
	erpnetctl.Register(func(srv any) erpnetctl.Controls { return ctl{srv.(*Server)} })
}

func (c ctl) Grants(g string) int {
	c.ctl.mu.Lock()
	defer c.ctl.mu.Unlock()
	return c.ctl.grants[g]
}

func (c ctl) ResetCounts() {
	for i := range c.counts {
		c.counts[i].Store(0)
	}
	c.ctl.mu.Lock()
	c.ctl.grants = map[string]int{}
	c.ctl.mu.Unlock()
}

func (c ctl) APICalls() []erpnetctl.APICall {
	c.api.mu.Lock()
	defer c.api.mu.Unlock()
	return slices.Clone(c.api.calls[max(0, len(c.api.calls)-maxAPICalls):])
}

func (c ctl) AutoSignIn(user string) { c.ctl.auto.Store(&user) }
func (c ctl) Set(k erpnetctl.Knobs)  { c.ctl.k.Store(&k) }
func (c ctl) ResetAPICalls()         { c.api.mu.Lock(); c.api.calls = nil; c.api.mu.Unlock() }
func (c ctl) TamperNextIDToken(t erpnetctl.Tamper) {
	t.Claims = maps.Clone(t.Claims)
	c.ctl.tamper.Store(&t)
}

func (c ctl) Authorize(hc *http.Client, appURL, user string) (*url.URL, error) {
	b := *hc
	b.Transport = browserTransport{hc.Transport}
	if hc.Transport == nil {
		b.Transport = browserTransport{http.DefaultTransport}
	}
	return c.walk(&b, appURL, user)
}

func (c ctl) Tokens() []erpnetctl.TokenRecord {
	var out []erpnetctl.TokenRecord
	c.tokens.mu.Lock()
	for _, a := range c.tokens.access {
		out = append(out, erpnetctl.TokenRecord{Kind: "access_token", ClientID: a.clientID, Subject: a.subject, SID: a.sid,
			Family: a.family, JTI: a.jti, Scopes: slices.Clone(a.scopes), IssuedAt: a.issued, ExpiresAt: a.expires, Revoked: a.revoked})
	}
	for _, r := range c.tokens.refresh {
		f := r.f
		out = append(out, erpnetctl.TokenRecord{Kind: "refresh_token", ClientID: f.clientID, Subject: f.username,
			SID: f.sid, Family: f.id, Scopes: slices.Clone(f.scopes), IssuedAt: r.issued, ExpiresAt: f.expires, Revoked: r.rotated || f.revoked})
	}
	c.tokens.mu.Unlock()
	c.refs.mu.Lock()
	for _, t := range c.refs.m {
		out = append(out, erpnetctl.TokenRecord{Kind: "reference_token", ClientID: t.clientID, Subject: t.subject,
			Scopes: slices.Clone(t.scopes), IssuedAt: t.issued, ExpiresAt: t.expires, Revoked: t.revoked})
	}
	c.refs.mu.Unlock()
	slices.SortStableFunc(out, func(a, b erpnetctl.TokenRecord) int {
		return cmp.Or(a.IssuedAt.Compare(b.IssuedAt), cmp.Compare(a.Kind, b.Kind))
	})
	return out
}

// RevokeUser does what an ERP.net password change does: every sign-in of the user ends, and
// with it their refresh tokens (the next refresh gets invalid_grant), the access tokens
// issued in those sign-ins and their ERP.net API sessions. Reference tokens are not affected.
func (s *Server) RevokeUser(username string) {
	n := s.endSignins(func(si *signin) bool { return si.username == username })
	s.tokens.revokeFamilies(func(f *family) bool { return f.username == username })
	s.log.Info("erpnettest: user revoked", "user", username, "signins", n)
}
