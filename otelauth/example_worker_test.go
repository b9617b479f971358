package otelauth_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"sort"

	"go.opentelemetry.io/otel/exporters/stdout/stdoutmetric"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/erpnetgo/auth/clientcreds"
	"github.com/erpnetgo/auth/erpnettest"
	"github.com/erpnetgo/auth/otelauth"
)

// A worker exporting its token, session and retry figures through
// OpenTelemetry's stdout exporters. Here they write to buffers so that the
// example can print a summary; a real worker leaves out WithWriter (so the
// exporters write to os.Stdout) or uses an OTLP exporter instead.
func Example() {
	srv, err := erpnettest.Start(erpnettest.Config{}) // stands in for an ERP.net instance
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	ctx := context.Background()

	var metricsJSON, spansJSON bytes.Buffer
	mexp, err := stdoutmetric.New(stdoutmetric.WithWriter(&metricsJSON), stdoutmetric.WithoutTimestamps())
	if err != nil {
		log.Fatal(err)
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewPeriodicReader(mexp)))
	texp, err := stdouttrace.New(stdouttrace.WithWriter(&spansJSON), stdouttrace.WithoutTimestamps())
	if err != nil {
		log.Fatal(err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(texp))

	src, err := clientcreds.New(clientcreds.Config{
		Authority:    srv.URL(),
		ClientID:     erpnettest.Demo.WorkerID,
		ClientSecret: erpnettest.Demo.WorkerSecret,
		Hooks:        otelauth.New(otelauth.Config{MeterProvider: mp, TracerProvider: tp}),
	})
	if err != nil {
		log.Fatal(err)
	}
	client := src.Client(ctx)
	for range 3 {
		resp, err := client.Get(srv.DomainAPI() + "Crm_Sales_Customers")
		if err != nil {
			log.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			log.Fatal(resp.Status)
		}
	}
	src.Close()

	// At shutdown the providers flush: the exporters write their JSON.
	if err := mp.Shutdown(ctx); err != nil {
		log.Fatal(err)
	}
	if err := tp.Shutdown(ctx); err != nil {
		log.Fatal(err)
	}
	counters := sums(&metricsJSON)
	for _, name := range []string{"erpnet.auth.token.requests", "erpnet.auth.api.sessions_opened"} {
		fmt.Println(name, counters[name])
	}
	for _, name := range spanNames(&spansJSON) {
		fmt.Println("span:", name)
	}
	// Output:
	// erpnet.auth.token.requests 1
	// erpnet.auth.api.sessions_opened 1
	// span: erpnet.auth discovery
	// span: erpnet.auth token
}

// sums reads stdoutmetric's JSON and adds up each counter's data points.
func sums(r io.Reader) map[string]int64 {
	out := map[string]int64{}
	dec := json.NewDecoder(r)
	for dec.More() {
		var rm struct {
			ScopeMetrics []struct {
				Metrics []struct {
					Name string
					Data struct {
						DataPoints []struct{ Value *int64 }
					}
				}
			}
		}
		if err := dec.Decode(&rm); err != nil {
			log.Fatal(err)
		}
		for _, sm := range rm.ScopeMetrics {
			for _, m := range sm.Metrics {
				for _, p := range m.Data.DataPoints {
					if p.Value != nil {
						out[m.Name] += *p.Value
					}
				}
			}
		}
	}
	return out
}

// spanNames reads stdouttrace's JSON and lists the spans' names, sorted,
// each once.
func spanNames(r io.Reader) []string {
	seen := map[string]bool{}
	dec := json.NewDecoder(r)
	for dec.More() {
		var s struct{ Name string }
		if err := dec.Decode(&s); err != nil {
			log.Fatal(err)
		}
		seen[s.Name] = true
	}
	var out []string
	for n := range seen {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}
