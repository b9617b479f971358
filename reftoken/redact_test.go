package reftoken_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/erpnetgo/auth"
	"github.com/erpnetgo/auth/reftoken"
)

// holder has the Token in every kind of field a program might use.
type holder struct {
	Name    string
	Token   reftoken.Token
	Ptr     *reftoken.Token
	List    []reftoken.Token
	Map     map[string]reftoken.Token
	hidden  reftoken.Token // unexported: fmt cannot call its methods
	hiddenP *reftoken.Token
}

func TestTokenNeverPrinted(t *testing.T) {
	tok := reftoken.MustParse(hexToken)
	h := holder{Name: "cfg", Token: tok, Ptr: &tok, List: []reftoken.Token{tok}, Map: map[string]reftoken.Token{"k": tok}, hidden: tok, hiddenP: &tok}

	assert.Equal(t, "enrt_…(redacted)", tok.String())
	assert.Equal(t, `reftoken.Token("enrt_…(redacted)")`, tok.GoString())

	var outputs []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%T", "%20v", "%-20s|", "%.3s"} {
		outputs = append(outputs, fmt.Sprintf(verb, tok), fmt.Sprintf(verb, &tok), fmt.Sprintf(verb, h), fmt.Sprintf(verb, &h))
	}
	outputs = append(outputs, fmt.Sprint(tok, h), fmt.Sprintln(tok, &tok, h))
	var w bytes.Buffer
	fmt.Fprintln(&w, tok)
	outputs = append(outputs, w.String())

	for _, m := range []any{tok, &tok, h, &h, []reftoken.Token{tok}, map[string]any{"t": tok}} {
		b, err := json.Marshal(m)
		require.NoError(t, err)
		outputs = append(outputs, string(b))
	}
	txt, err := tok.MarshalText()
	require.NoError(t, err)
	outputs = append(outputs, string(txt))

	for _, newHandler := range []func(*bytes.Buffer) slog.Handler{
		func(b *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(b, nil) },
		func(b *bytes.Buffer) slog.Handler { return slog.NewTextHandler(b, nil) },
	} {
		var b bytes.Buffer
		log := slog.New(newHandler(&b))
		log.Info("token", "tok", tok, "ptr", &tok, "holder", h, "holderPtr", &h)
		log.Info("group", slog.Group("g", slog.Any("tok", tok)), slog.Any("list", []reftoken.Token{tok}))
		log.With("tok", tok).Info("with")
		outputs = append(outputs, b.String())
	}

	// testify dumps both sides of a failed comparison with spew, methods disabled: the dump
	// walks unexported fields and must still not reach the value.
	other := h
	other.Name = "other"
	var ft fakeT
	assert.Equal(&ft, h, other)
	require.NotEmpty(t, ft.msg)
	outputs = append(outputs, ft.msg)

	for i, out := range outputs {
		assertNoSecret(t, fmt.Sprintf("output %d", i), out, hexToken)
	}
	assert.Contains(t, outputs[0], "enrt_…(redacted)")
	assert.Equal(t, `"enrt_…(redacted)"`, fmt.Sprintf("%q", tok))
	assert.Equal(t, `            enrt_…(redacted)`, fmt.Sprintf("%28v", tok))
}

// TestErrorsNeverContainToken provokes every error the package returns with inputs built from a
// real token and checks none of them carries it.
func TestErrorsNeverContainToken(t *testing.T) {
	tok := reftoken.MustParse(hexToken)
	body := strings.TrimPrefix(hexToken, "enrt_")
	var errs []error
	collect := func(_ any, err error) {
		t.Helper()
		require.Error(t, err)
		errs = append(errs, err)
	}

	// Parse, every way a real token can be damaged.
	for _, in := range []string{
		hexToken + "A", hexToken[:68], "ENRT_" + body, body, "Bearer " + hexToken, `"` + hexToken + `"`,
		"enrt_" + strings.ToLower(body), hexToken[:40] + " " + hexToken[40:], hexToken + "\x00",
		hexToken[:40] + "é" + hexToken[41:], "X-Api-Key: " + hexToken, "enrt_" + body + body,
	} {
		collect(reftoken.Parse(in))
		collect(reftoken.Parse(in + "!"))
	}
	// FromEnv and FromFile.
	t.Setenv("REFTOKEN_TEST_BAD", strings.ToLower(hexToken))
	collect(reftoken.FromEnv("REFTOKEN_TEST_BAD"))
	dir := t.TempDir()
	p := filepath.Join(dir, "tok")
	require.NoError(t, os.WriteFile(p, []byte(hexToken+"\n"), 0o644))
	collect(reftoken.FromFile(p))
	require.NoError(t, os.WriteFile(p, []byte(hexToken+"\n"+hexToken+"\n"), 0o600))
	collect(reftoken.FromFile(p))
	// Client configuration and host errors.
	c, err := tok.Client(reftoken.Config{Authority: "http://127.0.0.1:1", Transport: newRecorder(t)})
	require.NoError(t, err)
	req, _ := http.NewRequest(http.MethodGet, "http://127.0.0.2:1/?k="+hexToken, nil)
	req.Header.Set("Authorization", "Bearer "+hexToken)
	collect(c.Transport.RoundTrip(req))
	collect(tok.Client(reftoken.Config{Authority: "http://example.com/" + hexToken}))
	collect(tok.Client(reftoken.Config{Authority: "https://u:" + hexToken + "@example.com"}))
	collect(tok.Client(reftoken.Config{Authority: "https://example.com", DomainAPI: "https://example.com/?k=" + hexToken}))
	collect(reftoken.Token{}.Client(reftoken.Config{Authority: "https://example.com"}))
	collect(tok.Client(reftoken.Config{Authority: "https://example.com", Header: reftoken.Header(7)}))
	// A server that echoes the token in its challenge, in its URL and its Retry-After.
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := r.Header.Get("Authorization")
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token `+got+`", error_description="token `+got+` (hex `+body+`) is bad"`)
		w.WriteHeader(http.StatusUnauthorized)
	}))
	defer evil.Close()
	c, err = tok.Client(reftoken.Config{Authority: evil.URL, Transport: newRecorder(t)})
	require.NoError(t, err)
	resp, err := c.Get(evil.URL + "/api/" + hexToken + "?q=" + hexToken)
	require.NoError(t, err)
	resp.Body.Close()
	rerr := reftoken.CheckResponse(resp)
	require.ErrorIs(t, rerr, reftoken.ErrTokenRejected)
	errs = append(errs, rerr)

	for i, err := range errs {
		for _, out := range []string{err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err)} {
			assertNoSecret(t, fmt.Sprintf("error %d (%T)", i, err), out, hexToken)
		}
		var pe *reftoken.ParseError
		var le *reftoken.LoadError
		var ae *auth.Error
		var ce *auth.ConfigError
		assert.True(t, errors.As(err, &pe) || errors.As(err, &le) || errors.As(err, &ae) || errors.As(err, &ce),
			"untyped error %v", err)
		b, _ := json.Marshal(err)
		assertNoSecret(t, "JSON of error", string(b), hexToken)
	}
}

// fakeT captures testify's failure message.
type fakeT struct{ msg string }

func (f *fakeT) Errorf(format string, args ...any) { f.msg += fmt.Sprintf(format, args...) }
