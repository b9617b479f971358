package reftoken_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/erpnetgo/auth"
	"github.com/erpnetgo/auth/reftoken"
)

func TestParseAccepts(t *testing.T) {
	for name, in := range map[string]string{
		"published shape":   hexToken,
		"trailing newline":  hexToken + "\n",
		"CRLF":              hexToken + "\r\n",
		"surrounding space": "  \t" + hexToken + " \n",
		"byte order mark":   "\uFEFF" + hexToken + "\n",
		"all digits":        "enrt_" + strings.Repeat("0", 64),
		"all letters":       "enrt_" + strings.Repeat("F", 64),
	} {
		t.Run(name, func(t *testing.T) {
			tok, err := reftoken.Parse(in)
			require.NoError(t, err)
			assert.Equal(t, strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(in), "\uFEFF")), tok.RevealSecret())
			assert.False(t, tok.IsZero())
		})
	}
}

func TestParseRejects(t *testing.T) {
	body := strings.TrimPrefix(hexToken, "enrt_")
	cases := []struct {
		name, in, reason string
	}{
		{"empty", "", "is empty"},
		{"whitespace only", " \t\r\n ", "contains only whitespace"},
		{"no prefix", body, `does not start with "enrt_"`},
		{"other prefix", "enrx_" + body, `does not start with "enrt_"`},
		{"upper-case prefix", "ENRT_" + body, `prefix must be lower-case "enrt_"`},
		{"mixed-case prefix", "Enrt_" + body, `prefix must be lower-case "enrt_"`},
		{"bearer scheme", "Bearer " + hexToken, `authorization scheme`},
		{"header line", "X-Api-Key: " + hexToken, `header name`},
		{"double quotes", `"` + hexToken + `"`, "quotes"},
		{"single quotes", `'` + hexToken + `'`, "quotes"},
		{"prefix only", "enrt_", `has no characters after "enrt_"`},
		{"too short", hexToken[:len(hexToken)-1], `has 63 characters after "enrt_", want 64`},
		{"too long", hexToken + "A", `has 65 characters after "enrt_", want 64`},
		{"short and lower-case", "enrt_abc", `has 3 characters after "enrt_", want 64`}, // issue 23: it said "lower-case"
		{"short with a wrong letter", "enrt_XYZ", `has 3 characters after "enrt_", want 64`},
		{"lower-case hex", "enrt_" + strings.ToLower(body), "lower-case hexadecimal digit at offset 15"},
		{"non-hex letter", hexToken[:20] + "G" + hexToken[21:], "not a hexadecimal digit at offset 20"},
		{"underscore", hexToken[:20] + "_" + hexToken[21:], "not a hexadecimal digit at offset 20"},
		{"embedded space", hexToken[:30] + " " + hexToken[31:], "whitespace at offset 30"},
		{"embedded newline", hexToken[:30] + "\n" + hexToken[31:], "whitespace at offset 30"},
		{"header injection", hexToken[:30] + "\r\nX-Evil: 1", "whitespace at offset 30"},
		{"NUL", hexToken[:30] + "\x00" + hexToken[31:], "control character at offset 30"},
		{"DEL", hexToken[:30] + "\x7f" + hexToken[31:], "control character at offset 30"},
		{"non-ASCII", hexToken[:30] + "é" + hexToken[32:], "non-ASCII character at offset 30"},
		{"NBSP inside", hexToken[:30] + "\u00a0" + hexToken[32:], "non-ASCII character at offset 30"},
		{"two tokens", hexToken + " " + hexToken, "whitespace at offset 69"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tok, err := reftoken.Parse(c.in)
			require.Error(t, err)
			assert.True(t, tok.IsZero())
			assert.ErrorIs(t, err, reftoken.ErrMalformed)
			assert.ErrorIs(t, err, auth.ErrMisconfigured)
			var pe *reftoken.ParseError
			require.ErrorAs(t, err, &pe)
			assert.Contains(t, pe.Reason, c.reason)
			assert.Equal(t, "reftoken: malformed reference token: "+pe.Reason, err.Error())
			assertNoSecret(t, "parse error", err.Error(), hexToken)
		})
	}
}

func TestMustParse(t *testing.T) {
	assert.Equal(t, hexToken, reftoken.MustParse(hexToken).RevealSecret())
	assert.PanicsWithError(t, `reftoken: malformed reference token: has 3 characters after "enrt_", want 64`, func() {
		reftoken.MustParse("enrt_ABC")
	})
}

func TestZeroToken(t *testing.T) {
	var tok reftoken.Token
	assert.True(t, tok.IsZero())
	assert.Equal(t, "", tok.RevealSecret())
	assert.Equal(t, "enrt_(empty)", tok.String())
	assert.True(t, tok.Equal(reftoken.Token{}))
	assert.False(t, tok.Equal(reftoken.MustParse(hexToken)))
	_, err := tok.TokenSource().Token()
	assert.ErrorIs(t, err, auth.ErrMisconfigured)
}

func TestEqual(t *testing.T) {
	a, b := reftoken.MustParse(hexToken), reftoken.MustParse(hexToken+"\n")
	assert.True(t, a.Equal(b))
	assert.False(t, a.Equal(reftoken.MustParse("enrt_"+strings.Repeat("0", 64))))
}

func TestUnmarshal(t *testing.T) {
	var cfg struct{ Token reftoken.Token }
	require.NoError(t, json.Unmarshal([]byte(`{"Token":"`+hexToken+`"}`), &cfg))
	assert.Equal(t, hexToken, cfg.Token.RevealSecret())

	// The redacted form does not round-trip: it fails loudly instead of yielding a bad token.
	out, err := json.Marshal(cfg)
	require.NoError(t, err)
	var back struct{ Token reftoken.Token }
	err = json.Unmarshal(out, &back)
	require.Error(t, err)
	assert.True(t, errors.Is(err, reftoken.ErrMalformed))
}
