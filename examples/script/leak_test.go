package main

import (
	"testing"

	"github.com/erpnetgo/auth/internal/testutil"
)

func TestMain(m *testing.M) {
	if testutil.MainOrTests(main) {
		return
	}
	testutil.VerifyNoLeaks(m)
}
