package authcode

import (
	"log/slog"
	"net/http"
	"net/url"
	"strings"

	"github.com/erpnetgo/auth"
)

// warnRedirectURIs logs, when the Client is made, a warning for each
// redirect URI that is easy to register wrongly: ERP.net compares redirect
// and post-logout URIs with the Trusted Application's lists byte for byte,
// so a trailing slash or an upper-case letter must be registered exactly
// as configured. The warning names the exact string to register.
func warnRedirectURIs(log *slog.Logger, cfg Config) {
	for _, u := range []struct{ field, raw, list string }{
		{"RedirectURL", cfg.RedirectURL, "ImpersonateLoginUrl"},
		{"PostLogoutRedirectURL", cfg.PostLogoutRedirectURL, "ImpersonateLogoutUrl"},
	} {
		if why := registrationRisk(u.raw); why != "" {
			log.Warn("authcode: "+u.field+" "+why+"; ERP.net compares it byte for byte: register exactly this string in the Trusted Application's "+u.list,
				"field", u.field, "register", u.raw)
		}
	}
}

// registrationRisk says why raw is easy to register wrongly, or "".
func registrationRisk(raw string) string {
	u, err := url.Parse(raw)
	if raw == "" || err != nil {
		return ""
	}
	var why []string
	if len(u.Path) > 1 && strings.HasSuffix(u.Path, "/") {
		why = append(why, "ends with '/'")
	}
	if strings.ToLower(u.Host) != u.Host || strings.ToLower(u.Path) != u.Path {
		why = append(why, "has upper-case letters")
	}
	return strings.Join(why, " and ")
}

// withoutRedirectURL returns, for a Client without Config.RedirectURL, the
// handler that stands in for SignIn or Callback (named by handler): the
// configuration error is logged once, when the handler is built (at
// start-up, when routes are mounted), and every request gets a plain page
// saying that sign-in is not set up (501), never a Go error. It returns
// nil when RedirectURL is set.
func (c *Client) withoutRedirectURL(handler string) http.Handler {
	if c.cfg.RedirectURL != "" {
		return nil
	}
	err := &auth.ConfigError{Field: "RedirectURL", Reason: "is required to serve " + handler +
		": set it to the absolute URL of the Callback handler, as registered with the Trusted Application"}
	c.log.Error("authcode: "+handler+" cannot sign anyone in: "+err.Error(), "handler", handler)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		noCache(w)
		c.fail(w, r, http.StatusNotImplemented, err)
	})
}
