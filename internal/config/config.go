// Package config holds the one rule for each Config field that several
// packages of the SDK share: Authority, DomainAPI, ClientID, ClientSecret,
// Scopes, redirect URLs, Keys, AuthStyle and durations. Every package checks
// its Config with these functions, so the same field is checked the same way
// everywhere.
//
// Errors are *auth.ConfigError values whose Field is the caller's Go
// expression without a package prefix ("Scopes[2]", "Keys[0]",
// "LoopbackOptions.Path"), and whose Reason never contains the value.
package config

import (
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/erpnetgo/auth"
)

// Err is the error for field with reason.
func Err(field, reason string) error { return &auth.ConfigError{Field: field, Reason: reason} }

// Index names element i of the slice field: Index("Scopes", 2) is
// "Scopes[2]".
func Index(field string, i int) string { return fmt.Sprintf("%s[%d]", field, i) }

// Authority checks an instance root or identity server URL: required, an
// absolute https URL (http only for a loopback host) with no query,
// fragment or user info.
func Authority(field, v string) error {
	if v == "" {
		return Err(field, "is required (the instance root, e.g. https://demodb.my.erp.net, or its /id URL)")
	}
	return root(field, v)
}

// DomainAPI checks an optional API root: empty, or a URL as Authority
// requires.
func DomainAPI(field, v string) error {
	if v == "" {
		return nil
	}
	return root(field, v)
}

func root(field, v string) error {
	u, err := url.Parse(v)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return Err(field, "must be an absolute http(s) URL")
	}
	if u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.Contains(v, "#") || u.User != nil {
		return Err(field, "must not contain a query, fragment or user info")
	}
	if u.Scheme == "http" && !IsLoopback(u.Hostname()) {
		return Err(field, "must use https (plain http is allowed only for 127.0.0.1, ::1 and localhost)")
	}
	return nil
}

// RedirectURL checks an optional redirect or post-logout URL, matched by
// ERP.net exactly as registered with the Trusted Application: empty, or an
// absolute https URL (http only for a loopback host) with no fragment or
// user info (RFC 6749 section 3.1.2,
// https://www.rfc-editor.org/rfc/rfc6749#section-3.1.2).
func RedirectURL(field, v string) error {
	if v == "" {
		return nil
	}
	u, err := url.Parse(v)
	if err != nil || !u.IsAbs() || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return Err(field, "must be an absolute http(s) URL")
	}
	if u.Fragment != "" || strings.Contains(v, "#") || u.User != nil {
		return Err(field, "must not contain a fragment or user info")
	}
	if u.Scheme == "http" && !IsLoopback(u.Hostname()) {
		return Err(field, "must use https (plain http is allowed only for 127.0.0.1, ::1 and localhost)")
	}
	return nil
}

// IsLoopback reports whether host names this machine.
func IsLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// ClientID checks a client_id (the Trusted Application's ApplicationUri,
// which may contain '/'): required, no control characters and no spaces
// around it.
func ClientID(field, v string) error {
	switch {
	case strings.TrimSpace(v) == "":
		return Err(field, "is required (the Trusted Application's ApplicationUri)")
	case strings.ContainsFunc(v, IsCtl):
		return Err(field, "contains control characters")
	case strings.TrimSpace(v) != v:
		return Err(field, "must not start or end with spaces")
	}
	return nil
}

// ClientSecret checks a client secret: no control characters (a stray
// newline from a file), and not empty when required, in which case why
// says what needs it.
func ClientSecret(field, v string, required bool, why string) error {
	switch {
	case v == "" && required:
		return Err(field, "is required: "+why)
	case strings.ContainsFunc(v, IsCtl):
		return Err(field, "contains control characters (a stray newline from a file?)")
	}
	return nil
}

// ClientSecretFile checks the path of a file holding the client secret,
// given instead of the secret itself (secret is the ClientSecret field
// beside it): not both, and no control characters in the path.
func ClientSecretFile(field, path, secret string) error {
	switch {
	case path == "":
		return nil
	case secret != "":
		return Err(field, "must be empty when ClientSecret is set: give the secret one way")
	case strings.ContainsFunc(path, IsCtl):
		return Err(field, "contains control characters (a stray newline?)")
	}
	return nil
}

// Scopes checks each scope: a scope token of RFC 6749 section 3.3
// (https://www.rfc-editor.org/rfc/rfc6749#section-3.3), printable ASCII
// without spaces, '"' or '\'.
func Scopes(field string, v []string) error {
	for i, s := range v {
		if s == "" || strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r >= 0x7f || r == '"' || r == '\\' }) {
			return Err(Index(field, i), "must be a scope token: printable ASCII without spaces, quotes or backslashes")
		}
	}
	return nil
}

// Keys checks AES keys: each 16, 24 or 32 bytes; at least one when
// required. A key given as base64 or hex text instead of its bytes gets a
// hint to decode it.
func Keys(field string, keys [][]byte, required bool) error {
	if len(keys) == 0 && required {
		return Err(field, "must hold at least one AES key (16, 24 or 32 bytes)")
	}
	for i, k := range keys {
		switch len(k) {
		case 16, 24, 32:
			continue
		}
		reason := fmt.Sprintf("is %d bytes: AES keys are 16, 24 or 32 bytes", len(k))
		if hint := textKey(k); hint != "" {
			reason += "; " + hint
		}
		return Err(Index(field, i), reason)
	}
	return nil
}

// textKey says how to decode k when it is a key of valid length written
// as base64 or hex text, else "".
func textKey(k []byte) string {
	valid := func(n int) bool { return n == 16 || n == 24 || n == 32 }
	s := strings.TrimSpace(string(k))
	if b, err := hex.DecodeString(s); err == nil && valid(len(b)) {
		return "it looks like hex text: decode it first (hex.DecodeString)"
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil && valid(len(b)) {
			return "it looks like base64 text: decode it first (base64.StdEncoding.DecodeString)"
		}
	}
	return ""
}

// AuthStyle checks an oauth2.AuthStyle.
func AuthStyle(field string, v oauth2.AuthStyle) error {
	switch v {
	case oauth2.AuthStyleAutoDetect, oauth2.AuthStyleInParams, oauth2.AuthStyleInHeader:
		return nil
	}
	return Err(field, "is not an oauth2.AuthStyle")
}

// NotNegative checks a duration or count whose zero value means a default.
func NotNegative[T time.Duration | int](field string, v T) error {
	if v < 0 {
		return Err(field, "must not be negative")
	}
	return nil
}

// First returns the first error of errs that is not nil: a Config is
// checked field by field, and the first field at fault is reported.
func First(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// IsCtl reports a control character (what no field of text may hold).
func IsCtl(r rune) bool { return r < 0x20 || r == 0x7f }
