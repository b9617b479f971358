package authcode

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/erpnetgo/auth"
	"github.com/erpnetgo/auth/internal/erpnetctl"
)

// TestFileStorePathCheckedBeforeSignIn: a FileStore path is checked before
// the browser opens (issue 23: a missing folder failed only after the
// sign-in, as a "temporary" error). A missing folder is created with mode
// 0700; a path that cannot hold a file is a misconfiguration, reported at
// once and with one kind.
func TestFileStorePathCheckedBeforeSignIn(t *testing.T) {
	ctx := context.Background()
	t.Run("missing folders are created", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), ".config", "erpnet-cli")
		file := filepath.Join(dir, "session.json")
		e := cliEnv(t, &FileStore{Path: file})
		fb := newFakeBrowser(t)
		s, err := e.c.LoopbackSignIn(ctx, LoopbackOptions{OpenBrowser: fb.open, Output: io.Discard})
		require.NoError(t, err)
		assert.Equal(t, "alice", s.Subject)
		st, err := os.Stat(dir)
		require.NoError(t, err)
		st2, err := os.Stat(file)
		require.NoError(t, err)
		if runtime.GOOS != "windows" {
			assert.Equal(t, os.FileMode(0o700), st.Mode().Perm())
			assert.Equal(t, os.FileMode(0o600), st2.Mode().Perm())
		}
	})
	t.Run("a folder that cannot be made", func(t *testing.T) {
		blocker := filepath.Join(t.TempDir(), "not-a-folder")
		require.NoError(t, os.WriteFile(blocker, []byte("x"), 0o600))
		e := cliEnv(t, &FileStore{Path: filepath.Join(blocker, "cli", "session.json")})
		_, err := e.c.LoopbackSignIn(ctx, LoopbackOptions{OpenBrowser: neverOpen(t), Output: io.Discard})
		require.Error(t, err)
		assert.ErrorIs(t, err, auth.ErrMisconfigured)
		assert.NotErrorIs(t, err, auth.ErrTemporary, "one kind only")
		assert.Contains(t, err.Error(), blocker)
		assert.Zero(t, erpnetctl.Of(e.idp).Grants("authorization_code"))
	})
	t.Run("a read-only folder", func(t *testing.T) {
		if runtime.GOOS == "windows" || os.Geteuid() == 0 {
			t.Skip("permissions do not stop this user")
		}
		dir := filepath.Join(t.TempDir(), "ro")
		require.NoError(t, os.Mkdir(dir, 0o500))
		e := cliEnv(t, &FileStore{Path: filepath.Join(dir, "session.json")})
		_, err := e.c.LoopbackSignIn(ctx, LoopbackOptions{OpenBrowser: neverOpen(t), Output: io.Discard})
		assert.ErrorIs(t, err, auth.ErrMisconfigured)
		assert.NotErrorIs(t, err, auth.ErrTemporary)
	})
	t.Run("a file others can read", func(t *testing.T) {
		if runtime.GOOS == "windows" {
			t.Skip("no Unix modes")
		}
		file := filepath.Join(t.TempDir(), "session.json")
		require.NoError(t, os.WriteFile(file, []byte("{}"), 0o644))
		require.NoError(t, os.Chmod(file, 0o644))
		e := cliEnv(t, &FileStore{Path: file})
		_, err := e.c.LoopbackSignIn(ctx, LoopbackOptions{OpenBrowser: neverOpen(t), Output: io.Discard})
		assert.ErrorIs(t, err, auth.ErrMisconfigured)
		assert.NotErrorIs(t, err, auth.ErrTemporary, "one kind only (issue 23: it matched both)")
		assert.Equal(t, 1, strings.Count(err.Error(), "erpnet auth:"), err.Error())
	})
}
