package erpnettest

import "strings"

// SetSecret stores a new client secret for the confidential application appID, as an
// ERP.net administrator does: from then on the old secret fails at once with invalid_client
// (a Trusted Application holds one secret, with no overlap window), while tokens already
// issued stay valid. Use it to test secret rotation (see Config.ClientSecretFile in the
// clientcreds, authcode and hybrid packages). An unknown or public application, or an empty
// secret, fails the test (or panics for a Server made by Start).
func (s *Server) SetSecret(appID, secret string) {
	if s.tb != nil {
		s.tb.Helper()
	}
	if err := s.ds.SetSecret(appID, secret); err != nil {
		s.fail("%s", strings.TrimPrefix(err.Error(), "devserver: "))
	}
}
