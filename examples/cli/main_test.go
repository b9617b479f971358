package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/erpnetgo/auth/erpnettest"
	"github.com/erpnetgo/auth/internal/erpnetctl"
	"github.com/erpnetgo/auth/internal/testutil"
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

// urlWatcher is the terminal: it hands the sign-in address to the test as
// soon as the CLI prints it.
type urlWatcher struct {
	testutil.SyncBuffer
	found chan string
	once  sync.Once
}

var authorizeURL = regexp.MustCompile(`http://\S+/connect/authorize\?\S+`)

func (w *urlWatcher) Write(p []byte) (int, error) {
	n, err := w.SyncBuffer.Write(p)
	if m := authorizeURL.FindString(w.String()); m != "" {
		w.once.Do(func() { w.found <- m })
	}
	return n, err
}

// TestCLIPastesTheAddressWithoutABrowser: with ERPNET_NO_BROWSER=1 the CLI
// prints the sign-in address; a browser elsewhere signs in and the user
// pastes the address it ended on (the unreachable 127.0.0.1 page).
func TestCLIPastesTheAddressWithoutABrowser(t *testing.T) {
	idp := erpnettest.NewServer(t)
	erpnetctl.Of(idp).AutoSignIn(erpnettest.Demo.Alice) // the user signs in on the other machine
	t.Setenv("ERPNET_AUTHORITY", idp.URL())
	t.Setenv("ERPNET_CLIENT_ID", erpnettest.Demo.CLIID)
	t.Setenv("ERPNET_DOMAIN_API", "")
	t.Setenv("ERPNET_NO_BROWSER", "1")
	stdin, typist := io.Pipe()
	defer typist.Close()
	out := &urlWatcher{found: make(chan string, 1)}
	go func() {
		// The browser on the laptop: it follows the identity server's
		// redirects and stops at the address of the app's listener.
		hc := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		target := <-out.found
		for range 10 {
			resp, err := hc.Get(target)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			loc, _ := resp.Request.URL.Parse(resp.Header.Get("Location"))
			if loc.Query().Get("code") != "" {
				io.WriteString(typist, loc.String()+"\n")
				return
			}
			target = loc.String()
		}
	}()
	err := run(context.Background(), out, slog.New(slog.DiscardHandler), options{timeout: 30 * time.Second, in: stdin})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Could not open a browser", "paste it here", "Signed in as alice (Alice Anderson) through the browser", "Domain API caller: user:alice"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("output lacks %q:\n%s", want, out.String())
		}
	}
}
