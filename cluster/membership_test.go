package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/factstr/factstr-go/cluster"
	"github.com/factstr/factstr-go/contract"
	"github.com/factstr/factstr-go/internal/freeport"
)

// appender appends in the background through one node until stopped and
// records what was acknowledged.
type appender struct {
	stop  atomic.Bool
	wg    sync.WaitGroup
	mu    sync.Mutex
	acked map[uint64]string
	node  atomic.Pointer[testNode]
}

func startAppender(t *testing.T, n *testNode) *appender {
	a := &appender{acked: map[uint64]string{}}
	a.node.Store(n)
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		for i := 0; !a.stop.Load(); i++ {
			p := fmt.Sprintf(`{"bg":%d}`, i)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			r, err := a.node.Load().Append(ctx, []contract.NewEvent{ev("bg", p)})
			cancel()
			if err == nil {
				a.mu.Lock()
				a.acked[r.FirstSequenceNumber] = p
				a.mu.Unlock()
			}
		}
	}()
	return a
}

// finish stops the appender and checks every acknowledged append is on
// every running node.
func (a *appender) finish(t *testing.T, c *testCluster) {
	t.Helper()
	a.stop.Store(true)
	a.wg.Wait()
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.acked) == 0 {
		t.Fatal("the background appender got no append acknowledged")
	}
	var head uint64
	for s := range a.acked {
		head = max(head, s)
	}
	sameLogs(t, c.running(), head)
	evs := allEvents(t, c.running()[0])
	for s, p := range a.acked {
		if string(evs[s-1].Payload) != p {
			t.Fatalf("acknowledged %s at %d, log holds %s", p, s, evs[s-1].Payload)
		}
	}
}

// suffrage reports id's suffrage in n's configuration; ok is false when id
// is not there or n is nil (no leader at this instant, e.g. mid-election).
func suffrage(t *testing.T, n *testNode, id string) (raft.ServerSuffrage, bool) {
	t.Helper()
	if n == nil {
		return 0, false
	}
	f := n.Raft().GetConfiguration()
	if err := f.Error(); err != nil {
		return 0, false
	}
	for _, s := range f.Configuration().Servers {
		if string(s.ID) == id {
			return s.Suffrage, true
		}
	}
	return 0, false
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for: %s", waitFor, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestJoinAsNonVoterThenPromoted(t *testing.T) {
	c := newCluster(t, 3, nil)
	bg := startAppender(t, c.follower())
	spec := nodeSpec{id: "n4", dir: t.TempDir(), raftPort: freeport.T(t, true), gossipPort: freeport.T(t, true),
		join: []string{fmt.Sprintf("127.0.0.1:%d", c.running()[1].spec.gossipPort)}}
	n4 := startNode(t, spec)
	c.add(n4)
	sawNonvoter := false
	eventually(t, "n4 promoted to voter", func() bool {
		s, ok := suffrage(t, c.leader(), "n4")
		if ok && s == raft.Nonvoter {
			sawNonvoter = true
		}
		return ok && s == raft.Voter
	})
	if !sawNonvoter {
		t.Fatal("n4 became a voter without first being a non-voter")
	}
	if n4.Info().ClusterID == "" || n4.Info().ClusterID != c.leader().Info().ClusterID {
		t.Fatalf("n4 cluster id %q, leader's %q", n4.Info().ClusterID, c.leader().Info().ClusterID)
	}
	bg.finish(t, c)
}

func TestLeaveOnLeaderHandsOverAndShrinks(t *testing.T) {
	c := newCluster(t, 3, nil)
	bg := startAppender(t, c.follower())
	leader := c.leader()
	if err := leader.Admin().Leave(ctxT(t)); err != nil {
		t.Fatalf("leave: %v", err)
	}
	// Still running, the node must stay out: reconcile rounds run every
	// 500ms and must not add it back.
	c.remove(leader)
	// A node that left refuses calls at once, so clients go elsewhere.
	start := time.Now()
	if _, err := leader.Append(ctxT(t), []contract.NewEvent{ev("x", `1`)}); !errors.Is(err, cluster.ErrLeft) || time.Since(start) > time.Second {
		t.Fatalf("append on a node that left = %v after %v; want ErrLeft at once", err, time.Since(start))
	}
	time.Sleep(1500 * time.Millisecond)
	if _, ok := suffrage(t, c.waitStable(), leader.ID()); ok {
		t.Fatalf("%s was added back after leaving", leader.ID())
	}
	leader.stop()
	newLeader := c.waitStable()
	if _, ok := suffrage(t, newLeader, leader.ID()); ok {
		t.Fatalf("%s is still in the configuration after leaving", leader.ID())
	}
	bg.node.Store(newLeader)
	bg.finish(t, c)
}

func TestRemoveKilledNode(t *testing.T) {
	c := newCluster(t, 3, nil)
	bg := startAppender(t, c.leader())
	victim := c.follower()
	c.remove(victim)
	victim.kill()
	if err := c.follower().Admin().Remove(ctxT(t), victim.ID()); err != nil { // forwarded to the leader
		t.Fatalf("remove: %v", err)
	}
	if _, ok := suffrage(t, c.waitStable(), victim.ID()); ok {
		t.Fatalf("%s is still in the configuration", victim.ID())
	}
	if err := c.leader().Admin().Remove(ctxT(t), "nobody"); err == nil {
		t.Fatal("removing an unknown node succeeded")
	}
	bg.finish(t, c)
}

// TestRemovedNodeStaysOutWhoeverLeads: a node removed while it runs is not
// added back, also by a leader elected after the removal (the removal is
// in the replicated state, not only in the memory of the leader that
// removed it), and also when the removed node was the leader. Wiped and
// started again at once, under the same id, it is a new member.
func TestRemovedNodeStaysOutWhoeverLeads(t *testing.T) {
	for _, tc := range []struct {
		name     string
		leader   bool // remove the leader (else a follower)
		handOver bool // then move leadership, so a leader that did not remove it decides
	}{
		{"follower", false, false},
		{"follower, then another leader", false, true},
		{"leader", true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCluster(t, 3, nil)
			victim := c.follower()
			if tc.leader {
				victim = c.leader()
			}
			var asker *testNode
			for _, n := range c.running() {
				if n != victim {
					asker = n
				}
			}
			if err := asker.Admin().Remove(ctxT(t), victim.ID()); err != nil {
				t.Fatalf("remove: %v", err)
			}
			spec := c.remove(victim)
			leader := c.waitStable()
			if tc.handOver {
				if err := leader.Raft().LeadershipTransfer().Error(); err != nil {
					t.Fatalf("leadership transfer: %v", err)
				}
				if l := c.waitStable(); l == leader {
					t.Fatal("leadership did not move")
				}
			}
			// Observation window: reconcile runs every 500 ms.
			for end := time.Now().Add(2 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
				if _, ok := suffrage(t, c.leader(), victim.ID()); ok {
					t.Fatalf("%s, removed while still running, was added back", victim.ID())
				}
			}
			// Wiped and restarted at once: a new data directory is a new
			// member, even before gossip has noticed the old one is gone.
			victim.kill()
			if err := os.RemoveAll(spec.dir); err != nil {
				t.Fatal(err)
			}
			spec.expect = 0
			back := startNode(t, spec)
			c.add(back)
			eventually(t, "the wiped node was added back and promoted", func() bool {
				s, ok := suffrage(t, c.leader(), spec.id)
				return ok && s == raft.Voter
			})
		})
	}
}

func TestRemoveLastVoterRefused(t *testing.T) {
	c := newCluster(t, 1, nil)
	if err := c.leader().Admin().Remove(ctxT(t), c.leader().ID()); err == nil {
		t.Fatal("removing the last voter succeeded")
	}
}

func TestRestartOnNewAddressRejoins(t *testing.T) {
	c := newCluster(t, 3, nil)
	bg := startAppender(t, c.leader())
	victim := c.follower()
	spec := c.remove(victim)
	victim.stop()
	spec.raftPort, spec.gossipPort, spec.grpcPort = freeport.T(t, true), freeport.T(t, true), freeport.T(t, true)
	var others []string
	for _, n := range c.running() {
		others = append(others, fmt.Sprintf("127.0.0.1:%d", n.spec.gossipPort))
	}
	spec.join = others
	back := startNode(t, spec)
	c.add(back)
	want := fmt.Sprintf("127.0.0.1:%d", spec.raftPort)
	eventually(t, "the leader updated the restarted node's address", func() bool {
		f := c.leader().Raft().GetConfiguration()
		if f.Error() != nil {
			return false
		}
		for _, s := range f.Configuration().Servers {
			if string(s.ID) == spec.id {
				return string(s.Address) == want && s.Suffrage == raft.Voter
			}
		}
		return false
	})
	bg.finish(t, c)
}

func TestWipedDataDirComesBackAsNonVoter(t *testing.T) {
	c := newCluster(t, 3, nil)
	bg := startAppender(t, c.leader())
	victim := c.follower()
	spec := c.remove(victim)
	victim.kill()
	if err := os.RemoveAll(spec.dir); err != nil {
		t.Fatal(err)
	}
	back := startNode(t, spec)
	c.add(back)
	sawNonvoter := false
	eventually(t, "the wiped node was re-added as a non-voter and promoted", func() bool {
		s, ok := suffrage(t, c.leader(), spec.id)
		if ok && s == raft.Nonvoter {
			sawNonvoter = true
		}
		return sawNonvoter && ok && s == raft.Voter
	})
	bg.finish(t, c)
}

func TestDeadServerCleanup(t *testing.T) {
	tune := func(cfg *cluster.Config) { cfg.DeadServerCleanup = 500 * time.Millisecond }
	c := newCluster(t, 5, tune)
	var dead []*testNode
	for range 2 {
		v := c.follower()
		c.remove(v)
		v.kill()
		dead = append(dead, v)
	}
	eventually(t, "both dead servers removed", func() bool {
		l := c.leader()
		if l == nil {
			return false
		}
		_, ok1 := suffrage(t, l, dead[0].ID())
		_, ok2 := suffrage(t, l, dead[1].ID())
		return !ok1 && !ok2
	})
	// Three voters left, the floor for a cluster of five: a third dead
	// voter must stay in the configuration.
	third := c.follower()
	c.remove(third)
	third.kill()
	time.Sleep(2 * time.Second) // a negative check: nothing may happen in this window
	l := c.waitStable()
	if _, ok := suffrage(t, l, third.ID()); !ok {
		t.Fatal("the leader removed a dead voter below a quorum of the configured size")
	}
}

// TestWipedNodeWithholdsVotesAcrossLeaderChange: the incarnation record is
// replicated, so a wiped node is recognised even when the leader that knew
// it is gone, and it cannot help elect anyone meanwhile (it may have
// voted in the current term before it lost its state).
func TestWipedNodeWithholdsVotesAcrossLeaderChange(t *testing.T) {
	c := newCluster(t, 3, nil)
	for _, n := range c.running() {
		eventually(t, "every node holds the three incarnation records", func() bool {
			recs, err := cluster.Store(n.Node).Replica().Incarnations()
			return err == nil && len(recs) == 3
		})
		if !cluster.VotingAllowed(n.Node) {
			t.Fatalf("%s: a bootstrap voter must take part in elections", n.ID())
		}
	}
	leader := c.leader()
	victim := c.follower()
	var witness *testNode
	for _, n := range c.running() {
		if n != leader && n != victim {
			witness = n
		}
	}
	bg := startAppender(t, witness)
	victimSpec := c.remove(victim)
	victim.kill()
	if err := os.RemoveAll(victimSpec.dir); err != nil {
		t.Fatal(err)
	}
	leaderSpec := c.remove(leader)
	leader.kill()

	// Only the witness and the wiped node are up: the witness campaigns,
	// the wiped node withholds its vote, nobody leads.
	back := startNode(t, victimSpec)
	c.add(back)
	if cluster.VotingAllowed(back.Node) {
		t.Fatal("a wiped node took part in elections before the cluster recorded it")
	}
	eventually(t, "the witness campaigned: the wiped node withheld votes, or someone was elected", func() bool {
		return cluster.VotesWithheld(back.Node) >= 2 || witness.Raft().State() == raft.Leader || back.Raft().State() == raft.Leader
	})
	for _, n := range []*testNode{witness, back} {
		if n.Raft().State() == raft.Leader {
			t.Fatalf("%s became leader with the vote of a node that lost its term", n.ID())
		}
	}
	if st, err := back.Admin().Status(ctxT(t)); err != nil || !strings.Contains(strings.Join(st.Warnings, "\n"), "withholds its vote") {
		t.Fatalf("status of the wiped node does not say it withholds its vote: %v %q", err, st.Warnings)
	}

	// The old leader returns with its data: a quorum of trustworthy voters
	// elects a leader, which finds the record and re-adds the wiped node.
	c.add(startNode(t, leaderSpec))
	sawNonvoter := false
	eventually(t, "the wiped node was re-added as a non-voter and promoted", func() bool {
		s, ok := suffrage(t, c.leader(), victimSpec.id)
		if ok && s == raft.Nonvoter {
			sawNonvoter = true
		}
		return sawNonvoter && ok && s == raft.Voter
	})
	if !cluster.VotingAllowed(back.Node) {
		t.Fatal("the re-added node still withholds its vote")
	}
	bg.finish(t, c)
}
