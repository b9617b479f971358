// Package peek lets one package of the SDK use what a public type of
// another keeps unexported, without adding a name to the public API. The
// owning package fills in each function in its init; parameters are any so
// that this package imports none of the SDK's public packages.
//
// Package authcode sets the functions of authcode.go, for packages
// instances (to serve many ERP.net instances through one callback and one
// cookie name) and bff (to read a Client's settings and pages); package
// clientcreds those of peek.go, for package hybrid.
package peek

// Set by package clientcreds, for package hybrid.
var (
	// SourceClientID returns the client_id of a *clientcreds.Source.
	SourceClientID func(src any) string
	// SourceToken returns the access token a *clientcreds.Source holds, or
	// "" when it holds none, silently: no hook event, no request, no
	// refresh. hybrid's response guard needs the token to keep it out of
	// responses; asking the Source for it would count as a use.
	SourceToken func(src any) string
)

// Set by package instances, for package bff.
var (
	// RegistryClient returns the *authcode.Client an *instances.Registry
	// renders its own pages with: it holds the settings every instance's
	// Client shares (cookie, paths, session lifetime, logger, hooks).
	RegistryClient func(reg any) any
)
