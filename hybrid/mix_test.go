package hybrid_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestIdentitiesDoNotMixAtCompileTime builds every program in testdata/mix
// with ONE go build: each one that uses a UserAPI as a ServiceAPI (or the
// reverse), or one interface for both, must fail to compile with a type
// error naming both types; the control program, which uses each as itself,
// must compile.
func TestIdentitiesDoNotMixAtCompileTime(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		if p := filepath.Join(os.Getenv("GOROOT"), "bin", "go"); os.Getenv("GOROOT") != "" {
			if _, serr := os.Stat(p); serr == nil {
				goTool, err = p, nil
			}
		}
	}
	if err != nil {
		t.Skip("the go tool is not available:", err)
	}
	root, err := filepath.Abs("..")
	require.NoError(t, err)
	_, err = os.Stat(filepath.Join(root, "go.mod"))
	require.NoError(t, err, "the module root must be the parent of hybrid/")

	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, goTool, "build", "./hybrid/testdata/mix/...")
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	require.True(t, errors.As(err, &ee), "go build must run and fail: %v\n%s", err, out)

	// The output is one "# package" section per package that failed.
	const prefix = "github.com/erpnetgo/auth/hybrid/testdata/mix/"
	sections := map[string]string{}
	for _, sec := range strings.Split("\n"+string(out), "\n# ")[1:] {
		pkg, body, _ := strings.Cut(sec, "\n")
		dir, ok := strings.CutPrefix(pkg, prefix)
		require.True(t, ok, "only the mixing programs fail, not %s:\n%s", pkg, out)
		sections[dir] = body
	}

	cases := []struct {
		dir  string
		want []string // all must appear in the compiler's output
	}{
		{"user_as_service_var", []string{"cannot use u", "hybrid.UserAPI", "as hybrid.ServiceAPI value in variable declaration"}},
		{"user_as_service_conv", []string{"cannot convert u", "hybrid.UserAPI", "to type hybrid.ServiceAPI"}},
		{"user_as_service_arg", []string{"cannot use u", "hybrid.UserAPI", "as hybrid.ServiceAPI value in argument to importAll"}},
		{"service_as_user_var", []string{"cannot use app.Service()", "hybrid.ServiceAPI", "as hybrid.UserAPI value in variable declaration"}},
		{"service_as_user_conv", []string{"cannot convert s", "hybrid.ServiceAPI", "to type hybrid.UserAPI"}},
		{"service_as_user_arg", []string{"cannot use s", "hybrid.ServiceAPI", "as hybrid.UserAPI value in argument to myOrders"}},
		{"shared_interface", []string{
			"hybrid.UserAPI does not implement serviceClienter (missing method ServiceClient)",
			"hybrid.ServiceAPI does not implement userClienter (missing method UserClient)"}},
		{"ok", nil},
	}
	for _, c := range cases {
		body, failed := sections[c.dir]
		delete(sections, c.dir)
		if c.want == nil {
			assert.False(t, failed, "the control program must compile:\n%s", body)
			continue
		}
		if !assert.True(t, failed, "%s: mixing UserAPI and ServiceAPI compiled, it must not", c.dir) {
			continue
		}
		for _, w := range c.want {
			assert.Contains(t, body, w, c.dir)
		}
		assert.NotContains(t, body, "cannot find package", "a setup problem, not a type error")
	}
	assert.Empty(t, sections, "every program in testdata/mix has a case")
}
