package redact

import (
	"encoding/base64"
	"net/url"
	"strings"
	"testing"
)

func TestScrubRemovesEveryEncoding(t *testing.T) {
	secret := "s3cr:et%+/="
	in := "raw " + secret + " url " + url.QueryEscape(secret) + " b64 " + base64.StdEncoding.EncodeToString([]byte(secret))
	out := Scrub(in, "", "ab", secret)
	if strings.Contains(out, secret) || strings.Contains(out, url.QueryEscape(secret)) || strings.Count(out, Mask) != 3 {
		t.Fatalf("%q", out)
	}
	if Scrub("an ab test", "ab") != "an ab test" {
		t.Fatal("too-short secrets must be ignored")
	}
}

func TestTruncate(t *testing.T) {
	if Truncate("abc", 5) != "abc" || Truncate("abcdef", 3) != "abc…" {
		t.Fatal("Truncate")
	}
}
