package raftlog

import (
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

type testNode struct {
	id  raft.ServerID
	s   *Stores
	r   *raft.Raft
	fsm *countingFSM
}

// startCluster opens n nodes on loopback and bootstraps them all with the
// same configuration, which raft documents as safe. mutate, if given,
// adjusts each node's Config.
func startCluster(t *testing.T, n int, mutate ...func(*Config)) []*testNode {
	t.Helper()
	nodes := make([]*testNode, n)
	var conf raft.Configuration
	for i := range nodes {
		cfg := testConfig(t, fmt.Sprintf("n%d", i))
		for _, m := range mutate {
			m(&cfg)
		}
		s := openStores(t, cfg)
		nodes[i] = &testNode{id: raft.ServerID(cfg.NodeID), s: s, fsm: &countingFSM{}}
		conf.Servers = append(conf.Servers, raft.Server{ID: nodes[i].id, Address: s.Transport.LocalAddr()})
	}
	for _, nd := range nodes {
		nd.r = newRaft(t, nd.s, nd.fsm)
		if err := nd.r.BootstrapCluster(conf).Error(); err != nil {
			t.Fatalf("bootstrap %s: %v", nd.id, err)
		}
	}
	return nodes
}

// waitLeader waits until one of nodes is leader and all of them know it.
func waitLeader(t *testing.T, nodes []*testNode, timeout time.Duration) *testNode {
	t.Helper()
	var leader *testNode
	waitFor(t, timeout, "a leader all nodes agree on", func() bool {
		leader = nil
		for _, nd := range nodes {
			if nd.r.State() == raft.Leader {
				if leader != nil {
					return false
				}
				leader = nd
			}
		}
		if leader == nil {
			return false
		}
		for _, nd := range nodes {
			if _, id := nd.r.LeaderWithID(); id != leader.id {
				return false
			}
		}
		return true
	})
	return leader
}

func waitCount(t *testing.T, nodes []*testNode, want uint64) {
	t.Helper()
	for _, nd := range nodes {
		waitFor(t, 10*time.Second, fmt.Sprintf("%s to apply %d commands", nd.id, want), func() bool {
			return nd.fsm.Count() == want
		})
	}
}

func TestThreeNodePartitionLeader(t *testing.T) {
	testPartitionLeader(t, startCluster(t, 3))
}

// testPartitionLeader replicates on nodes (three), cuts the leader off,
// checks the other two elect a new leader and carry on, and heals.
func testPartitionLeader(t *testing.T, nodes []*testNode) {
	t.Helper()
	leader := waitStableLeader(t, nodes)

	applyN(t, leader.r, 10)
	waitCount(t, nodes, 10)

	// Cut the leader off. It must step down (lease timeout) and the other
	// two must elect a new leader between them.
	var rest []*testNode
	for _, nd := range nodes {
		if nd != leader {
			rest = append(rest, nd)
		}
	}
	partitionedAt := time.Now()
	leader.s.Network.SetPartitioned(true)
	newLeader := waitLeader(t, rest, 10*time.Second)
	t.Logf("new leader %s elected %v after the partition", newLeader.id, time.Since(partitionedAt))
	waitFor(t, 5*time.Second, "the partitioned leader to step down", func() bool {
		return leader.r.State() != raft.Leader
	})
	if err := leader.r.Apply([]byte("lost"), time.Second).Error(); err == nil {
		t.Fatal("apply on the partitioned old leader succeeded")
	}

	applyN(t, newLeader.r, 5)
	waitCount(t, rest, 15)
	term := newLeader.r.CurrentTerm()

	// Heal. The old leader catches up from the new one. With pre-vote it
	// never raised its term while cut off, so it does not depose the new
	// leader on its return.
	leader.s.Network.SetPartitioned(false)
	waitCount(t, []*testNode{leader}, 15)
	waitLeader(t, nodes, 10*time.Second)
	if newLeader.r.State() != raft.Leader || newLeader.r.CurrentTerm() != term {
		t.Errorf("after healing: %s state %v term %d, want Leader in term %d",
			newLeader.id, newLeader.r.State(), newLeader.r.CurrentTerm(), term)
	}

	applyN(t, newLeader.r, 1)
	waitCount(t, nodes, 16)
}

func TestPartitionableStreamLayer(t *testing.T) {
	a, err := NewPartitionableStreamLayer(t.Context(), "127.0.0.1:0", "")
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := NewPartitionableStreamLayer(t.Context(), "127.0.0.1:0", "b.example:7000")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if got := b.Addr().String(); got != "b.example:7000" {
		t.Errorf("advertised Addr = %q", got)
	}

	accepted := make(chan error, 1)
	go func() {
		c, err := a.Accept()
		if err == nil {
			// Echo one byte so the dialler can see the link works.
			var buf [1]byte
			if _, err = c.Read(buf[:]); err == nil {
				_, err = c.Write(buf[:])
			}
		}
		accepted <- err
	}()
	c, err := b.Dial(raft.ServerAddress(a.Addr().String()), time.Second)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	if _, err := c.Write([]byte{1}); err != nil {
		t.Fatal(err)
	}
	var buf [1]byte
	if _, err := c.Read(buf[:]); err != nil {
		t.Fatalf("read echo: %v", err)
	}
	if err := <-accepted; err != nil {
		t.Fatalf("accept side: %v", err)
	}

	// Partitioning b closes its open connection and refuses new dials.
	b.SetPartitioned(true)
	_ = c.SetReadDeadline(time.Now().Add(time.Second))
	if _, err := c.Read(buf[:]); err == nil {
		t.Error("read on a partitioned connection succeeded")
	}
	if _, err := b.Dial(raft.ServerAddress(a.Addr().String()), time.Second); err == nil {
		t.Error("dial while partitioned succeeded")
	}

	// Partitioning a makes it drop what it accepts: the dialler sees EOF.
	b.SetPartitioned(false)
	a.SetPartitioned(true)
	go func() {
		_, err := a.Accept() // drops connections until a is closed
		accepted <- err
	}()
	c2, err := b.Dial(raft.ServerAddress(a.Addr().String()), time.Second)
	if err != nil {
		t.Fatalf("TCP dial to a partitioned peer should connect and then be dropped: %v", err)
	}
	defer c2.Close()
	_ = c2.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c2.Read(buf[:]); !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("read from a partitioned peer = %v, want EOF or reset", err)
	}

	if err := a.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := <-accepted; !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept after Close = %v, want net.ErrClosed", err)
	}
	if err := a.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// waitStableLeader waits for a leader that can commit (a barrier): on a
// loaded machine a node just elected may lose its lease before its first
// commit, and the tests that follow are about a leader that holds.
func waitStableLeader(t *testing.T, nodes []*testNode) *testNode {
	t.Helper()
	var err error
	for range 10 {
		leader := waitLeader(t, nodes, 10*time.Second)
		if err = leader.r.Barrier(5 * time.Second).Error(); err == nil {
			return leader
		}
	}
	t.Fatalf("no leader could commit a barrier: %v", err)
	return nil
}
