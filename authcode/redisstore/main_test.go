package redisstore_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/erpnetgo/auth/internal/redistest"
	"github.com/erpnetgo/auth/internal/testutil"
)

// helperEnv is set in the environment of child processes started by the
// multi-process tests (see TestHelperProcess).
const helperEnv = "REDISSTORE_TEST_HELPER"

// quietRedis drops go-redis's own log lines (dial failures while a test
// has stopped Redis on purpose).
type quietRedis struct{}

func (quietRedis) Printf(context.Context, string, ...any) {}

func TestMain(m *testing.M) {
	redis.SetLogger(quietRedis{})
	if os.Getenv(helperEnv) != "" {
		// A child process: it runs only TestHelperProcess and needs no
		// server of its own.
		os.Exit(m.Run())
	}
	// The examples read REDIS_ADDR: give them a server of their own.
	srv, err := redistest.Run()
	switch {
	case err == nil:
		os.Setenv("REDIS_ADDR", srv.Addr())
	case os.Getenv("CI") != "":
		fmt.Fprintln(os.Stderr, "redisstore tests:", err, "(CI is set, so this is an error)")
		os.Exit(1)
	default:
		fmt.Fprintln(os.Stderr, "redisstore tests: skipping the examples and Redis tests:", err)
		flag.Parse()
		_ = flag.Set("test.skip", "^Example")
	}
	code := m.Run()
	if srv != nil {
		srv.Close()
	}
	if code == 0 {
		if err := testutil.FindLeaks(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak: errors on successful test run:", err)
			code = 1
		}
	}
	os.Exit(code)
}
