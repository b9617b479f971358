package authcode

import (
	"net/http"

	"github.com/erpnetgo/auth/internal/bffhook"
	"github.com/erpnetgo/auth/internal/hook"
)

// Package bff (the backend-for-frontend of single-page apps) reads these
// parts of a Client through internal/bffhook; nothing here is exported.
func init() {
	bffhook.Of = func(v any) (*bffhook.Client, bool) {
		c, ok := v.(*Client)
		if !ok || c == nil {
			return nil, false
		}
		signedOut := c.cfg.PostLogoutRedirectURL
		if signedOut == "" {
			signedOut = c.cfg.DefaultReturnPath
		}
		return &bffhook.Client{
			Web:        c.cfg.RedirectURL != "",
			SessionTTL: c.cfg.SessionTTL,
			Now:        c.now,
			Logger:     c.log,
			Report:     &hook.Reporter{Hooks: c.cfg.Hooks, Flow: "bff", ClientID: c.cfg.ClientID},
			SignedOut:  signedOut,
			SessionID:  c.sessionID,
			Page: func(w http.ResponseWriter, status int, title, msg, extraHTML string) {
				noCache(w)
				page(w, status, title, msg, extraHTML, "")
			},
		}, true
	}
}
