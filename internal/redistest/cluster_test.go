package redistest

import (
	"strings"
	"testing"
)

func TestClusterTakeover(t *testing.T) {
	c := StartCluster(t, 3)
	if n := len(c.Addrs()); n != 6 {
		t.Fatalf("%d nodes, want 6", n)
	}
	m := c.MasterOf("foo")
	if _, err := m.Do("SET", "foo", "bar"); err != nil {
		t.Fatal(err)
	}
	r := c.ReplicaOf(m)
	c.Synced()
	m.Kill()
	c.Takeover(r)
	if got := c.MasterOf("foo"); got != r {
		t.Fatalf("after the takeover %d serves foo, want %d", got.Port(), r.Port())
	}
	if got, err := r.Do("GET", "foo"); err != nil || got != "bar" {
		t.Fatalf("GET foo on the promoted replica = %q, %v", got, err)
	}
	// A hung master: the others see it as unreachable, its replica takes over.
	m2 := c.MasterOf("bar")
	r2 := c.ReplicaOf(m2)
	if err := m2.Hang(30e9); err != nil {
		t.Fatal(err)
	}
	c.Takeover(r2)
	if got := c.MasterOf("bar"); got != r2 {
		t.Fatal("the hung master's replica did not take over")
	}
	if _, err := m2.DoWithin(300e6, "PING"); err == nil || !strings.Contains(err.Error(), "timeout") {
		t.Fatalf("the hung master answered: %v", err)
	}
}

func TestSentinelFailover(t *testing.T) {
	s := StartSentinel(t, 1, 1)
	m := s.Master()
	if _, err := m.Do("SET", "k", "v"); err != nil {
		t.Fatal(err)
	}
	s.Synced()
	m.Kill()
	n := s.WaitFailover(m)
	if n == m {
		t.Fatal("no new master")
	}
	if got, err := n.Do("GET", "k"); err != nil || got != "v" {
		t.Fatalf("GET k on the new master = %q, %v", got, err)
	}
}

func TestPauseResumeHang(t *testing.T) {
	s := Start(t)
	s.Pause()
	if _, err := s.DoWithin(300e6, "PING"); err == nil {
		t.Fatal("a paused server answered")
	}
	s.Resume()
	if _, err := s.Do("PING"); err != nil {
		t.Fatal(err)
	}
	if err := s.Hang(500e6); err != nil {
		t.Fatal(err)
	}
	if err := until(5e9, func() error { _, err := s.DoWithin(300e6, "PING"); return err }); err != nil {
		t.Fatalf("still hung after DEBUG SLEEP ended: %v", err)
	}
	s.Pause()
	s.Stop() // a paused server stops too
}
