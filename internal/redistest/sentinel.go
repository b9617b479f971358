package redistest

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"
)

// MasterName is the name the Sentinels of StartSentinel know the master by.
const MasterName = "mymaster"

// Sentinels is a master with replicas watched by Sentinel (quorum 1),
// which fails the master over once it has not answered for half a second.
type Sentinels struct {
	tb        testing.TB
	nodes     []*Server // the master as started, then the replicas
	sentinels []*Server
}

// StartSentinel runs a master, replicas replicas of it and sentinels
// Sentinels, and returns once the Sentinels know the master and every
// replica. It skips tb when redis-server is not installed (fails it when
// CI is set); everything is killed at tb's cleanup.
func StartSentinel(tb testing.TB, replicas, sentinels int) *Sentinels {
	tb.Helper()
	Binary(tb)
	s := &Sentinels{tb: tb}
	start := func(opts ...Option) *Server {
		srv, err := Run(opts...)
		if err != nil {
			tb.Fatalf("redistest: %v", err)
		}
		srv.tb = tb
		tb.Cleanup(srv.Close)
		return srv
	}
	master := start()
	s.nodes = append(s.nodes, master)
	for range replicas {
		r := start()
		if _, err := r.Do("REPLICAOF", "127.0.0.1", strconv.Itoa(master.Port())); err != nil {
			tb.Fatalf("redistest: REPLICAOF: %v", err)
		}
		s.nodes = append(s.nodes, r)
	}
	if err := until(10*time.Second, func() error {
		info, err := master.Do("INFO", "replication")
		if err != nil {
			return err
		}
		if n := strings.Count(info, ",state=online,"); n != replicas {
			return fmt.Errorf("%d of %d replicas online", n, replicas)
		}
		return nil
	}); err != nil {
		tb.Fatalf("redistest: replicas: %v", err)
	}
	conf := fmt.Sprintf("sentinel monitor %s 127.0.0.1 %d 1\n"+
		"sentinel down-after-milliseconds %[1]s 500\n"+
		"sentinel failover-timeout %[1]s 10000\n", MasterName, master.Port())
	for range sentinels {
		s.sentinels = append(s.sentinels, start(func(o *options) { o.sentinel = conf }))
	}
	if err := until(10*time.Second, func() error {
		for _, sen := range s.sentinels {
			v, err := sen.Do("SENTINEL", "REPLICAS", MasterName)
			if err != nil {
				return err
			}
			if n := strings.Count(v, "flags\nslave\n"); n != replicas {
				return fmt.Errorf("a Sentinel knows %d of %d replicas", n, replicas)
			}
		}
		return nil
	}); err != nil {
		tb.Fatalf("redistest: Sentinel: %v", err)
	}
	return s
}

// Addrs returns the Sentinels' addresses.
func (s *Sentinels) Addrs() []string {
	addrs := make([]string, len(s.sentinels))
	for i, sen := range s.sentinels {
		addrs[i] = sen.Addr()
	}
	return addrs
}

// Master returns the node the first Sentinel names as the master.
func (s *Sentinels) Master() *Server {
	s.tb.Helper()
	v, err := s.sentinels[0].Do("SENTINEL", "GET-MASTER-ADDR-BY-NAME", MasterName)
	if err != nil {
		s.tb.Fatalf("redistest: SENTINEL GET-MASTER-ADDR-BY-NAME: %v", err)
	}
	_, port, _ := strings.Cut(v, "\n")
	for _, n := range s.nodes {
		if strconv.Itoa(n.Port()) == port {
			return n
		}
	}
	s.tb.Fatalf("redistest: Sentinel names an unknown master %q", v)
	return nil
}

// Synced waits until every replica has processed every write the master
// had accepted (see Server.Synced).
func (s *Sentinels) Synced() {
	s.tb.Helper()
	m := s.Master()
	for _, n := range s.nodes {
		if n == m || !n.Running() {
			continue
		}
		if err := m.Synced(n); err != nil {
			s.tb.Fatalf("redistest: %v", err)
		}
	}
}

// WaitFailover waits until every Sentinel names a master other than old
// and that master says it is one, and returns it.
func (s *Sentinels) WaitFailover(old *Server) *Server {
	s.tb.Helper()
	var m *Server
	if err := until(30*time.Second, func() error {
		for _, sen := range s.sentinels {
			v, err := sen.Do("SENTINEL", "GET-MASTER-ADDR-BY-NAME", MasterName)
			if err != nil {
				return err
			}
			if strings.HasSuffix(v, "\n"+strconv.Itoa(old.Port())) {
				return fmt.Errorf("a Sentinel still names %d", old.Port())
			}
		}
		m = s.Master()
		role, err := m.DoWithin(time.Second, "ROLE")
		if err != nil {
			return err
		}
		if !strings.HasPrefix(role, "master") {
			return fmt.Errorf("the new master %d is still a %s", m.Port(), role)
		}
		return nil
	}); err != nil {
		s.tb.Fatalf("redistest: no failover: %v", err)
	}
	return m
}
