package devserver

import (
	"errors"
	"fmt"
)

// SetSecret stores a new secret for the confidential application appID, as an ERP.net
// administrator does: the old secret fails at once with invalid_client (a Trusted
// Application holds one secret hash; there is no overlap window). Tokens already issued stay
// valid.
func (s *Server) SetSecret(appID, secret string) error {
	app := s.apps[appID]
	switch {
	case app == nil:
		return fmt.Errorf("devserver: SetSecret: no application %q", appID)
	case app.ClientType != Confidential:
		return fmt.Errorf("devserver: SetSecret: %q is a public application: it has no secret", appID)
	case secret == "":
		return errors.New("devserver: SetSecret: the secret must not be empty")
	}
	s.rotated.Store(appID, HashSecret(secret))
	s.log.Info("devserver: client secret changed", "client_id", appID)
	return nil
}

// secretHash is app's current secret hash: the one SetSecret stored last, else its
// configured one.
func (s *Server) secretHash(app *App) string {
	if h, ok := s.rotated.Load(app.ApplicationURI); ok {
		return h.(string)
	}
	return app.SecretHash
}
