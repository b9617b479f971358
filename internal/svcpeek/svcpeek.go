// Package svcpeek lets package hybrid learn which service token a
// clientcreds.Source holds, silently: no hook event, no request, no
// refresh. hybrid's response guard needs the token to keep it out of
// responses; asking the Source for it would count as a use.
package svcpeek

// Token returns the access token src (a *clientcreds.Source) holds, or ""
// when it holds none. Package clientcreds sets it.
var Token func(src any) string
