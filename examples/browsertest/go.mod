module github.com/erpnetgo/auth/examples/browsertest

go 1.26.0

// The tests build the examples from the repository root (with the SDK's own
// go.mod) and run them as processes. Should a test import the SDK, it gets
// this working tree, never a published version.
replace github.com/erpnetgo/auth => ../..

require (
	github.com/chromedp/cdproto v0.160.1
	github.com/chromedp/chromedp v0.23.1
	github.com/erpnetgo/auth v0.0.0-00010101000000-000000000000
	go.uber.org/goleak v1.3.0
)

require (
	github.com/go-json-experiment/json v0.0.0-20260213210345-44df1a37e875 // indirect
	golang.org/x/oauth2 v0.36.0 // indirect
)
