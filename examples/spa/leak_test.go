package main

import (
	"testing"

	"github.com/erpnetgo/auth/internal/testutil"
)

func TestMain(m *testing.M) { testutil.VerifyNoLeaks(m) }
