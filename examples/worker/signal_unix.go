//go:build unix

package main

import (
	"os"
	"os/signal"
	"syscall"
)

// figuresSignal delivers SIGUSR1, on which the worker logs its figures
// (kill -USR1 <pid>).
func figuresSignal() (<-chan os.Signal, func()) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGUSR1)
	return ch, func() { signal.Stop(ch) }
}
