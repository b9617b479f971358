// Package redact is the SDK's one place for keeping secrets out of error
// strings, log lines and fmt output.
package redact

import (
	"encoding/base64"
	"net/url"
	"strings"
)

// Mask replaces a secret wherever one would be shown.
const Mask = "[REDACTED]"

// minSecret is the shortest value Scrub treats as a secret: shorter strings
// would erase ordinary words from messages.
const minSecret = 4

// Scrub returns s with every occurrence of each secret (as given, URL-encoded
// and base64-encoded) replaced by Mask. Empty and very short secrets are
// ignored.
func Scrub(s string, secrets ...string) string {
	for _, sec := range secrets {
		if len(sec) < minSecret {
			continue
		}
		for _, form := range [...]string{sec, url.QueryEscape(sec), base64.StdEncoding.EncodeToString([]byte(sec))} {
			if strings.Contains(s, form) {
				s = strings.ReplaceAll(s, form, Mask)
			}
		}
	}
	return s
}

// Truncate shortens an untrusted server string (an error_description) to at
// most n bytes so a hostile server cannot flood logs through our errors.
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
