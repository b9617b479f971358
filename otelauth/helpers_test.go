package otelauth_test

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/erpnetgo/auth"
	"github.com/erpnetgo/auth/otelauth"
)

// enc encodes attribute sets as "k=v,k=v", sorted by key.
var enc = attribute.DefaultEncoder()

// telemetry is an in-memory OpenTelemetry pipeline: a ManualReader for the
// metrics and a SpanRecorder for the spans, behind the Hooks of otelauth.New.
type telemetry struct {
	t      testing.TB
	hooks  *auth.Hooks
	reader *sdkmetric.ManualReader
	spans  *tracetest.SpanRecorder
}

func newTelemetry(t testing.TB, includeUser bool) *telemetry {
	t.Helper()
	return newTelemetryWith(t, otelauth.Config{IncludeUser: includeUser})
}

// newTelemetryWith is newTelemetry with cfg's options (its providers are
// replaced by the test's).
func newTelemetryWith(t testing.TB, cfg otelauth.Config) *telemetry {
	t.Helper()
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	t.Cleanup(func() {
		_ = mp.Shutdown(context.Background())
		_ = tp.Shutdown(context.Background())
	})
	cfg.MeterProvider, cfg.TracerProvider = mp, tp
	hooks := otelauth.New(cfg)
	return &telemetry{t: t, hooks: hooks, reader: reader, spans: spans}
}

// metrics collects every metric, by name.
func (tm *telemetry) metrics() map[string]metricdata.Metrics {
	tm.t.Helper()
	var rm metricdata.ResourceMetrics
	if err := tm.reader.Collect(context.Background(), &rm); err != nil {
		tm.t.Fatalf("collect: %v", err)
	}
	out := map[string]metricdata.Metrics{}
	for _, sm := range rm.ScopeMetrics {
		if sm.Scope.Name != "github.com/erpnetgo/auth/otelauth" {
			tm.t.Errorf("instrumentation scope %q", sm.Scope.Name)
		}
		for _, m := range sm.Metrics {
			out[m.Name] = m
		}
	}
	return out
}

// point is one data point: a counter's value, or a histogram's count and sum.
type point struct {
	Count int64
	Sum   float64
}

// points returns the data points of the named metric, keyed by their
// attributes encoded as "k=v,k=v" (sorted by key); nil if there is no such
// metric.
func (tm *telemetry) points(name string) map[string]point {
	tm.t.Helper()
	m, ok := tm.metrics()[name]
	if !ok {
		return nil
	}
	out := map[string]point{}
	switch d := m.Data.(type) {
	case metricdata.Sum[int64]:
		if !d.IsMonotonic {
			tm.t.Errorf("%s: not monotonic", name)
		}
		for _, p := range d.DataPoints {
			out[p.Attributes.Encoded(enc)] = point{Count: p.Value}
		}
	case metricdata.Histogram[float64]:
		for _, p := range d.DataPoints {
			out[p.Attributes.Encoded(enc)] = point{Count: int64(p.Count), Sum: p.Sum}
		}
	default:
		tm.t.Fatalf("%s: unexpected data %T", name, m.Data)
	}
	return out
}

// counts returns the named metric's counts by attributes.
func (tm *telemetry) counts(name string) map[string]int64 {
	tm.t.Helper()
	out := map[string]int64{}
	for k, p := range tm.points(name) {
		out[k] = p.Count
	}
	return out
}

// total is the named metric's count summed over all attributes.
func (tm *telemetry) total(name string) int64 {
	tm.t.Helper()
	var n int64
	for _, p := range tm.points(name) {
		n += p.Count
	}
	return n
}

// spanNames lists the ended spans' names in order.
func (tm *telemetry) spanNames() []string {
	var out []string
	for _, s := range tm.spans.Ended() {
		out = append(out, s.Name())
	}
	return out
}

// everything renders every attribute key and value of every metric data
// point and every ended span (with span names, status descriptions and
// span events), for searching.
func (tm *telemetry) everything() string {
	tm.t.Helper()
	var b strings.Builder
	for name, m := range tm.metrics() {
		fmt.Fprintln(&b, "metric", name, m.Description)
		switch d := m.Data.(type) {
		case metricdata.Sum[int64]:
			for _, p := range d.DataPoints {
				fmt.Fprintln(&b, " ", p.Attributes.Encoded(enc))
			}
		case metricdata.Histogram[float64]:
			for _, p := range d.DataPoints {
				fmt.Fprintln(&b, " ", p.Attributes.Encoded(enc))
			}
		}
	}
	for _, s := range tm.spans.Ended() {
		fmt.Fprintln(&b, "span", s.Name(), s.Status().Description)
		for _, kv := range s.Attributes() {
			fmt.Fprintf(&b, "  %s=%s\n", kv.Key, kv.Value.String())
		}
		for _, e := range s.Events() {
			fmt.Fprintln(&b, "  event", e.Name)
			for _, kv := range e.Attributes {
				fmt.Fprintf(&b, "    %s=%s\n", kv.Key, kv.Value.String())
			}
		}
	}
	return b.String()
}

// keys lists the attribute keys of a map returned by counts or points.
func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
