package tokenep

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/erpnetgo/auth"
)

// maxSecretFile is the largest client secret file read: a secret is a few
// dozen bytes; anything bigger is the wrong file.
const maxSecretFile = 64 << 10

// SecretFile is a client secret kept in a file (Config.ClientSecretFile of
// clientcreds, authcode and hybrid), for rotation without a restart.
//
// The file is read when the first secret is needed and read again only when
// the identity server refuses the secret (invalid_client): ERP.net holds one
// secret per Trusted Application and the old one fails the moment an admin
// stores a new one, so the secret the server accepts is kept until it
// stops accepting it, whatever order the admin and the file update come
// in. Every read opens the path afresh, so the atomic symlink swap
// Kubernetes uses for mounted Secrets (..data pointing at a new directory)
// is seen like any other change. A trailing newline is trimmed; a file
// readable by anyone but its owner (mode wider than 0600) gets a warning.
//
// The zero value is not usable; make one with NewSecretFile. It is safe for
// concurrent use.
type SecretFile struct {
	path string
	log  *slog.Logger

	mu  sync.Mutex             // serializes reads of the file
	cur atomic.Pointer[string] // the last secret read; nil before the first read
	// warned is the mode last warned about, plus one (0: none yet), so an
	// unchanged file does not repeat the warning at every read.
	warned atomic.Uint32
}

// NewSecretFile returns the SecretFile for path, or nil when path is empty
// (the secret, if any, is fixed). log receives the warnings and the notice
// of a changed secret, never its value; nil discards them.
func NewSecretFile(path string, log *slog.Logger) *SecretFile {
	if path == "" {
		return nil
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &SecretFile{path: path, log: log}
}

// Path is the file's path, for messages.
func (f *SecretFile) Path() string { return f.path }

// Get returns the secret, reading the file the first time.
func (f *SecretFile) Get() (string, error) {
	if s := f.cur.Load(); s != nil {
		return *s, nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if s := f.cur.Load(); s != nil {
		return *s, nil
	}
	s, err := f.read()
	if err != nil {
		return "", &auth.Error{Op: "client secret", Kind: auth.ErrMisconfigured, Err: err}
	}
	f.cur.Store(&s)
	return s, nil
}

// Reload is called after the identity server refused the secret refused.
// It returns the secret to retry with and true when the file now holds
// another one; false when it holds the same (or cannot be read: then the
// last good secret stays). Callers refused with the same secret share one
// read of the file: those that arrive after it find the new secret at once.
func (f *SecretFile) Reload(refused string) (string, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if s := f.cur.Load(); s != nil && *s != refused {
		return *s, true // another caller read the new secret already
	}
	s, err := f.read()
	if err != nil {
		f.log.Warn("erpnet: the client secret was refused and ClientSecretFile cannot be read again", "path", f.path, "error", err.Error())
		return refused, false
	}
	if s == refused {
		return refused, false
	}
	f.cur.Store(&s)
	f.log.Info("erpnet: the identity server refused the client secret; ClientSecretFile holds a new one: retrying with it", "path", f.path)
	return s, true
}

// read reads and checks the file. Its errors name the path and the fault,
// never the content.
func (f *SecretFile) read() (string, error) {
	fh, err := os.Open(f.path)
	if err != nil {
		return "", fmt.Errorf("cannot read ClientSecretFile: %w", err)
	}
	defer fh.Close()
	if fi, err := fh.Stat(); err == nil {
		f.checkMode(fi.Mode())
	}
	b, err := io.ReadAll(io.LimitReader(fh, maxSecretFile+1))
	switch {
	case err != nil:
		return "", fmt.Errorf("cannot read ClientSecretFile %s: %w", f.path, err)
	case len(b) > maxSecretFile:
		return "", fmt.Errorf("ClientSecretFile %s is larger than %d bytes: not a client secret", f.path, maxSecretFile)
	}
	s := strings.TrimRight(string(b), "\r\n")
	switch {
	case s == "":
		return "", fmt.Errorf("ClientSecretFile %s is empty", f.path)
	case strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		return "", fmt.Errorf("ClientSecretFile %s holds control characters or several lines: it must hold the secret alone", f.path)
	}
	return s, nil
}

// checkMode warns, once per mode, when the file is readable or writable by
// anyone but its owner.
func (f *SecretFile) checkMode(m os.FileMode) {
	perm := m.Perm()
	if runtime.GOOS == "windows" || perm&^0o600 == 0 {
		return
	}
	if f.warned.Swap(uint32(perm)+1) == uint32(perm)+1 {
		return
	}
	f.log.Warn(fmt.Sprintf("erpnet: ClientSecretFile has mode %04o, wider than 0600: restrict it to its owner (chmod 600; on Kubernetes, defaultMode: 0400)", perm),
		"path", f.path)
}

// errSecretUnchanged explains an invalid_client answer when the secret
// file holds the refused secret.
var errSecretUnchanged = errors.New("the identity server refused the client secret and ClientSecretFile holds no other: store the Trusted Application's current secret in it")
