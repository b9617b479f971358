// Package otelauth turns the SDK's hooks (auth.Hooks) into OpenTelemetry
// metrics and traces. It is a module of its own
// (github.com/erpnetgo/auth/otelauth): an application that does not import
// it never has OpenTelemetry in its module graph.
//
// Give the Hooks that New returns to any package's Config:
//
//	hooks := otelauth.New(otelauth.Config{}) // the global providers
//	src, err := clientcreds.New(clientcreds.Config{
//		Authority: ..., ClientID: ..., ClientSecret: ...,
//		Hooks: hooks,
//	})
//
// One Hooks may serve every client of a process.
//
// # Metrics
//
// All instruments belong to the meter "github.com/erpnetgo/auth/otelauth".
// Durations are in seconds.
//
//	name                                    instrument  unit       from event
//	erpnet.auth.token.requests              counter     {request}  token.issued, token.failed
//	erpnet.auth.token.request.duration      histogram   s          token.issued, token.failed
//	erpnet.auth.token.request.retries       counter     {retry}    token.issued, token.failed (Attempts-1)
//	erpnet.auth.token.cache_hits            counter     {hit}      token.cache_hit
//	erpnet.auth.token.wait.duration         histogram   s          token.wait
//	erpnet.auth.token.refresh.lead          histogram   s          token.refresh_ahead
//	erpnet.auth.api.unauthorized_retries    counter     {retry}    api.retry_401
//	erpnet.auth.api.backoffs                counter     {backoff}  api.backoff
//	erpnet.auth.api.sessions_opened         counter     {session}  api.session_opened
//	erpnet.auth.api.license_refusals        counter     {refusal}  api.license_exhausted
//	erpnet.auth.reftoken.rejections         counter     {token}    reftoken.rejected
//	erpnet.auth.signins                     counter     {signin}   signin.completed, signin.failed
//	erpnet.auth.signouts                    counter     {signout}  signout.completed
//	erpnet.auth.reauth_required             counter     {session}  reauth.required
//	erpnet.auth.bff.refused                 counter     {request}  bff.refused
//
// Their attributes, where the event has them:
//
//	erpnet.auth.flow            clientcreds, authcode, reftoken or bff
//	erpnet.auth.client_id       the Trusted Application's client_id
//	erpnet.auth.grant           client_credentials, authorization_code or refresh_token
//	erpnet.auth.outcome         issued or failed (token requests), completed or failed (sign-ins)
//	error.type                  temporary, misconfigured, reauth or other (failures only)
//	http.response.status_code   the HTTP status that caused the event
//	enduser.id                  the user's subject: only with Config.IncludeUser
//	erpnet.auth.authority       the ERP.net instance (auth.Event's Authority):
//	                            only with Config.IncludeAuthority
//
// Healthy worker: erpnet.auth.token.requests grows by one per token
// lifetime, erpnet.auth.api.sessions_opened by one per token, and
// erpnet.auth.token.cache_hits carries nearly every Token call.
//
// # Traces
//
// Every call to the identity server is a client span named
// "erpnet.auth discovery", "erpnet.auth jwks", "erpnet.auth token",
// "erpnet.auth revocation" or "erpnet.auth end_session", with the attribute
// erpnet.auth.operation. A failed call has status Error with the error class
// as description, and the attributes error.type and, when a response
// arrived, http.response.status_code. No error text is ever recorded: only
// classes and status codes, so nothing an error says can leak through the
// telemetry.
package otelauth

import (
	"context"
	"errors"
	"sync"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/erpnetgo/auth"
)

// Config chooses where the telemetry goes. The zero value uses the global
// providers (otel.GetMeterProvider, otel.GetTracerProvider).
type Config struct {
	// MeterProvider receives the metrics; nil means the global one.
	MeterProvider metric.MeterProvider
	// TracerProvider receives the spans; nil means the global one.
	TracerProvider trace.TracerProvider
	// IncludeUser adds the user's subject (ERP.net user name) as the
	// attribute enduser.id to sign-in, sign-out and re-authentication
	// metrics, and sets auth.Hooks.IncludeUser so the SDK reports it. Off by
	// default: it is personal data, and it makes one time series per user.
	IncludeUser bool
	// IncludeAuthority adds the ERP.net instance each event is about
	// (auth.Event's Authority, e.g. https://acme.my.erp.net) as the
	// attribute erpnet.auth.authority to every metric. Off by default: it
	// makes one time series per instance. Turn it on where one process
	// serves many instances (package instances) to tell them apart.
	IncludeAuthority bool
}

const scope = "github.com/erpnetgo/auth/otelauth"

// Attribute keys.
const (
	keyFlow      = attribute.Key("erpnet.auth.flow")
	keyClientID  = attribute.Key("erpnet.auth.client_id")
	keyGrant     = attribute.Key("erpnet.auth.grant")
	keyOutcome   = attribute.Key("erpnet.auth.outcome")
	keyOperation = attribute.Key("erpnet.auth.operation")
	keyErrorType = attribute.Key("error.type")
	keyStatus    = attribute.Key("http.response.status_code")
	keyUser      = attribute.Key("enduser.id")
	keyAuthority = attribute.Key("erpnet.auth.authority")
)

// Error classes, the values of error.type.
const (
	classTemporary     = "temporary"
	classMisconfigured = "misconfigured"
	classReauth        = "reauth"
	classOther         = "other"
)

// Bucket boundaries, in seconds: requests and waits (tens of milliseconds to
// a minute of retries) and refresh lead times (seconds to an hour).
var (
	durationBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 30, 60}
	leadBuckets     = []float64{1, 5, 10, 30, 60, 120, 180, 240, 300, 600, 900, 1800, 3600}
)

// New returns Hooks that record the SDK's events as metrics and its
// identity-server calls as spans. Set them as the Hooks field of any
// package's Config; they are safe for concurrent use.
func New(cfg Config) *auth.Hooks {
	mp := cfg.MeterProvider
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	tp := cfg.TracerProvider
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	m := mp.Meter(scope)
	r := &recorder{includeUser: cfg.IncludeUser, includeAuthority: cfg.IncludeAuthority, tracer: tp.Tracer(scope)}
	counter := func(name, unit, desc string) metric.Int64Counter {
		c, err := m.Int64Counter(name, metric.WithUnit(unit), metric.WithDescription(desc))
		if err != nil {
			otel.Handle(err)
		}
		return c
	}
	histogram := func(name, desc string, buckets []float64) metric.Float64Histogram {
		h, err := m.Float64Histogram(name, metric.WithUnit("s"), metric.WithDescription(desc), metric.WithExplicitBucketBoundaries(buckets...))
		if err != nil {
			otel.Handle(err)
		}
		return h
	}
	r.requests = counter("erpnet.auth.token.requests", "{request}", "Token requests to the identity server, by flow, grant and outcome.")
	r.retries = counter("erpnet.auth.token.request.retries", "{retry}", "Requests a token request repeated after a temporary failure.")
	r.cacheHits = counter("erpnet.auth.token.cache_hits", "{hit}", "Token calls answered from the cache, without a request.")
	r.unauthorized = counter("erpnet.auth.api.unauthorized_retries", "{retry}", "API calls answered 401 and retried once with a fresh token.")
	r.backoffs = counter("erpnet.auth.api.backoffs", "{backoff}", "API calls answered 429 or 503 and retried after a backoff.")
	r.sessions = counter("erpnet.auth.api.sessions_opened", "{session}", "Tokens used at the API for the first time: ERP.net API sessions opened, each taking a license.")
	r.licenses = counter("erpnet.auth.api.license_refusals", "{refusal}", "API calls refused because all ERP.net licenses of the instance are in use.")
	r.rejections = counter("erpnet.auth.reftoken.rejections", "{token}", "Reference tokens the API refused.")
	r.signins = counter("erpnet.auth.signins", "{signin}", "User sign-ins, by outcome.")
	r.signouts = counter("erpnet.auth.signouts", "{signout}", "User sign-outs.")
	r.reauth = counter("erpnet.auth.reauth_required", "{session}", "User sessions whose refresh token died: the user must sign in again.")
	r.refused = counter("erpnet.auth.bff.refused", "{request}", "Requests the backend-for-frontend refused before sending anything (no anti-forgery header, a path off the Domain API root, a method off its list), by status.")
	r.requestDuration = histogram("erpnet.auth.token.request.duration", "Duration of token requests, retries included.", durationBuckets)
	r.waitDuration = histogram("erpnet.auth.token.wait.duration", "How long callers waited for a token request.", durationBuckets)
	r.lead = histogram("erpnet.auth.token.refresh.lead", "Life a token had left when its background refresh started.", leadBuckets)
	return &auth.Hooks{Event: r.event, Call: r.call, IncludeUser: cfg.IncludeUser}
}

type recorder struct {
	includeUser, includeAuthority bool
	tracer                        trace.Tracer

	requests, retries, cacheHits, unauthorized, backoffs, sessions, licenses, rejections, signins, signouts, reauth, refused metric.Int64Counter
	requestDuration, waitDuration, lead                                                                                      metric.Float64Histogram

	// hitAttrs caches the attribute set of each client's cache hits, the
	// hot path: client -> []metric.AddOption.
	hitAttrs sync.Map
}

type client struct{ flow, id, authority string }

func (r *recorder) event(ctx context.Context, e auth.Event) {
	if e.Name == "token.cache_hit" {
		r.cacheHits.Add(ctx, 1, r.clientAttrs(e)...)
		return
	}
	attrs := make([]attribute.KeyValue, 0, 8)
	attrs = r.clientKeys(attrs, e)
	if e.Err != nil {
		attrs = append(attrs, keyErrorType.String(classify(e.Err)))
	}
	if e.StatusCode != 0 {
		attrs = append(attrs, keyStatus.Int(e.StatusCode))
	}
	switch e.Name {
	case "token.issued", "token.failed":
		if e.Grant != "" {
			attrs = append(attrs, keyGrant.String(e.Grant))
		}
		attrs = append(attrs, keyOutcome.String(e.Name[len("token."):]))
		opt := metric.WithAttributes(attrs...)
		r.requests.Add(ctx, 1, opt)
		r.requestDuration.Record(ctx, seconds(e.Duration), opt)
		if e.Attempts > 1 {
			r.retries.Add(ctx, int64(e.Attempts-1), opt)
		}
	case "token.wait":
		r.waitDuration.Record(ctx, seconds(e.Duration), metric.WithAttributes(attrs...))
	case "token.refresh_ahead":
		r.lead.Record(ctx, seconds(e.Lead), metric.WithAttributes(attrs...))
	case "api.retry_401":
		r.unauthorized.Add(ctx, 1, metric.WithAttributes(attrs...))
	case "api.backoff":
		r.backoffs.Add(ctx, 1, metric.WithAttributes(attrs...))
	case "api.session_opened":
		r.sessions.Add(ctx, 1, metric.WithAttributes(attrs...))
	case "api.license_exhausted":
		r.licenses.Add(ctx, 1, metric.WithAttributes(attrs...))
	case "reftoken.rejected":
		r.rejections.Add(ctx, 1, metric.WithAttributes(attrs...))
	case "signin.completed", "signin.failed":
		attrs = append(attrs, keyOutcome.String(e.Name[len("signin."):]))
		r.signins.Add(ctx, 1, metric.WithAttributes(r.user(attrs, e)...))
	case "signout.completed":
		r.signouts.Add(ctx, 1, metric.WithAttributes(r.user(attrs, e)...))
	case "reauth.required":
		r.reauth.Add(ctx, 1, metric.WithAttributes(r.user(attrs, e)...))
	case "bff.refused":
		r.refused.Add(ctx, 1, metric.WithAttributes(attrs...))
	}
}

// clientAttrs returns the cached attribute option of e's client.
func (r *recorder) clientAttrs(e auth.Event) []metric.AddOption {
	k := client{e.Flow, e.ClientID, ""}
	if r.includeAuthority {
		k.authority = e.Authority
	}
	if o, ok := r.hitAttrs.Load(k); ok {
		return o.([]metric.AddOption)
	}
	attrs := r.clientKeys(make([]attribute.KeyValue, 0, 3), e)
	o, _ := r.hitAttrs.LoadOrStore(k, []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(attrs...))})
	return o.([]metric.AddOption)
}

// clientKeys appends the attributes that name e's client: its flow,
// client_id and, with IncludeAuthority, its instance.
func (r *recorder) clientKeys(attrs []attribute.KeyValue, e auth.Event) []attribute.KeyValue {
	attrs = append(attrs, keyFlow.String(e.Flow))
	if e.ClientID != "" {
		attrs = append(attrs, keyClientID.String(e.ClientID))
	}
	if r.includeAuthority && e.Authority != "" {
		attrs = append(attrs, keyAuthority.String(e.Authority))
	}
	return attrs
}

// user adds the user's subject when the application opted in.
func (r *recorder) user(attrs []attribute.KeyValue, e auth.Event) []attribute.KeyValue {
	if r.includeUser && e.User != "" {
		attrs = append(attrs, keyUser.String(e.User))
	}
	return attrs
}

func (r *recorder) call(ctx context.Context, op string) (context.Context, func(error)) {
	ctx, span := r.tracer.Start(ctx, "erpnet.auth "+op,
		trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(keyOperation.String(op)))
	return ctx, func(err error) {
		if err != nil {
			class := classify(err)
			span.SetAttributes(keyErrorType.String(class))
			var ae *auth.Error
			if errors.As(err, &ae) && ae.StatusCode != 0 {
				span.SetAttributes(keyStatus.Int(ae.StatusCode))
			}
			span.SetStatus(codes.Error, class)
		}
		span.End()
	}
}

// classify names err's class; never its text.
func classify(err error) string {
	switch {
	case errors.Is(err, auth.ErrTemporary):
		return classTemporary
	case errors.Is(err, auth.ErrMisconfigured):
		return classMisconfigured
	case errors.Is(err, auth.ErrReauthRequired):
		return classReauth
	}
	return classOther
}

func seconds(d time.Duration) float64 { return d.Seconds() }
