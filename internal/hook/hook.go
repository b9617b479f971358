// Package hook reports what the SDK does to the application's auth.Hooks:
// one Reporter per client fills in the flow, client_id and Authority, keeps user
// identifiers out unless the application opted in, and costs one nil check
// when no hook is set.
package hook

import (
	"context"

	"github.com/erpnetgo/auth"
)

// Reporter sends one client's events to its Hooks. The zero Reporter, and
// one with nil Hooks, reports nothing.
type Reporter struct {
	Hooks     *auth.Hooks
	Flow      string // "clientcreds", "authcode", "reftoken", "bff"
	ClientID  string
	Authority string // the client's Config.Authority, without a trailing slash
}

// Enabled reports whether events are wanted, so that callers can skip
// building them.
func (r *Reporter) Enabled() bool { return r != nil && r.Hooks != nil && r.Hooks.Event != nil }

// Emit reports e, with Flow, ClientID and Authority filled in and User dropped unless
// the application opted in.
func (r *Reporter) Emit(ctx context.Context, e auth.Event) {
	if !r.Enabled() {
		return
	}
	e.Flow, e.ClientID, e.Authority = r.Flow, r.ClientID, r.Authority
	if !r.Hooks.IncludeUser {
		e.User = ""
	}
	if ctx == nil {
		ctx = context.Background()
	}
	r.Hooks.Event(ctx, e)
}

// Call starts a call to the identity server (op: "discovery", "jwks",
// "token", "revocation", "end_session"); the returned function ends it.
func (r *Reporter) Call(ctx context.Context, op string) (context.Context, func(error)) {
	if r == nil || r.Hooks == nil || r.Hooks.Call == nil {
		return ctx, noEnd
	}
	cctx, end := r.Hooks.Call(ctx, op)
	if cctx == nil {
		cctx = ctx
	}
	if end == nil {
		end = noEnd
	}
	return cctx, end
}

func noEnd(error) {}
