package oidctest_test

import (
	"fmt"
	"sync"
	"testing"

	"github.com/erpnetgo/auth/internal/oidctest"
)

// recordingTB is a testing.TB that records Skip and Fatal instead of ending
// the test it belongs to.
type recordingTB struct {
	testing.TB
	skipped, fatal string
}

func (r *recordingTB) Helper()                   {}
func (r *recordingTB) Skip(args ...any)          { r.skipped = fmt.Sprint(args...); exit() }
func (r *recordingTB) Fatal(args ...any)         { r.fatal = fmt.Sprint(args...); exit() }
func (r *recordingTB) Fatalf(f string, a ...any) { r.fatal = fmt.Sprintf(f, a...); exit() }

// exit ends the goroutine, as testing.T's Skip and Fatal do.
func exit() { panic(errExit) }

var errExit = fmt.Errorf("exit")

func start(tb *recordingTB) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer func() {
			if p := recover(); p != nil && p != errExit {
				panic(p)
			}
		}()
		oidctest.Start(tb, oidctest.Config{})
	}()
	wg.Wait()
}

// TestWithoutNode: without Node.js the interoperability tests skip, as the
// Redis tests do without redis-server, and fail when CI is set (issue 23:
// the suite failed on a machine without Node.js).
func TestWithoutNode(t *testing.T) {
	t.Setenv("PATH", t.TempDir()) // no node, no npm
	t.Setenv("CI", "")
	local := &recordingTB{TB: t}
	start(local)
	if local.skipped == "" || local.fatal != "" {
		t.Fatalf("without node and CI unset: skipped %q, fatal %q", local.skipped, local.fatal)
	}
	t.Setenv("CI", "true")
	ci := &recordingTB{TB: t}
	start(ci)
	if ci.fatal == "" || ci.skipped != "" {
		t.Fatalf("without node and CI set: skipped %q, fatal %q", ci.skipped, ci.fatal)
	}
	t.Logf("the message: %s", ci.fatal)
}
