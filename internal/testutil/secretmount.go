package testutil

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// SecretMount is a directory laid out as the kubelet mounts a Kubernetes
// Secret: the file is a symlink through ..data to a timestamped directory,
// and an update swaps ..data atomically to a new directory.
type SecretMount struct {
	tb  testing.TB
	dir string
	gen int
}

// NewSecretMount mounts secret in a temporary directory.
func NewSecretMount(tb testing.TB, secret string) *SecretMount {
	tb.Helper()
	m := &SecretMount{tb: tb, dir: tb.TempDir()}
	m.Write(secret)
	if err := os.Symlink(filepath.Join("..data", "client-secret"), m.Path()); err != nil {
		tb.Fatal(err)
	}
	return m
}

// Path is the path an app reads the secret from.
func (m *SecretMount) Path() string { return filepath.Join(m.dir, "client-secret") }

// Write puts secret, with the trailing newline editors add, in a new
// timestamped directory (mode 0400, as with defaultMode: 0400) and swaps
// ..data to it.
func (m *SecretMount) Write(secret string) {
	m.tb.Helper()
	m.gen++
	ts := fmt.Sprintf("..2026_01_01_00_00_%02d.%d", m.gen, m.gen)
	if err := os.Mkdir(filepath.Join(m.dir, ts), 0o755); err != nil {
		m.tb.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(m.dir, ts, "client-secret"), []byte(secret+"\n"), 0o400); err != nil {
		m.tb.Fatal(err)
	}
	tmp := filepath.Join(m.dir, "..data_tmp")
	if err := os.Symlink(ts, tmp); err != nil {
		m.tb.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(m.dir, "..data")); err != nil {
		m.tb.Fatal(err)
	}
}
