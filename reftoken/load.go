package reftoken

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"runtime"
	"strconv"

	"github.com/erpnetgo/auth"
)

// maxFileSize is the largest token file [FromFile] reads: a token is under 100 bytes, so a larger
// file is not a token file.
const maxFileSize = 4096

// LoadError reports a token that could not be loaded from an environment variable or a file.
// Its message names the source and says how to fix it; it never contains file contents.
type LoadError struct {
	// Source is `environment variable "NAME"` or `file "/path"`.
	Source string
	// Reason says what is wrong, e.g. "is not set".
	Reason string
	// Err is [ErrNoToken], [ErrInsecureFile] or the underlying I/O error.
	Err error
}

// Error implements error.
func (e *LoadError) Error() string {
	return "reftoken: " + e.Source + " " + e.Reason
}

// Unwrap returns the cause and [auth.ErrMisconfigured], so that errors.Is and errors.As see
// both: every LoadError matches [auth.ErrMisconfigured].
func (e *LoadError) Unwrap() []error {
	if e.Err == nil {
		return []error{auth.ErrMisconfigured}
	}
	return []error{e.Err, auth.ErrMisconfigured}
}

// FromEnv parses the reference token in the environment variable name (see [Parse]). An unset
// or empty variable gives a [*LoadError] matching [ErrNoToken]; a malformed value gives a
// [*ParseError] naming the variable.
func FromEnv(name string) (Token, error) {
	src := "environment variable " + strconv.Quote(name)
	v, ok := os.LookupEnv(name)
	switch {
	case !ok:
		return Token{}, &LoadError{Source: src, Reason: "is not set", Err: ErrNoToken}
	case v == "":
		return Token{}, &LoadError{Source: src, Reason: "is set but empty", Err: ErrNoToken}
	}
	return parseFrom(v, src)
}

// FromFile parses the reference token stored in the file at path (see [Parse]); a trailing
// newline is fine. The file must be a regular file of at most 4096 bytes that neither group nor
// others may read or write (mode 0600 or 0400); otherwise FromFile refuses it with a
// [*LoadError] matching [ErrInsecureFile] that names the path, its mode and the fix. Windows has
// no such mode bits, so the check is skipped there. A missing file gives a *LoadError matching
// both [ErrNoToken] and fs.ErrNotExist.
func FromFile(path string) (Token, error) {
	src := "file " + strconv.Quote(path)
	// Stat before opening so that a FIFO or device is refused without blocking on open.
	fi, err := os.Stat(path)
	if err != nil {
		return Token{}, fileError(src, err)
	}
	if err := checkFile(src, path, fi); err != nil {
		return Token{}, err
	}
	f, err := os.Open(path)
	if err != nil {
		return Token{}, fileError(src, err)
	}
	defer f.Close()
	// Check again on the open file: the path may have been replaced in between.
	if fi, err = f.Stat(); err != nil {
		return Token{}, fileError(src, err)
	}
	if err := checkFile(src, path, fi); err != nil {
		return Token{}, err
	}
	b, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return Token{}, fileError(src, err)
	}
	if len(b) > maxFileSize {
		return Token{}, &LoadError{Source: src, Reason: fmt.Sprintf("is larger than %d bytes: it is not a token file", maxFileSize)}
	}
	if len(b) == 0 {
		return Token{}, &LoadError{Source: src, Reason: "is empty", Err: ErrNoToken}
	}
	return parseFrom(string(b), src)
}

func parseFrom(v, src string) (Token, error) {
	t, err := Parse(v)
	if err != nil {
		var pe *ParseError
		if errors.As(err, &pe) {
			pe.Source = src
		}
		return Token{}, err
	}
	return t, nil
}

func checkFile(src, path string, fi fs.FileInfo) error {
	if !fi.Mode().IsRegular() {
		return &LoadError{Source: src, Reason: "is not a regular file"}
	}
	perm := fi.Mode().Perm()
	if runtime.GOOS == "windows" || perm&0o077 == 0 {
		return nil
	}
	var who string
	switch {
	case perm&0o066 == 0:
		who = "executable" // only x bits for group/others: harmless but still not 0600
	case perm&0o044 != 0 && perm&0o022 != 0:
		who = "readable and writable"
	case perm&0o044 != 0:
		who = "readable"
	default:
		who = "writable"
	}
	return &LoadError{
		Source: src,
		Reason: fmt.Sprintf("has mode %04o, %s by group or others: a reference token is a password; "+
			"restrict it with: chmod 600 %s", perm, who, strconv.Quote(path)),
		Err: ErrInsecureFile,
	}
}

func fileError(src string, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return &LoadError{Source: src, Reason: "does not exist", Err: errors.Join(ErrNoToken, fs.ErrNotExist)}
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		// The path is already in Source; keep only the operation and the cause.
		return &LoadError{Source: src, Reason: "cannot be read: " + pe.Op + ": " + pe.Err.Error(), Err: err}
	}
	return &LoadError{Source: src, Reason: "cannot be read: " + err.Error(), Err: err}
}
