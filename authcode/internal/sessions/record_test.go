package sessions

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

// A record printed or logged, as a value or a pointer, in any verb or
// slog handler, shows no token.
func TestRecordPrintsNoToken(t *testing.T) {
	rec := NewRecord(Record{Subject: "alice", AccessToken: "secret-access", RefreshToken: "secret-refresh", IDToken: "secret-id"})
	var b bytes.Buffer
	fmt.Fprintf(&b, "%v %+v %#v %s %v %+v %#v\n", rec, rec, rec, rec, *rec, *rec, *rec)
	log := slog.New(slog.NewJSONHandler(&b, nil))
	log.Info("x", "rec", rec, "val", *rec)
	slog.New(slog.NewTextHandler(&b, nil)).Info("x", "rec", rec, "val", *rec)
	if out := b.String(); strings.Contains(out, "secret-") || !strings.Contains(out, "alice") {
		t.Fatalf("printed a token (or not the subject):\n%s", out)
	}
}
