package erpnettest

import (
	"net/http"
	"testing"
)

// TestFavicon: the browser's favicon request gets no error (issue 23: a 404
// on every sign-in form left an error in the browser console).
func TestFavicon(t *testing.T) {
	s := NewServer(t)
	resp, err := http.Get(s.URL() + "/favicon.ico")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("GET /favicon.ico: %s", resp.Status)
	}
}
