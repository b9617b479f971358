package testutil

import (
	"os"
	"os/exec"
	"testing"
)

// envRunMain tells a test binary started by RunMain to run the program's
// main instead of its tests.
const envRunMain = "ERPNETGO_TESTUTIL_RUN_MAIN"

// MainOrTests runs main, as the program would, when the test binary was
// started by RunMain, and reports true; otherwise it reports false and the
// tests run. Call it first in TestMain:
//
//	func TestMain(m *testing.M) {
//		if testutil.MainOrTests(main) {
//			return
//		}
//		testutil.VerifyNoLeaks(m)
//	}
func MainOrTests(main func()) bool {
	if os.Getenv(envRunMain) != "1" {
		return false
	}
	main()
	return true
}

// RunMain runs the program under test (its main, through MainOrTests) with
// args, as "go run . args..." would, and returns its combined output and
// exit error.
func RunMain(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), envRunMain+"=1")
	out, err := cmd.CombinedOutput()
	return string(out), err
}
