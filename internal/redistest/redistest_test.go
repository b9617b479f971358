package redistest

import (
	"testing"
)

func TestStartDoRestartKill(t *testing.T) {
	s := Start(t, Persistent())
	if _, err := s.Do("SET", "k", "v\r\nwith binary \x00 bytes"); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Do("GET", "k"); err != nil || got != "v\r\nwith binary \x00 bytes" {
		t.Fatalf("GET = %q, %v", got, err)
	}
	if got, _ := s.Do("GET", "missing"); got != "(nil)" {
		t.Fatalf("GET missing = %q", got)
	}
	if _, err := s.Do("NOSUCHCOMMAND"); err == nil {
		t.Fatal("error reply not reported")
	}
	port := s.Port()
	s.Stop()
	if s.Running() {
		t.Fatal("running after Stop")
	}
	if _, err := s.Do("PING"); err == nil {
		t.Fatal("PING answered while stopped")
	}
	s.Restart()
	if s.Port() != port {
		t.Fatal("port changed on restart")
	}
	if got, _ := s.Do("GET", "k"); got != "v\r\nwith binary \x00 bytes" {
		t.Fatalf("data lost across restart with persistence: %q", got)
	}
	s.Kill()
	s.Restart()
	if got, _ := s.Do("GET", "k"); got != "v\r\nwith binary \x00 bytes" {
		t.Fatalf("data lost across a crash with appendfsync always: %q", got)
	}
	s.Stop()
	s.Stop() // idempotent
}
