// Package peek lets one package of the SDK read what a public type of
// another keeps unexported, without adding a name to the public API. The
// owning package fills in each function in its init.
package peek

// SourceClientID returns the client_id of a *clientcreds.Source (set by
// package clientcreds; the parameter is any so that this package imports
// none of the SDK's).
var SourceClientID func(src any) string
