//go:build !unix

package main

import "os"

// figuresSignal: no such signal here; the figures are logged at shutdown.
func figuresSignal() (<-chan os.Signal, func()) { return nil, func() {} }
