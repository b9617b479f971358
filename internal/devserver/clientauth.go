package devserver

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
)

// oauthError is an RFC 6749 §5.2 error response.
type oauthError struct {
	status int
	code   string
	desc   string
	basic  bool // add WWW-Authenticate: Basic (invalid_client)
}

func (e *oauthError) Error() string { return e.code + ": " + e.desc }

func errInvalidRequest(desc string) *oauthError {
	return &oauthError{status: http.StatusBadRequest, code: "invalid_request", desc: desc}
}

func errInvalidClient(desc string) *oauthError {
	return &oauthError{status: http.StatusUnauthorized, code: "invalid_client", desc: desc, basic: true}
}

func errInvalidGrant(desc string) *oauthError {
	return &oauthError{status: http.StatusBadRequest, code: "invalid_grant", desc: desc}
}

func errUnauthorizedClient(desc string) *oauthError {
	return &oauthError{status: http.StatusBadRequest, code: "unauthorized_client", desc: desc}
}

func errInvalidScope(desc string) *oauthError {
	return &oauthError{status: http.StatusBadRequest, code: "invalid_scope", desc: desc}
}

// writeOAuthError writes e as JSON with Cache-Control: no-store.
func writeOAuthError(w http.ResponseWriter, e *oauthError) {
	noStore(w)
	if e.basic {
		w.Header().Set("WWW-Authenticate", `Basic realm="ERP.net Instance ID", charset="UTF-8"`)
	}
	body := map[string]any{"error": e.code}
	if e.desc != "" {
		body["error_description"] = e.desc
	}
	writeJSON(w, e.status, body)
}

// authedClient is the result of client authentication.
type authedClient struct {
	app *App
	// secret is the secret the client presented (confidential clients). It is kept only for
	// the duration of the request (IDTokenTamper HS256) and never logged.
	secret string
	method string // "client_secret_basic", "client_secret_post" or "none"
}

// dummyHash keeps the work of an unknown-client check equal to a real one.
var dummyHash = sha256.Sum256([]byte("devserver-dummy"))

// authenticateClient implements RFC 6749 §2.3.1: HTTP Basic with form-urlencoded id and secret,
// or client_id/client_secret in the body; never both. Public clients identify with client_id
// alone and must not send a secret.
func (s *Server) authenticateClient(r *http.Request, form url.Values) (*authedClient, *oauthError) {
	for _, k := range []string{"client_id", "client_secret"} {
		if len(form[k]) > 1 {
			return nil, errInvalidRequest("parameter " + k + " given more than once")
		}
	}
	var (
		id, secret string
		method     = "none"
		hasBasic   bool
	)
	if hdrs := r.Header.Values("Authorization"); len(hdrs) > 0 {
		if len(hdrs) > 1 {
			return nil, errInvalidRequest("more than one Authorization header")
		}
		bid, bsecret, err := parseBasic(hdrs[0])
		if err != nil {
			return nil, err
		}
		hasBasic = true
		id, secret, method = bid, bsecret, "client_secret_basic"
	}
	formID, formSecret := form.Get("client_id"), form.Get("client_secret")
	_, formHasSecret := form["client_secret"]
	if hasBasic {
		if formHasSecret {
			return nil, errInvalidRequest("the client used more than one authentication method (HTTP Basic and client_secret in the body)")
		}
		if formID != "" && formID != id {
			return nil, errInvalidRequest("client_id in the body does not match the HTTP Basic credentials")
		}
	} else {
		id, secret = formID, formSecret
		if formHasSecret {
			method = "client_secret_post"
		}
	}
	if id == "" {
		return nil, errInvalidClient("client authentication failed: no client credentials")
	}
	app := s.apps[id]
	if app == nil {
		subtle.ConstantTimeCompare(dummyHash[:], dummyHash[:])
		return nil, errInvalidClient("client authentication failed")
	}
	if app.ClientType == Public {
		if secret != "" {
			return nil, errInvalidClient("client authentication failed: a public client must not send a client secret")
		}
		method = "none"
	} else {
		if secret == "" {
			return nil, errInvalidClient("client authentication failed: client secret required")
		}
		if !secretMatches(s.secretHash(app), secret) {
			return nil, errInvalidClient("client authentication failed")
		}
	}
	if app.Disabled {
		return nil, errUnauthorizedClient("the client is disabled")
	}
	return &authedClient{app: app, secret: secret, method: method}, nil
}

// secretMatches compares sha256(secret) with the stored hash in constant time.
func secretMatches(storedHash, secret string) bool {
	want, err := base64.StdEncoding.DecodeString(storedHash)
	if err != nil {
		return false
	}
	got := sha256.Sum256([]byte(secret))
	return subtle.ConstantTimeCompare(want, got[:]) == 1
}

// parseBasic decodes "Basic base64(urlencode(id):urlencode(secret))".
func parseBasic(h string) (id, secret string, e *oauthError) {
	scheme, payload, ok := strings.Cut(strings.TrimSpace(h), " ")
	if !ok || !strings.EqualFold(scheme, "Basic") {
		return "", "", errInvalidClient("unsupported Authorization scheme; use HTTP Basic")
	}
	payload = strings.TrimSpace(payload)
	raw, err := base64.StdEncoding.DecodeString(payload)
	if err != nil {
		return "", "", errInvalidClient("malformed HTTP Basic credentials")
	}
	rawID, rawSecret, ok := strings.Cut(string(raw), ":")
	if !ok {
		return "", "", errInvalidClient("malformed HTTP Basic credentials")
	}
	id, err1 := url.QueryUnescape(rawID)
	secret, err2 := url.QueryUnescape(rawSecret)
	if err1 != nil || err2 != nil {
		return "", "", errInvalidClient("malformed HTTP Basic credentials: client_id and secret must be form-urlencoded (RFC 6749 §2.3.1)")
	}
	if id == "" {
		return "", "", errInvalidClient("malformed HTTP Basic credentials")
	}
	return id, secret, nil
}
