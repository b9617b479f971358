package reftoken

import (
	"errors"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"
)

// reasonRE matches exactly the messages ParseError can produce: the fixed text, an optional
// source (never used by Parse), and one of the reasons with numbers in place of %d. A message
// that matches can only carry digits taken from the input, never the input itself.
var reasonRE = func() *regexp.Regexp {
	alts := make([]string, len(parseReasons))
	for i, r := range parseReasons {
		alts[i] = strings.ReplaceAll(regexp.QuoteMeta(r), "%d", "[0-9]+")
	}
	return regexp.MustCompile(`^reftoken: malformed reference token: (?:` + strings.Join(alts, "|") + `)$`)
}()

// fixedText is every constant part of a Parse error message, digits stripped.
var fixedText = stripDigits("reftoken: malformed reference token: " + strings.Join(parseReasons, "\n"))

func stripDigits(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' || r == '%' {
			return -1
		}
		return r
	}, s)
}

func FuzzParse(f *testing.F) {
	const valid = "enrt_0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF"
	body := valid[len(Prefix):]
	for _, seed := range []string{
		valid, valid + "\n", " " + valid + "\r\n", "\uFEFF" + valid, "enrt_" + strings.Repeat("F", 64),
		"", " ", "\n\t", "enrt_", "enrt", "ENRT_" + body, "Enrt_" + body, "enrt_" + strings.ToLower(body),
		body, "Bearer " + valid, "bearer " + valid, "X-Api-Key: " + valid, `"` + valid + `"`, "'" + valid + "'",
		valid[:68], valid + "0", valid[:30] + " " + valid[31:], valid[:30] + "\r\nX: y", valid + "\x00",
		valid[:30] + "é" + valid[32:], valid[:30] + "\xff" + valid[31:], "enrt_abc-._~+/DEF==", "enrt_=abc",
		"enrt_abc=def", "enrt_" + strings.Repeat("A", 2000), "\x00\x01\x02", "enrt_\u00a0" + body[1:],
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, in string) {
		tok, err := Parse(in)
		if err == nil {
			v := tok.RevealSecret()
			if v != trim(in) {
				t.Fatalf("Parse(%q) = %q, want the trimmed input", in, v)
			}
			again, err := Parse(v)
			if err != nil || !again.Equal(tok) {
				t.Fatalf("accepted token %q does not round-trip: %v", v, err)
			}
			if !strings.HasPrefix(v, Prefix) {
				t.Fatalf("accepted %q without the prefix", v)
			}
			for i := 0; i < len(v); i++ {
				if c := v[i]; c <= ' ' || c >= 0x7f || c == '"' || c == ',' || c == ':' || c == ';' || c == '\\' {
					t.Fatalf("accepted %q with header-unsafe byte %q", v, c)
				}
			}
			if len(v) != len(Prefix)+bodyLen {
				t.Fatalf("Parse accepted length %d", len(v))
			}
			if tok.String() != redacted {
				t.Fatalf("String() = %q", tok.String())
			}
			return
		}
		if !tok.IsZero() {
			t.Fatal("a failed parse returned a non-zero Token")
		}
		if !errors.Is(err, ErrMalformed) {
			t.Fatalf("error %v does not match ErrMalformed", err)
		}
		msg := err.Error()
		if !utf8.ValidString(msg) || !reasonRE.MatchString(msg) {
			t.Fatalf("unexpected error message %q for input %q", msg, in)
		}
		// The message must not repeat the input. Inputs of a few characters, and inputs
		// that are themselves a piece of the fixed message text, prove nothing.
		if len(in) > 4 && strings.Contains(msg, in) && !strings.Contains(fixedText, stripDigits(in)) {
			t.Fatalf("error message %q contains the input %q", msg, in)
		}
	})
}

func TestReasonsHaveNoInputVerbs(t *testing.T) {
	for _, r := range parseReasons {
		if strings.Count(r, "%") != strings.Count(r, "%d") {
			t.Errorf("reason %q formats something other than a number", r)
		}
	}
}
