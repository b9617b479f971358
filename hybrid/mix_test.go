package hybrid_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestIdentitiesDoNotMixAtCompileTime builds the programs in
// testdata/mix: each one that uses a UserAPI as a ServiceAPI (or the
// reverse) must fail to compile with a type error naming both types; the
// control program, which uses each as itself, must compile.
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
		t.Run(c.dir, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, goTool, "build", "-o", os.DevNull, "./hybrid/testdata/mix/"+c.dir)
			cmd.Dir = root
			out, err := cmd.CombinedOutput()
			if c.want == nil {
				require.NoError(t, err, "the control program must compile:\n%s", out)
				return
			}
			require.Error(t, err, "mixing UserAPI and ServiceAPI compiled, it must not")
			var ee *exec.ExitError
			require.ErrorAs(t, err, &ee, "go build did not run: %s", out)
			for _, w := range c.want {
				assert.Contains(t, string(out), w)
			}
			assert.NotContains(t, string(out), "cannot find package", "a setup problem, not a type error")
			assert.Equal(t, 1, strings.Count(string(out), "# github.com/erpnetgo/auth/hybrid/testdata/mix/"+c.dir),
				"only the mixing program fails, not the hybrid package")
		})
	}
}
