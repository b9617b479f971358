package authcode

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"time"

	"github.com/erpnetgo/auth"
)

// FileStore is a Store that keeps sessions in one file, for command-line
// tools: with it, LoopbackSignIn reuses the session of the previous run
// (refreshing it when needed) instead of opening the browser. The file
// holds refresh tokens, so it is written with mode 0600, atomically (a
// temporary file in the same folder, synced, then renamed), and a file
// that group or others can read or write is refused with an error
// matching [auth.ErrMisconfigured]. Several goroutines may share a
// FileStore; several processes should not share one file.
//
// The path is checked when a session is first looked up, which
// LoopbackSignIn does before it opens the browser: a missing folder is
// created (mode 0700, parents included), and a folder that cannot be
// created or written gives an error matching auth.ErrMisconfigured that
// names the path, so nobody signs in for nothing.
//
// The zero FileStore is not usable: set Path.
type FileStore struct {
	// Path is the file, e.g. filepath.Join(os.UserConfigDir(), "myapp",
	// "session.json"). A missing folder is created with mode 0700.
	Path string

	mu sync.Mutex
}

type fileItem struct {
	V   []byte    `json:"v"`
	Exp time.Time `json:"exp,omitzero"`
}

// Load implements Store.
func (s *FileStore) Load(ctx context.Context, key string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	m, err := s.read()
	if err != nil {
		return nil, err
	}
	it, ok := m[key]
	if !ok || (!it.Exp.IsZero() && !time.Now().Before(it.Exp)) {
		return nil, ErrSessionNotFound
	}
	return it.V, nil
}

// Save implements Store.
func (s *FileStore) Save(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	return s.update(ctx, func(m map[string]fileItem) {
		it := fileItem{V: value}
		if ttl > 0 {
			it.Exp = time.Now().Add(ttl)
		}
		m[key] = it
	})
}

// Add implements Store.
func (s *FileStore) Add(ctx context.Context, key string, value []byte, ttl time.Duration) (bool, error) {
	added := false
	err := s.update(ctx, func(m map[string]fileItem) {
		if it, ok := m[key]; ok && (it.Exp.IsZero() || time.Now().Before(it.Exp)) {
			return
		}
		added = true
		it := fileItem{V: value}
		if ttl > 0 {
			it.Exp = time.Now().Add(ttl)
		}
		m[key] = it
	})
	return added && err == nil, err
}

// Delete implements Store.
func (s *FileStore) Delete(ctx context.Context, key string) error {
	return s.update(ctx, func(m map[string]fileItem) { delete(m, key) })
}

func (s *FileStore) update(ctx context.Context, edit func(map[string]fileItem)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	m, err := s.read()
	if err != nil {
		return err
	}
	edit(m)
	now := time.Now()
	for k, it := range m {
		if !it.Exp.IsZero() && !now.Before(it.Exp) {
			delete(m, k)
		}
	}
	return s.write(m)
}

// fail reports a failed file operation: a path that cannot be used
// (permissions, a missing or wrong kind of folder, a read-only file
// system) is misconfigured; anything else (a full disk, an I/O error) may
// pass.
func (s *FileStore) fail(what string, err error) error {
	kind := auth.ErrTemporary
	if errors.Is(err, fs.ErrPermission) || errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) || errors.Is(err, syscall.EROFS) {
		kind = auth.ErrMisconfigured
	}
	return &auth.Error{Op: "file store", Kind: kind, Err: fmt.Errorf("%s %s: %w", what, s.Path, err)}
}

// prepare makes sure a session file can be written at Path: its folder
// exists (created with mode 0700 if missing) and takes a new file.
func (s *FileStore) prepare() error {
	dir := filepath.Dir(s.Path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return s.fail("creating the folder of", err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(s.Path)+".tmp-*")
	if err != nil {
		return s.fail("writing in the folder of", err)
	}
	f.Close()
	os.Remove(f.Name())
	return nil
}

// read returns the file's items; an absent file holds none.
func (s *FileStore) read() (map[string]fileItem, error) {
	if s.Path == "" {
		return nil, &auth.ConfigError{Field: "FileStore.Path", Reason: "is required"}
	}
	f, err := os.Open(s.Path)
	if errors.Is(err, os.ErrNotExist) {
		// No session yet: make sure one can be saved, before anyone signs
		// in for it.
		if err := s.prepare(); err != nil {
			return nil, err
		}
		return map[string]fileItem{}, nil
	}
	if err != nil {
		return nil, s.fail("reading", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, s.fail("reading", err)
	}
	if !st.Mode().IsRegular() {
		return nil, &auth.Error{Op: "file store", Kind: auth.ErrMisconfigured, Err: fmt.Errorf("%s is not a regular file", s.Path)}
	}
	if runtime.GOOS != "windows" && st.Mode().Perm()&0o077 != 0 {
		return nil, &auth.Error{Op: "file store", Kind: auth.ErrMisconfigured,
			Err: fmt.Errorf("%s has mode %v: group or others can access it (want 0600); it is not read", s.Path, st.Mode().Perm())}
	}
	m := map[string]fileItem{}
	if err := json.NewDecoder(f).Decode(&m); err != nil {
		// An unreadable file holds no usable session: sign in again.
		return map[string]fileItem{}, nil
	}
	return m, nil
}

func (s *FileStore) write(m map[string]fileItem) error {
	b, err := json.Marshal(m)
	if err != nil {
		return s.fail("writing", err)
	}
	if err := os.MkdirAll(filepath.Dir(s.Path), 0o700); err != nil {
		return s.fail("creating the folder of", err)
	}
	f, err := os.CreateTemp(filepath.Dir(s.Path), "."+filepath.Base(s.Path)+".tmp-*")
	if err != nil {
		return s.fail("writing", err)
	}
	tmp := f.Name()
	err = f.Chmod(0o600)
	if err == nil {
		_, err = f.Write(b)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, s.Path)
	}
	if err != nil {
		os.Remove(tmp)
		return s.fail("writing", err)
	}
	return nil
}
