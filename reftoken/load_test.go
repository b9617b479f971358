package reftoken_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/erpnetgo/auth"
	"github.com/erpnetgo/auth/reftoken"
)

func TestFromEnv(t *testing.T) {
	t.Setenv("REFTOKEN_TEST_OK", " "+hexToken+"\n")
	tok, err := reftoken.FromEnv("REFTOKEN_TEST_OK")
	require.NoError(t, err)
	assert.Equal(t, hexToken, tok.RevealSecret())

	_, err = reftoken.FromEnv("REFTOKEN_TEST_SURELY_UNSET")
	require.ErrorIs(t, err, reftoken.ErrNoToken)
	assert.ErrorIs(t, err, auth.ErrMisconfigured)
	assert.EqualError(t, err, `reftoken: environment variable "REFTOKEN_TEST_SURELY_UNSET" is not set`)

	t.Setenv("REFTOKEN_TEST_EMPTY", "")
	_, err = reftoken.FromEnv("REFTOKEN_TEST_EMPTY")
	require.ErrorIs(t, err, reftoken.ErrNoToken)
	assert.EqualError(t, err, `reftoken: environment variable "REFTOKEN_TEST_EMPTY" is set but empty`)

	t.Setenv("REFTOKEN_TEST_BLANK", " \n")
	_, err = reftoken.FromEnv("REFTOKEN_TEST_BLANK")
	require.ErrorIs(t, err, reftoken.ErrMalformed)

	t.Setenv("REFTOKEN_TEST_BAD", "ENRT_"+strings.TrimPrefix(hexToken, "enrt_"))
	_, err = reftoken.FromEnv("REFTOKEN_TEST_BAD")
	var pe *reftoken.ParseError
	require.ErrorAs(t, err, &pe)
	assert.Equal(t, `environment variable "REFTOKEN_TEST_BAD"`, pe.Source)
	assert.EqualError(t, err, `reftoken: malformed reference token in environment variable "REFTOKEN_TEST_BAD": prefix must be lower-case "enrt_"`)
}

func TestFromFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
		require.NoError(t, os.Chmod(p, mode)) // not subject to umask
		return p
	}

	for _, mode := range []os.FileMode{0o600, 0o400} {
		p := write("ok", hexToken+"\n", mode)
		tok, err := reftoken.FromFile(p)
		require.NoError(t, err, "mode %o", mode)
		assert.Equal(t, hexToken, tok.RevealSecret())
		require.NoError(t, os.Remove(p))
	}

	t.Run("missing", func(t *testing.T) {
		p := filepath.Join(dir, "nope")
		_, err := reftoken.FromFile(p)
		require.ErrorIs(t, err, reftoken.ErrNoToken)
		assert.ErrorIs(t, err, fs.ErrNotExist)
		assert.EqualError(t, err, `reftoken: file "`+p+`" does not exist`)
	})

	t.Run("malformed", func(t *testing.T) {
		p := write("bad", "enrt_123\n", 0o600)
		_, err := reftoken.FromFile(p)
		var pe *reftoken.ParseError
		require.ErrorAs(t, err, &pe)
		assert.Equal(t, `file "`+p+`"`, pe.Source)
	})

	t.Run("empty", func(t *testing.T) {
		_, err := reftoken.FromFile(write("empty", "", 0o600))
		assert.ErrorIs(t, err, reftoken.ErrNoToken)
	})

	t.Run("too large", func(t *testing.T) {
		_, err := reftoken.FromFile(write("large", strings.Repeat("A", 5000), 0o600))
		assert.ErrorContains(t, err, "larger than 4096 bytes")
	})

	t.Run("directory", func(t *testing.T) {
		_, err := reftoken.FromFile(dir)
		assert.ErrorContains(t, err, "is not a regular file")
	})

	if runtime.GOOS == "windows" {
		return
	}
	t.Run("fifo", func(t *testing.T) {
		p := filepath.Join(dir, "fifo")
		require.NoError(t, syscall.Mkfifo(p, 0o600))
		_, err := reftoken.FromFile(p) // must not block
		assert.ErrorContains(t, err, "is not a regular file")
	})

	for _, c := range []struct {
		mode os.FileMode
		what string
	}{
		{0o644, "readable"}, {0o640, "readable"}, {0o604, "readable"},
		{0o620, "writable"}, {0o602, "writable"}, {0o666, "readable and writable"},
		{0o660, "readable and writable"}, {0o610, "executable"},
	} {
		t.Run("mode "+c.mode.String(), func(t *testing.T) {
			p := write("loose", hexToken+"\n", c.mode)
			_, err := reftoken.FromFile(p)
			require.ErrorIs(t, err, reftoken.ErrInsecureFile)
			var le *reftoken.LoadError
			require.ErrorAs(t, err, &le)
			msg := err.Error()
			assert.Contains(t, msg, p)
			assert.Contains(t, msg, "mode 0"+octal(c.mode))
			assert.Contains(t, msg, c.what+" by group or others")
			assert.Contains(t, msg, "chmod 600 \""+p+"\"")
			assertNoSecret(t, "insecure file error", msg, hexToken)
		})
	}

	t.Run("symlink to a private file", func(t *testing.T) {
		target := write("target", hexToken, 0o600)
		link := filepath.Join(dir, "link")
		require.NoError(t, os.Symlink(target, link))
		tok, err := reftoken.FromFile(link)
		require.NoError(t, err)
		assert.Equal(t, hexToken, tok.RevealSecret())
	})
}

func octal(m os.FileMode) string {
	const digits = "01234567"
	p := uint32(m.Perm())
	return string([]byte{digits[p>>6&7], digits[p>>3&7], digits[p&7]})
}
