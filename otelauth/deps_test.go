package otelauth_test

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// goIn runs the go command in dir (the SDK's module root is "..") and
// returns its output.
func goIn(t *testing.T, dir string, args ...string) string {
	t.Helper()
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed: %v", err)
	}
	cmd := exec.Command(gobin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=readonly")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// A program that imports only clientcreds (or any package of the SDK's
// module) builds without OpenTelemetry, and the SDK's module graph does not
// contain it: only this nested module brings it in.
func TestSDKHasNoOpenTelemetry(t *testing.T) {
	for _, pkg := range []string{"github.com/erpnetgo/auth/clientcreds", "github.com/erpnetgo/auth/examples/worker"} {
		deps := goIn(t, "..", "list", "-deps", pkg)
		if !strings.Contains(deps, "github.com/erpnetgo/auth/clientcreds\n") || !strings.Contains(deps, "github.com/erpnetgo/auth\n") {
			t.Fatalf("go list -deps %s does not list the SDK itself:\n%s", pkg, deps)
		}
		if strings.Contains(deps, "go.opentelemetry.io") {
			t.Errorf("go list -deps %s lists OpenTelemetry:\n%s", pkg, deps)
		}
	}
	// The whole module, tests included: nothing there imports OpenTelemetry.
	all := goIn(t, "..", "list", "-deps", "-test", "./...")
	if strings.Contains(all, "go.opentelemetry.io") || strings.Contains(all, "github.com/erpnetgo/auth/otelauth") {
		t.Errorf("a package of the SDK's module depends on OpenTelemetry or otelauth")
	}
	mods := goIn(t, "..", "list", "-m", "all")
	if strings.Contains(mods, "go.opentelemetry.io") {
		t.Errorf("the SDK's module graph contains OpenTelemetry:\n%s", mods)
	}
	// The check can fail: this module does list it.
	if own := goIn(t, ".", "list", "-deps", "."); !strings.Contains(own, "go.opentelemetry.io/otel/metric\n") {
		t.Errorf("go list -deps of otelauth does not list go.opentelemetry.io/otel/metric:\n%s", own)
	}
}
