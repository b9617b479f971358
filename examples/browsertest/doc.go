// Package browsertest drives the example programs (examples/webapp,
// examples/portal, examples/spa and the loopback sign-in of examples/cli)
// in a real, headless Chromium over the DevTools protocol (chromedp),
// against the dev identity server the examples embed (examples/spa runs
// against one the test starts with package erpnettest, whose counters and
// clock the tests use). It has no code of its own: everything is in its
// tests.
//
// It is a module of its own so that the browser driver never shows up in
// the module graph of the SDK's users. Run it from this folder:
//
//	go test -race -count=1 ./...
//
// It needs Debian's chromium (apt-get install chromium); CHROMIUM (or
// BROWSERTEST_CHROMIUM) may name another binary. Without a browser the tests
// are skipped, unless CI is set, when they fail. The examples are built from
// the repository root into a temporary folder and run as subprocesses on
// 127.0.0.1; nothing is fetched at run time.
//
// Environment:
//
//	UPDATE_SCREENSHOT=1         rewrite docs/webapp-signed-in.png (repository root)
//	BROWSERTEST_VERBOSE=1       log every browser navigation and the examples' output
//
// See .ci/browser.sh at the repository root for the CI step.
package browsertest
