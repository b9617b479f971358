// Package interop holds the SDK's interoperability tests against identity
// servers whose code is not ours and which build from the Go module proxy
// (today zitadel/oidc's example OP, see package zitadelop). It is a nested
// module so that their dependencies never enter the SDK's module graph; the
// tests drive this working tree of the SDK through its public API only.
// Run them with: bash .ci/interop.sh
//
// The oidc-provider (npm) interoperability tests, ERP.net's /id layout
// included, live beside the packages they test (authcode, clientcreds).
package interop
