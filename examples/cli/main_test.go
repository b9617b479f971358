package main

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestCLIAutoSignIn(t *testing.T) {
	t.Setenv("ERPNET_AUTHORITY", "")
	file := filepath.Join(t.TempDir(), "token.json")
	var out bytes.Buffer
	err := run(context.Background(), &out, slog.New(slog.DiscardHandler), options{auto: true, sessionFile: file, timeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Signed in as alice (Alice Anderson) without a browser (an HTTP client filled in the sign-in form)", "Domain API caller: user:alice", "C-0001"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("output lacks %q:\n%s", want, out.String())
		}
	}
	// No browser is involved, so no word about a browser window (issue 23).
	if strings.Contains(out.String(), "browser window") {
		t.Fatalf("-auto talks of a browser window:\n%s", out.String())
	}
	st, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("token file mode %v", st.Mode().Perm())
	}
}
