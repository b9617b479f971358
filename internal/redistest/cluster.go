package redistest

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Cluster is a Redis Cluster of masters, each with one replica, on
// 127.0.0.1, made without redis-cli: slots assigned with ADDSLOTSRANGE,
// nodes joined with MEET, replicas attached with REPLICATE.
type Cluster struct {
	tb    testing.TB
	nodes []*Server // masters first, then their replicas in the same order
	ids   map[*Server]string
}

// NodeTimeout sets a Cluster's cluster-node-timeout (default 2s): how long
// a node must be unreachable before the cluster fails it over.
func NodeTimeout(d time.Duration) Option { return func(o *options) { o.nodeTimeout = d } }

// PartialCoverage lets a Cluster's masters keep serving their slots while
// another master's slots have no node (cluster-require-full-coverage no);
// by default every node answers CLUSTERDOWN then.
func PartialCoverage() Option { return func(o *options) { o.partial = true } }

func clusterMode() Option { return func(o *options) { o.cluster = true } }

// StartCluster runs masters masters (each owning an equal share of the
// 16384 slots) and one replica per master, and returns once every node
// sees the cluster as healthy and every replica is in sync. It skips tb
// when redis-server is not installed (fails it when CI is set); the nodes
// are killed at tb's cleanup.
func StartCluster(tb testing.TB, masters int, opts ...Option) *Cluster {
	tb.Helper()
	Binary(tb)
	c := &Cluster{tb: tb, ids: map[*Server]string{}}
	opts = append([]Option{NodeTimeout(2 * time.Second)}, opts...)
	opts = append(opts, clusterMode())
	for range 2 * masters {
		s, err := Run(opts...)
		if err != nil {
			tb.Fatalf("redistest: cluster node: %v", err)
		}
		s.tb = tb
		tb.Cleanup(s.Close)
		c.nodes = append(c.nodes, s)
	}
	if err := c.form(masters); err != nil {
		tb.Fatalf("redistest: cannot form the cluster: %v", err)
	}
	return c
}

func (c *Cluster) form(masters int) error {
	for _, n := range c.nodes {
		id, err := n.Do("CLUSTER", "MYID")
		if err != nil {
			return err
		}
		c.ids[n] = id
	}
	for i, m := range c.nodes[:masters] {
		lo, hi := i*16384/masters, (i+1)*16384/masters-1
		if _, err := m.Do("CLUSTER", "ADDSLOTSRANGE", strconv.Itoa(lo), strconv.Itoa(hi)); err != nil {
			return err
		}
		// Distinct config epochs, as redis-cli --cluster create sets them.
		if _, err := m.Do("CLUSTER", "SET-CONFIG-EPOCH", strconv.Itoa(i+1)); err != nil {
			return err
		}
	}
	for _, n := range c.nodes[1:] {
		if _, err := n.Do("CLUSTER", "MEET", "127.0.0.1", strconv.Itoa(c.nodes[0].Port())); err != nil {
			return err
		}
	}
	if err := c.until(10*time.Second, func() error {
		for _, n := range c.nodes {
			nodes, err := n.Do("CLUSTER", "NODES")
			if err != nil {
				return err
			}
			if k := len(strings.Fields(strings.ReplaceAll(nodes, " ", "_"))); k != len(c.nodes) || strings.Contains(nodes, "handshake") {
				return fmt.Errorf("node %d knows %d nodes", n.Port(), k)
			}
		}
		return nil
	}); err != nil {
		return err
	}
	for i, r := range c.nodes[masters:] {
		if _, err := r.Do("CLUSTER", "REPLICATE", c.ids[c.nodes[i]]); err != nil {
			return err
		}
	}
	return c.WaitHealthy()
}

// Nodes returns every node, masters first (as started; roles change with
// failovers).
func (c *Cluster) Nodes() []*Server { return c.nodes }

// Addrs returns every node's address.
func (c *Cluster) Addrs() []string {
	addrs := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		addrs[i] = n.Addr()
	}
	return addrs
}

// WaitHealthy waits until every answering node says cluster_state:ok and
// agrees on who serves each slot, and every replica's link to its master
// is up.
func (c *Cluster) WaitHealthy() error {
	return c.until(20*time.Second, func() error {
		var view string
		for _, n := range c.live() {
			info, err := n.DoWithin(time.Second, "CLUSTER", "INFO")
			if err != nil {
				return err
			}
			if !strings.Contains(info, "cluster_state:ok") {
				return fmt.Errorf("node %d: cluster state not ok", n.Port())
			}
			v, err := c.masters(n)
			if err != nil {
				return err
			}
			if view == "" {
				view = v
			} else if v != view {
				return fmt.Errorf("nodes disagree on the slot owners: %q vs %q", view, v)
			}
			repl, err := n.DoWithin(time.Second, "INFO", "replication")
			if err != nil {
				return err
			}
			if strings.Contains(repl, "role:slave") && !strings.Contains(repl, "master_link_status:up") {
				return fmt.Errorf("replica %d: link to its master is down", n.Port())
			}
		}
		return nil
	})
}

// masters returns n's view of the slot owners: "port:ranges" per master.
func (c *Cluster) masters(n *Server) (string, error) {
	nodes, err := n.DoWithin(time.Second, "CLUSTER", "NODES")
	if err != nil {
		return "", err
	}
	var owners []string
	for _, line := range strings.Split(nodes, "\n") {
		f := strings.Fields(line)
		if len(f) < 8 || !strings.Contains(f[2], "master") || strings.Contains(f[2], "fail") && !strings.Contains(f[2], "fail?") {
			continue
		}
		if len(f) > 8 {
			owners = append(owners, nodePort(f[1])+":"+strings.Join(f[8:], ","))
		}
	}
	if len(owners) == 0 {
		return "", errors.New("no master owns a slot")
	}
	sort.Strings(owners)
	return strings.Join(owners, " "), nil
}

// nodePort returns the port of "ip:port@cport".
func nodePort(addr string) string {
	addr, _, _ = strings.Cut(addr, "@")
	_, port, _ := strings.Cut(addr, ":")
	return port
}

// live returns the nodes that answer a PING within 300ms.
func (c *Cluster) live() []*Server {
	var out []*Server
	for _, n := range c.nodes {
		if n.Running() && pingWithin(n.Addr(), 300*time.Millisecond) == nil {
			out = append(out, n)
		}
	}
	return out
}

// MasterOf returns the node that serves key's slot, as the answering
// nodes see it.
func (c *Cluster) MasterOf(key string) *Server {
	c.tb.Helper()
	n := c.live()[0]
	s, err := n.Do("CLUSTER", "KEYSLOT", key)
	if err != nil {
		c.tb.Fatalf("redistest: CLUSTER KEYSLOT: %v", err)
	}
	slot, _ := strconv.Atoi(s)
	nodes, err := n.Do("CLUSTER", "NODES")
	if err != nil {
		c.tb.Fatalf("redistest: CLUSTER NODES: %v", err)
	}
	for _, line := range strings.Split(nodes, "\n") {
		f := strings.Fields(line)
		if len(f) < 9 || !strings.Contains(f[2], "master") {
			continue
		}
		for _, r := range f[8:] {
			lo, hi, found := strings.Cut(r, "-")
			if !found {
				hi = lo
			}
			a, err1 := strconv.Atoi(lo)
			b, err2 := strconv.Atoi(hi)
			if err1 == nil && err2 == nil && a <= slot && slot <= b {
				return c.byPort(nodePort(f[1]))
			}
		}
	}
	c.tb.Fatalf("redistest: no master serves slot %d", slot)
	return nil
}

// ReplicaOf returns the replica of master, as master's replica sees it.
func (c *Cluster) ReplicaOf(master *Server) *Server {
	c.tb.Helper()
	for _, n := range c.nodes {
		if n == master || !n.Running() {
			continue
		}
		repl, err := n.DoWithin(time.Second, "INFO", "replication")
		if err == nil && strings.Contains(repl, "role:slave") && strings.Contains(repl, fmt.Sprintf("master_port:%d\r", master.Port())) {
			return n
		}
	}
	c.tb.Fatalf("redistest: node %d has no replica", master.Port())
	return nil
}

// Synced waits until every replica has processed every write its master
// had accepted (see Server.Synced).
func (c *Cluster) Synced() {
	c.tb.Helper()
	for _, n := range c.live() {
		if role, err := n.DoWithin(time.Second, "ROLE"); err != nil || !strings.HasPrefix(role, "master") {
			continue
		}
		if err := n.Synced(c.ReplicaOf(n)); err != nil {
			c.tb.Fatalf("redistest: %v", err)
		}
	}
}

// Takeover promotes replica in its master's place at once (CLUSTER
// FAILOVER TAKEOVER: no agreement from the master or the other masters
// needed, as when the master is dead or hangs) and waits until the
// answering nodes agree that it serves the slots.
func (c *Cluster) Takeover(replica *Server) {
	c.tb.Helper()
	if _, err := replica.Do("CLUSTER", "FAILOVER", "TAKEOVER"); err != nil {
		c.tb.Fatalf("redistest: CLUSTER FAILOVER TAKEOVER: %v", err)
	}
	port := strconv.Itoa(replica.Port())
	if err := c.until(20*time.Second, func() error {
		for _, n := range c.live() {
			v, err := c.masters(n)
			if err != nil {
				return err
			}
			if !strings.Contains(" "+v, " "+port+":") {
				return fmt.Errorf("node %d does not see %s as a master yet", n.Port(), port)
			}
		}
		return nil
	}); err != nil {
		c.tb.Fatalf("redistest: takeover by %s: %v", port, err)
	}
}

func (c *Cluster) byPort(port string) *Server {
	for _, n := range c.nodes {
		if strconv.Itoa(n.Port()) == port {
			return n
		}
	}
	c.tb.Fatalf("redistest: no node on port %s", port)
	return nil
}

// until retries f every 20ms until it succeeds or d passes.
func (c *Cluster) until(d time.Duration, f func() error) error {
	return until(d, f)
}

func until(d time.Duration, f func() error) error {
	deadline := time.Now().Add(d)
	for {
		err := f()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
}
