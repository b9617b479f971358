package otelauth_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/erpnetgo/auth"
	"github.com/erpnetgo/auth/otelauth"
)

const worker = "com.example/worker"

// Every event of the table in auth.Hooks becomes its metric, with exactly
// the documented attributes, counted once per event.
func TestEventsBecomeMetrics(t *testing.T) {
	temporary := &auth.Error{Op: "token request (client_credentials)", StatusCode: 503, Kind: auth.ErrTemporary}
	misconfigured := &auth.Error{Op: "token request (client_credentials)", StatusCode: 401, Code: "invalid_client", Kind: auth.ErrMisconfigured}
	reauth := &auth.Error{Op: "token request (refresh_token)", StatusCode: 400, Code: "invalid_grant", Kind: auth.ErrReauthRequired}
	tests := []struct {
		event  auth.Event
		times  int
		metric string
		attrs  string
		sum    float64 // histograms: the sum of the recorded values
	}{
		{auth.Event{Name: "token.issued", Flow: "clientcreds", ClientID: worker, Grant: "client_credentials", Duration: 250 * time.Millisecond, Attempts: 1},
			2, "erpnet.auth.token.requests",
			"erpnet.auth.client_id=com.example/worker,erpnet.auth.flow=clientcreds,erpnet.auth.grant=client_credentials,erpnet.auth.outcome=issued", 0},
		{auth.Event{Name: "token.issued", Flow: "authcode", ClientID: "app", Grant: "refresh_token", Duration: time.Second, Attempts: 1},
			3, "erpnet.auth.token.request.duration",
			"erpnet.auth.client_id=app,erpnet.auth.flow=authcode,erpnet.auth.grant=refresh_token,erpnet.auth.outcome=issued", 3},
		{auth.Event{Name: "token.failed", Flow: "clientcreds", ClientID: worker, Grant: "client_credentials", Attempts: 4, StatusCode: 503, RetryAfter: time.Second, Err: temporary},
			1, "erpnet.auth.token.requests",
			"erpnet.auth.client_id=com.example/worker,erpnet.auth.flow=clientcreds,erpnet.auth.grant=client_credentials,erpnet.auth.outcome=failed,error.type=temporary,http.response.status_code=503", 0},
		{auth.Event{Name: "token.failed", Flow: "clientcreds", ClientID: worker, Grant: "client_credentials", Attempts: 1, StatusCode: 401, Err: misconfigured},
			1, "erpnet.auth.token.requests",
			"erpnet.auth.client_id=com.example/worker,erpnet.auth.flow=clientcreds,erpnet.auth.grant=client_credentials,erpnet.auth.outcome=failed,error.type=misconfigured,http.response.status_code=401", 0},
		{auth.Event{Name: "token.failed", Flow: "authcode", ClientID: "app", Grant: "refresh_token", Attempts: 1, StatusCode: 400, Err: reauth},
			1, "erpnet.auth.token.requests",
			"erpnet.auth.client_id=app,erpnet.auth.flow=authcode,erpnet.auth.grant=refresh_token,erpnet.auth.outcome=failed,error.type=reauth,http.response.status_code=400", 0},
		{auth.Event{Name: "token.failed", Flow: "clientcreds", ClientID: worker, Grant: "client_credentials", Attempts: 3, Err: context.DeadlineExceeded},
			2, "erpnet.auth.token.request.retries",
			"erpnet.auth.client_id=com.example/worker,erpnet.auth.flow=clientcreds,erpnet.auth.grant=client_credentials,erpnet.auth.outcome=failed,error.type=other", 0},
		{auth.Event{Name: "token.cache_hit", Flow: "clientcreds", ClientID: worker},
			5, "erpnet.auth.token.cache_hits",
			"erpnet.auth.client_id=com.example/worker,erpnet.auth.flow=clientcreds", 0},
		{auth.Event{Name: "token.wait", Flow: "clientcreds", ClientID: worker, Duration: 500 * time.Millisecond},
			2, "erpnet.auth.token.wait.duration",
			"erpnet.auth.client_id=com.example/worker,erpnet.auth.flow=clientcreds", 1},
		{auth.Event{Name: "token.wait", Flow: "clientcreds", ClientID: worker, Duration: 2 * time.Second, Err: temporary},
			1, "erpnet.auth.token.wait.duration",
			"erpnet.auth.client_id=com.example/worker,erpnet.auth.flow=clientcreds,error.type=temporary", 2},
		{auth.Event{Name: "token.refresh_ahead", Flow: "clientcreds", ClientID: worker, Lead: 5 * time.Minute},
			2, "erpnet.auth.token.refresh.lead",
			"erpnet.auth.client_id=com.example/worker,erpnet.auth.flow=clientcreds", 600},
		{auth.Event{Name: "api.retry_401", Flow: "authcode", ClientID: "app", StatusCode: 401},
			1, "erpnet.auth.api.unauthorized_retries",
			"erpnet.auth.client_id=app,erpnet.auth.flow=authcode,http.response.status_code=401", 0},
		{auth.Event{Name: "api.backoff", Flow: "clientcreds", ClientID: worker, StatusCode: 429, RetryAfter: time.Second, Attempts: 1},
			3, "erpnet.auth.api.backoffs",
			"erpnet.auth.client_id=com.example/worker,erpnet.auth.flow=clientcreds,http.response.status_code=429", 0},
		{auth.Event{Name: "api.session_opened", Flow: "clientcreds", ClientID: worker},
			1, "erpnet.auth.api.sessions_opened",
			"erpnet.auth.client_id=com.example/worker,erpnet.auth.flow=clientcreds", 0},
		{auth.Event{Name: "reftoken.rejected", Flow: "reftoken", StatusCode: 401},
			2, "erpnet.auth.reftoken.rejections",
			"erpnet.auth.flow=reftoken,http.response.status_code=401", 0},
		{auth.Event{Name: "signin.completed", Flow: "authcode", ClientID: "app"},
			4, "erpnet.auth.signins",
			"erpnet.auth.client_id=app,erpnet.auth.flow=authcode,erpnet.auth.outcome=completed", 0},
		{auth.Event{Name: "signin.failed", Flow: "authcode", ClientID: "app", Err: errors.New("authcode: invalid sign-in state")},
			1, "erpnet.auth.signins",
			"erpnet.auth.client_id=app,erpnet.auth.flow=authcode,erpnet.auth.outcome=failed,error.type=other", 0},
		{auth.Event{Name: "signout.completed", Flow: "authcode", ClientID: "app"},
			2, "erpnet.auth.signouts",
			"erpnet.auth.client_id=app,erpnet.auth.flow=authcode", 0},
		{auth.Event{Name: "reauth.required", Flow: "authcode", ClientID: "app", Err: reauth},
			1, "erpnet.auth.reauth_required",
			"erpnet.auth.client_id=app,erpnet.auth.flow=authcode,error.type=reauth", 0},
		{auth.Event{Name: "bff.refused", Flow: "bff", ClientID: "app", StatusCode: 401},
			3, "erpnet.auth.bff.refused",
			"erpnet.auth.client_id=app,erpnet.auth.flow=bff,http.response.status_code=401", 0},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/%s", tt.event.Name, tt.metric), func(t *testing.T) {
			tm := newTelemetry(t, false)
			for range tt.times {
				tm.hooks.Event(context.Background(), tt.event)
			}
			pts := tm.points(tt.metric)
			if len(pts) != 1 {
				t.Fatalf("%s: data points %q, want exactly one", tt.metric, keys(pts))
			}
			p, ok := pts[tt.attrs]
			if !ok {
				t.Fatalf("%s: attributes\n  %q\nwant\n  %q", tt.metric, keys(pts), tt.attrs)
			}
			want := int64(tt.times)
			if tt.metric == "erpnet.auth.token.request.retries" {
				want = int64(tt.times * (tt.event.Attempts - 1))
			}
			if p.Count != want {
				t.Errorf("%s: count %d, want %d", tt.metric, p.Count, want)
			}
			if tt.sum != 0 && p.Sum != tt.sum {
				t.Errorf("%s: sum %v, want %v", tt.metric, p.Sum, tt.sum)
			}
			if n := len(tm.spans.Ended()); n != 0 {
				t.Errorf("an event made %d spans", n)
			}
		})
	}
}

// A token request makes a count, a duration and (with retries) a retry
// count, all with the same attributes; without retries no retry count.
func TestTokenRequestInstruments(t *testing.T) {
	tm := newTelemetry(t, false)
	ctx := context.Background()
	tm.hooks.Event(ctx, auth.Event{Name: "token.issued", Flow: "clientcreds", ClientID: worker, Grant: "client_credentials", Duration: time.Second, Attempts: 1})
	if got := tm.points("erpnet.auth.token.request.retries"); got != nil {
		t.Errorf("retries recorded for a request without retries: %v", got)
	}
	tm.hooks.Event(ctx, auth.Event{Name: "token.issued", Flow: "clientcreds", ClientID: worker, Grant: "client_credentials", Duration: 3 * time.Second, Attempts: 4})
	attrs := "erpnet.auth.client_id=com.example/worker,erpnet.auth.flow=clientcreds,erpnet.auth.grant=client_credentials,erpnet.auth.outcome=issued"
	if got, want := tm.counts("erpnet.auth.token.requests"), map[string]int64{attrs: 2}; !reflect.DeepEqual(got, want) {
		t.Errorf("requests %v, want %v", got, want)
	}
	if got, want := tm.counts("erpnet.auth.token.request.retries"), map[string]int64{attrs: 3}; !reflect.DeepEqual(got, want) {
		t.Errorf("retries %v, want %v", got, want)
	}
	if got, want := tm.points("erpnet.auth.token.request.duration"), map[string]point{attrs: {Count: 2, Sum: 4}}; !reflect.DeepEqual(got, want) {
		t.Errorf("duration %v, want %v", got, want)
	}
}

// Each metric has its unit and a description; durations are in seconds.
func TestInstrumentUnits(t *testing.T) {
	tm := newTelemetry(t, true)
	ctx := context.Background()
	for _, name := range []string{"token.issued", "token.cache_hit", "token.wait", "token.refresh_ahead", "api.retry_401", "api.backoff",
		"api.session_opened", "reftoken.rejected", "signin.completed", "signout.completed", "reauth.required", "bff.refused"} {
		tm.hooks.Event(ctx, auth.Event{Name: name, Flow: "authcode", Attempts: 2})
	}
	want := map[string]string{
		"erpnet.auth.token.requests":           "{request}",
		"erpnet.auth.token.request.duration":   "s",
		"erpnet.auth.token.request.retries":    "{retry}",
		"erpnet.auth.token.cache_hits":         "{hit}",
		"erpnet.auth.token.wait.duration":      "s",
		"erpnet.auth.token.refresh.lead":       "s",
		"erpnet.auth.api.unauthorized_retries": "{retry}",
		"erpnet.auth.api.backoffs":             "{backoff}",
		"erpnet.auth.api.sessions_opened":      "{session}",
		"erpnet.auth.reftoken.rejections":      "{token}",
		"erpnet.auth.signins":                  "{signin}",
		"erpnet.auth.signouts":                 "{signout}",
		"erpnet.auth.reauth_required":          "{session}",
		"erpnet.auth.bff.refused":              "{request}",
	}
	got := tm.metrics()
	if len(got) != len(want) {
		t.Errorf("%d metrics, want %d", len(got), len(want))
	}
	for name, unit := range want {
		m, ok := got[name]
		if !ok {
			t.Errorf("no metric %s", name)
			continue
		}
		if m.Unit != unit {
			t.Errorf("%s: unit %q, want %q", name, m.Unit, unit)
		}
		if m.Description == "" {
			t.Errorf("%s: no description", name)
		}
	}
}

// The instance an event is about becomes the attribute
// erpnet.auth.authority only with IncludeAuthority: by default one series
// serves every instance, as before; with it, each instance has its own, on
// the cached hot path (cache hits) as on every other metric.
func TestIncludeAuthority(t *testing.T) {
	acme, globex := "https://acme.my.erp.net", "https://globex.my.erp.net"
	for _, include := range []bool{false, true} {
		tm := newTelemetryWith(t, otelauth.Config{IncludeAuthority: include})
		ctx := context.Background()
		for _, a := range []string{acme, globex, acme} {
			tm.hooks.Event(ctx, auth.Event{Name: "token.cache_hit", Flow: "clientcreds", ClientID: worker, Authority: a})
			tm.hooks.Event(ctx, auth.Event{Name: "api.session_opened", Flow: "clientcreds", ClientID: worker, Authority: a})
		}
		base := "erpnet.auth.client_id=com.example/worker,erpnet.auth.flow=clientcreds"
		want := map[string]int64{base: 3}
		if include {
			want = map[string]int64{
				"erpnet.auth.authority=" + acme + "," + base:   2,
				"erpnet.auth.authority=" + globex + "," + base: 1,
			}
		}
		for _, m := range []string{"erpnet.auth.token.cache_hits", "erpnet.auth.api.sessions_opened"} {
			if got := tm.counts(m); !reflect.DeepEqual(got, want) {
				t.Errorf("IncludeAuthority %v: %s %v, want %v", include, m, got, want)
			}
		}
	}
}

// An event the adapter does not know (a newer SDK's, say) records nothing.
func TestUnknownEventIgnored(t *testing.T) {
	tm := newTelemetry(t, false)
	tm.hooks.Event(context.Background(), auth.Event{Name: "token.something_new", Flow: "clientcreds"})
	if got := tm.metrics(); len(got) != 0 {
		t.Errorf("metrics %v", keys(got))
	}
}

// Call makes one client span per identity-server call, named after the
// operation; a failure sets status Error with the class and the status code,
// never the error text; the returned context carries the span.
func TestCallSpans(t *testing.T) {
	tm := newTelemetry(t, false)
	ctx := context.Background()
	for _, op := range []string{"discovery", "jwks", "token", "revocation", "end_session"} {
		cctx, end := tm.hooks.Call(ctx, op)
		if !trace.SpanFromContext(cctx).SpanContext().IsValid() {
			t.Errorf("%s: the context Call returned carries no span", op)
		}
		end(nil)
	}
	errs := []struct {
		err    error
		class  string
		status int
	}{
		{&auth.Error{Op: "token request (client_credentials)", StatusCode: 503, Attempts: 4, Kind: auth.ErrTemporary}, "temporary", 503},
		{fmt.Errorf("wrapped: %w", &auth.Error{Op: "discovery", StatusCode: 404, Kind: auth.ErrMisconfigured}), "misconfigured", 404},
		{&auth.Error{Op: "token request (refresh_token)", StatusCode: 400, Code: "invalid_grant", Kind: auth.ErrReauthRequired}, "reauth", 400},
		{&auth.Error{Op: "token revocation", Err: context.Canceled}, "other", 0},
		{errors.New("plain"), "other", 0},
	}
	for _, e := range errs {
		_, end := tm.hooks.Call(ctx, "token")
		end(e.err)
	}

	spans := tm.spans.Ended()
	if len(spans) != 10 {
		t.Fatalf("%d spans, want 10: %q", len(spans), tm.spanNames())
	}
	for i, op := range []string{"discovery", "jwks", "token", "revocation", "end_session"} {
		s := spans[i]
		if s.Name() != "erpnet.auth "+op {
			t.Errorf("span %d: name %q, want %q", i, s.Name(), "erpnet.auth "+op)
		}
		if s.SpanKind() != trace.SpanKindClient {
			t.Errorf("%s: kind %v", s.Name(), s.SpanKind())
		}
		if s.Status().Code != codes.Unset {
			t.Errorf("%s: status %v", s.Name(), s.Status())
		}
		if len(s.Attributes()) != 1 || s.Attributes()[0].Key != "erpnet.auth.operation" || s.Attributes()[0].Value.AsString() != op {
			t.Errorf("%s: attributes %v, want only erpnet.auth.operation=%s", s.Name(), s.Attributes(), op)
		}
		if s.InstrumentationScope().Name != "github.com/erpnetgo/auth/otelauth" {
			t.Errorf("%s: scope %q", s.Name(), s.InstrumentationScope().Name)
		}
	}
	for i, e := range errs {
		s := spans[5+i]
		if s.Status().Code != codes.Error || s.Status().Description != e.class {
			t.Errorf("%v: status %v, want Error %q", e.err, s.Status(), e.class)
		}
		got := map[string]string{}
		for _, kv := range s.Attributes() {
			got[string(kv.Key)] = kv.Value.String()
		}
		want := map[string]string{"erpnet.auth.operation": "token", "error.type": e.class}
		if e.status != 0 {
			want["http.response.status_code"] = fmt.Sprint(e.status)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%v: attributes %v, want %v", e.err, got, want)
		}
		if len(s.Events()) != 0 {
			t.Errorf("%v: span events %v (the error must not be recorded)", e.err, s.Events())
		}
	}
}

// A call made inside another (a token request inside the app's request, or
// discovery inside a token call) is its child.
func TestCallSpanParent(t *testing.T) {
	tm := newTelemetry(t, false)
	outer, endOuter := tm.hooks.Call(context.Background(), "token")
	_, endInner := tm.hooks.Call(outer, "discovery")
	endInner(nil)
	endOuter(nil)
	spans := tm.spans.Ended()
	if len(spans) != 2 {
		t.Fatalf("spans %q", tm.spanNames())
	}
	inner, parent := spans[0], spans[1]
	if inner.Parent().SpanID() != parent.SpanContext().SpanID() || inner.SpanContext().TraceID() != parent.SpanContext().TraceID() {
		t.Errorf("discovery span is not the token span's child")
	}
}

// Every event that may carry a user, carrying one; and some that may not.
func userEvents(user string) []auth.Event {
	return []auth.Event{
		{Name: "signin.completed", Flow: "authcode", ClientID: "app", User: user},
		{Name: "signin.failed", Flow: "authcode", ClientID: "app", User: user, Err: errors.New("refused")},
		{Name: "signout.completed", Flow: "authcode", ClientID: "app", User: user},
		{Name: "reauth.required", Flow: "authcode", ClientID: "app", User: user, Err: auth.ErrReauthRequired},
		{Name: "token.issued", Flow: "authcode", ClientID: "app", Grant: "refresh_token", User: user, Attempts: 1},
		{Name: "api.session_opened", Flow: "authcode", ClientID: "app", User: user},
	}
}

// By default no user identifier reaches any attribute, even should an event
// carry one; the Hooks tell the SDK not to report users.
func TestNoUserByDefault(t *testing.T) {
	tm := newTelemetry(t, false)
	if tm.hooks.IncludeUser {
		t.Error("Hooks.IncludeUser set by default")
	}
	const user = "alice.anderson"
	for _, e := range userEvents(user) {
		tm.hooks.Event(context.Background(), e)
	}
	_, end := tm.hooks.Call(context.Background(), "token")
	end(nil)
	all := tm.everything()
	if strings.Contains(all, user) || strings.Contains(all, "enduser") {
		t.Errorf("a user identifier reached the telemetry:\n%s", all)
	}
	if tm.total("erpnet.auth.signins") != 2 || tm.total("erpnet.auth.signouts") != 1 || tm.total("erpnet.auth.reauth_required") != 1 {
		t.Errorf("events not counted:\n%s", all)
	}
}

// With IncludeUser, the user's subject is the enduser.id attribute of
// sign-ins, sign-outs and re-authentications, and of nothing else.
func TestIncludeUser(t *testing.T) {
	tm := newTelemetry(t, true)
	if !tm.hooks.IncludeUser {
		t.Error("Hooks.IncludeUser not set: the SDK would not report users")
	}
	const user = "alice.anderson"
	for _, e := range userEvents(user) {
		tm.hooks.Event(context.Background(), e)
	}
	with := map[string]int64{
		"erpnet.auth.signins":         2,
		"erpnet.auth.signouts":        1,
		"erpnet.auth.reauth_required": 1,
	}
	for name := range tm.metrics() {
		for attrs, n := range tm.counts(name) {
			has := strings.Contains(attrs, "enduser.id="+user)
			if _, want := with[name]; has != want {
				t.Errorf("%s {%s}: user attribute %v, want %v", name, attrs, has, want)
			}
			if has {
				with[name] -= n
			}
		}
	}
	for name, left := range with {
		if left != 0 {
			t.Errorf("%s: %d events without the user attribute", name, left)
		}
	}
}

// No text of an event's or a call's error ever becomes an attribute, a span
// name, a status description or a span event, whatever its class.
func TestErrorTextNeverAnAttribute(t *testing.T) {
	const secret = "s3cr3t-in-error-text"
	errs := []error{
		errors.New(secret),
		&auth.Error{Op: "token request (client_credentials)", StatusCode: 503, Code: secret, Description: secret, Kind: auth.ErrTemporary, Err: errors.New(secret)},
		&auth.Error{Op: "token request (client_credentials)", StatusCode: 400, Code: "invalid_client", Description: secret, Kind: auth.ErrMisconfigured},
		fmt.Errorf("%s: %w", secret, auth.ErrReauthRequired),
		&auth.ConfigError{Field: "ClientSecret", Reason: secret},
	}
	for _, include := range []bool{false, true} {
		tm := newTelemetry(t, include)
		ctx := context.Background()
		for _, err := range errs {
			for _, name := range []string{"token.issued", "token.failed", "token.cache_hit", "token.wait", "token.refresh_ahead", "api.retry_401", "api.backoff",
				"api.session_opened", "reftoken.rejected", "signin.completed", "signin.failed", "signout.completed", "reauth.required"} {
				tm.hooks.Event(ctx, auth.Event{Name: name, Flow: "authcode", ClientID: "app", Grant: "refresh_token", Attempts: 2, StatusCode: 503, Err: err})
			}
			for _, op := range []string{"discovery", "jwks", "token", "revocation", "end_session"} {
				_, end := tm.hooks.Call(ctx, op)
				end(err)
			}
		}
		all := tm.everything()
		if strings.Contains(all, secret) {
			t.Errorf("IncludeUser %v: error text reached the telemetry:\n%s", include, all)
		}
		for _, class := range []string{"error.type=temporary", "error.type=misconfigured", "error.type=reauth", "error.type=other"} {
			if !strings.Contains(all, class) {
				t.Errorf("IncludeUser %v: no %s in\n%s", include, class, all)
			}
		}
	}
}

// Without providers New uses the global ones (no-op until the app sets
// them): the Hooks work and record nowhere.
func TestGlobalProviders(t *testing.T) {
	h := otelauth.New(otelauth.Config{})
	if h.Event == nil || h.Call == nil {
		t.Fatal("Hooks without Event or Call")
	}
	h.Event(context.Background(), auth.Event{Name: "token.cache_hit", Flow: "clientcreds"})
	ctx, end := h.Call(context.Background(), "token")
	if ctx == nil {
		t.Fatal("Call returned no context")
	}
	end(errors.New("x"))
}

// The cache-hit path (every Token call of a warm client) must stay cheap.
func TestCacheHitAllocations(t *testing.T) {
	tm := newTelemetry(t, false)
	ctx := context.Background()
	e := auth.Event{Name: "token.cache_hit", Flow: "clientcreds", ClientID: worker}
	tm.hooks.Event(ctx, e)
	if n := testing.AllocsPerRun(100, func() { tm.hooks.Event(ctx, e) }); n != 0 {
		t.Errorf("a cache hit allocates %v times, want none", n)
	}
	if got := tm.total("erpnet.auth.token.cache_hits"); got != 102 {
		t.Errorf("cache hits %d, want 102", got)
	}
}

func BenchmarkCacheHit(b *testing.B) {
	tm := newTelemetry(b, false)
	ctx := context.Background()
	e := auth.Event{Name: "token.cache_hit", Flow: "clientcreds", ClientID: worker}
	b.ReportAllocs()
	for b.Loop() {
		tm.hooks.Event(ctx, e)
	}
}

func BenchmarkTokenIssued(b *testing.B) {
	tm := newTelemetry(b, false)
	ctx := context.Background()
	e := auth.Event{Name: "token.issued", Flow: "clientcreds", ClientID: worker, Grant: "client_credentials", Duration: time.Second, Attempts: 1}
	b.ReportAllocs()
	for b.Loop() {
		tm.hooks.Event(ctx, e)
	}
}
