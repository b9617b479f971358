package auth_test

import (
	"testing"

	"github.com/erpnetgo/auth/authcode"
	"github.com/erpnetgo/auth/authcode/redisstore"
	"github.com/erpnetgo/auth/clientcreds"
	"github.com/erpnetgo/auth/erpnettest"
	"github.com/erpnetgo/auth/hybrid"
)

// TestCloseOnNil: Close on a nil client of every package does nothing, so a
// "defer x.Close()" written before the error check turns a configuration
// error into that error, not a nil-pointer crash (issue 23: the README's
// worker snippet did exactly that).
func TestCloseOnNil(t *testing.T) {
	for name, closeNil := range map[string]func() error{
		"clientcreds.Source":    func() error { var s *clientcreds.Source; return s.Close() },
		"authcode.Client":       func() error { var c *authcode.Client; return c.Close() },
		"hybrid.App":            func() error { var a *hybrid.App; return a.Close() },
		"redisstore.Store":      func() error { var s *redisstore.Store; return s.Close() },
		"erpnettest.Server":     func() error { var s *erpnettest.Server; return s.Close() },
		"clientcreds.New error": func() error { src, _ := clientcreds.New(clientcreds.Config{}); return src.Close() },
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if p := recover(); p != nil {
					t.Fatalf("Close on nil panics: %v", p)
				}
			}()
			if err := closeNil(); err != nil {
				t.Fatalf("Close on nil = %v", err)
			}
		})
	}
}
