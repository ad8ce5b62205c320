package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/factstr/factstr-go/cluster"
	"github.com/factstr/factstr-go/contract"
	"github.com/factstr/factstr-go/contract/conformance"
	"github.com/factstr/factstr-go/internal/freeport"
)

func TestConformanceOnFollower(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster per subtest")
	}
	conformance.Run(t, func(t *testing.T) contract.EventStore {
		c := newCluster(t, 3, nil)
		f := c.follower().Node
		return followerStore{Node: f, DurableAdmin: f.DurableAdmin(), c: c}
	})
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	t.Cleanup(cancel)
	return ctx
}

// allEvents reads every event on n with a local read (no leader needed).
func allEvents(t testing.TB, n *testNode) []contract.EventRecord {
	t.Helper()
	ctx := contract.WithReadOptions(ctxT(t), contract.ReadOptions{Consistency: contract.Local})
	res, err := n.Query(ctx, contract.EventQuery{})
	if err != nil {
		t.Fatalf("local query on %s: %v", n.ID(), err)
	}
	return res.Events
}

// waitHead waits until n has applied through sequence number head.
func waitHead(t testing.TB, n *testNode, head uint64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if _, err := cluster.Store(n.Node).Replica().Hub().WaitAtLeast(ctx, head); err != nil {
		t.Fatalf("%s reached head %d, want %d: %v", n.ID(), n.Info().Head, head, err)
	}
}

func sameLogs(t testing.TB, nodes []*testNode, head uint64) {
	t.Helper()
	var want []contract.EventRecord
	for i, n := range nodes {
		waitHead(t, n, head)
		got := allEvents(t, n)
		for j, e := range got {
			if e.SequenceNumber != uint64(j+1) {
				t.Fatalf("%s: event %d has sequence %d (gap or duplicate)", n.ID(), j, e.SequenceNumber)
			}
		}
		if i == 0 {
			want = got
			continue
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%s's log (%d events) differs from %s's (%d events)", n.ID(), len(got), nodes[0].ID(), len(want))
		}
	}
}

func TestLeaderKillKeepsAcknowledgedAppends(t *testing.T) {
	c := newCluster(t, 3, nil)
	f := c.follower()
	var acked sync.Map
	var stop atomic.Bool
	var wg sync.WaitGroup
	var count atomic.Int64
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; !stop.Load(); i++ {
				ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
				r, err := f.Append(ctx, []contract.NewEvent{ev("t", fmt.Sprintf(`{"w":%d,"i":%d}`, w, i))})
				cancel()
				if err == nil {
					acked.Store(r.FirstSequenceNumber, fmt.Sprintf(`{"w":%d,"i":%d}`, w, i))
					count.Add(1)
				}
			}
		}()
	}
	waitCount := func(min int64) {
		deadline := time.Now().Add(waitFor)
		for count.Load() < min {
			if time.Now().After(deadline) {
				t.Fatalf("only %d appends acknowledged, want %d", count.Load(), min)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitCount(50)
	old := c.leader()
	c.remove(old)
	old.kill()
	before := count.Load()
	newLeader := c.waitStable()
	if newLeader.ID() == old.ID() {
		t.Fatal("the killed node is still leader")
	}
	waitCount(before + 50)
	stop.Store(true)
	wg.Wait()

	var maxSeq uint64
	acked.Range(func(k, _ any) bool { maxSeq = max(maxSeq, k.(uint64)); return true })
	sameLogs(t, c.running(), maxSeq)
	events := allEvents(t, c.running()[0])
	acked.Range(func(k, v any) bool {
		seq := k.(uint64)
		if seq > uint64(len(events)) {
			t.Errorf("acknowledged sequence %d missing (log ends at %d)", seq, len(events))
			return true
		}
		if got := string(events[seq-1].Payload); got != v.(string) {
			t.Errorf("sequence %d holds %s, acknowledged %s", seq, got, v)
		}
		return true
	})
}

func TestFollowerReadSeesAcknowledgedWrite(t *testing.T) {
	c := newCluster(t, 3, nil)
	check := func(rounds int) {
		leader, follower := c.leader(), c.follower()
		for i := range rounds {
			r, err := leader.Append(ctxT(t), []contract.NewEvent{ev("rw", fmt.Sprintf(`{"i":%d}`, i))})
			if err != nil {
				t.Fatalf("append: %v", err)
			}
			res, err := follower.Query(ctxT(t), contract.EventQuery{Filters: []contract.EventFilter{{EventTypes: []string{"rw"}}}})
			if err != nil {
				t.Fatalf("follower read: %v", err)
			}
			if res.CurrentContextVersion != r.LastSequenceNumber {
				t.Fatalf("round %d: follower %s read version %d right after the leader acknowledged %d (stale read)",
					i, follower.ID(), res.CurrentContextVersion, r.LastSequenceNumber)
			}
		}
	}
	check(100)
	// And right after a leader change.
	old := c.leader()
	if err := old.Raft().LeadershipTransfer().Error(); err != nil {
		t.Fatalf("leadership transfer: %v", err)
	}
	c.waitStable()
	check(50)
}

func TestPartitionedFollowerNeverAnswersStale(t *testing.T) {
	c := newCluster(t, 3, nil)
	leader, follower := c.leader(), c.follower()
	if _, err := leader.Append(ctxT(t), []contract.NewEvent{ev("p", `1`)}); err != nil {
		t.Fatal(err)
	}
	waitHead(t, follower, 1)
	cluster.RaftNetwork(follower.Node).SetPartitioned(true)
	r, err := leader.Append(ctxT(t), []contract.NewEvent{ev("p", `2`)})
	if err != nil {
		t.Fatalf("append with one follower cut off: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	res, err := follower.Query(ctx, contract.EventQuery{})
	if err == nil && res.CurrentContextVersion < r.LastSequenceNumber {
		t.Fatalf("partitioned follower answered a default read with stale data: version %d, acknowledged %d",
			res.CurrentContextVersion, r.LastSequenceNumber)
	}
	if err == nil {
		t.Fatalf("partitioned follower answered while cut off from the raft log (version %d)", res.CurrentContextVersion)
	}
	// A local read is allowed to be stale, and says what it saw.
	local, err := follower.Query(contract.WithReadOptions(ctxT(t), contract.ReadOptions{Consistency: contract.Local}), contract.EventQuery{})
	if err != nil || local.CurrentContextVersion != 1 {
		t.Fatalf("local read on the cut-off follower = %d, %v; want the stale 1", local.CurrentContextVersion, err)
	}
	cluster.RaftNetwork(follower.Node).SetPartitioned(false)
	res, err = follower.Query(ctxT(t), contract.EventQuery{})
	if err != nil || res.CurrentContextVersion != r.LastSequenceNumber {
		t.Fatalf("after healing: version %d, %v; want %d", res.CurrentContextVersion, err, r.LastSequenceNumber)
	}
}

func TestRestartCleanAndUnclean(t *testing.T) {
	for _, mode := range []string{"clean", "unclean"} {
		t.Run(mode, func(t *testing.T) {
			c := newCluster(t, 3, nil)
			leader := c.leader()
			for i := range 30 {
				if _, err := leader.Append(ctxT(t), []contract.NewEvent{ev("r", fmt.Sprintf(`{"i":%d}`, i)), ev("r", `{}`)}); err != nil {
					t.Fatal(err)
				}
			}
			victim := c.follower()
			spec := c.remove(victim)
			if mode == "clean" {
				victim.stop()
			} else {
				victim.kill()
			}
			for i := range 20 {
				if _, err := leader.Append(ctxT(t), []contract.NewEvent{ev("r", fmt.Sprintf(`{"after":%d}`, i))}); err != nil {
					t.Fatal(err)
				}
			}
			back := startNode(t, spec)
			c.add(back)
			sameLogs(t, c.running(), 80)
		})
	}
}

func TestSnapshotInstallBringsNewNodeUpToDate(t *testing.T) {
	tune := func(cfg *cluster.Config) {
		cfg.Raft.SnapshotThreshold = 64
		cfg.Raft.TrailingLogs = 64
	}
	c := newCluster(t, 3, tune)
	leader := c.leader()
	for i := range 300 {
		if _, err := leader.Append(ctxT(t), []contract.NewEvent{ev("s", fmt.Sprintf(`{"i":%d}`, i))}); err != nil {
			t.Fatal(err)
		}
	}
	if err := leader.Raft().Snapshot().Error(); err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	// Force log truncation past what a new node could replay from.
	first, _ := cluster.RaftFirstIndex(leader.Node)
	if first <= 1 {
		t.Fatalf("leader log was not compacted after the snapshot (first index %d)", first)
	}
	spec := nodeSpec{id: "n4", dir: t.TempDir(), raftPort: freeport.T(t, true), gossipPort: freeport.T(t, true), tune: tune,
		join: []string{fmt.Sprintf("127.0.0.1:%d", c.running()[0].spec.gossipPort)}}
	n4 := startNode(t, spec)
	c.add(n4)
	waitHead(t, n4, 300)
	sameLogs(t, c.running(), 300)
}

func TestIdempotentRetryAfterLeaderChange(t *testing.T) {
	c := newCluster(t, 3, nil)
	leader := c.leader()
	ctx := contract.WithIdempotencyKey(ctxT(t), "order-42")
	first, err := leader.Append(ctx, []contract.NewEvent{ev("o", `{"order":42}`)})
	if err != nil {
		t.Fatal(err)
	}
	c.remove(leader)
	leader.kill()
	newLeader := c.waitStable()
	again, err := c.follower().Append(ctx, []contract.NewEvent{ev("o", `{"order":42}`)})
	if err != nil {
		t.Fatalf("retry on %s after failover: %v", newLeader.ID(), err)
	}
	if again != first {
		t.Fatalf("retry returned %+v, first outcome was %+v", again, first)
	}
	sameLogs(t, c.running(), first.LastSequenceNumber)
	if h := c.running()[0].Info().Head; h != first.LastSequenceNumber {
		t.Fatalf("head is %d after a retried append, want %d (duplicated)", h, first.LastSequenceNumber)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  cluster.Config
	}{
		{"no node id", cluster.Config{DataDir: "d", RaftAddr: "127.0.0.1:1", GossipAddr: "127.0.0.1:2", GRPCAddr: "127.0.0.1:3"}},
		{"no data dir", cluster.Config{NodeID: "a", RaftAddr: "127.0.0.1:1", GossipAddr: "127.0.0.1:2", GRPCAddr: "127.0.0.1:3"}},
		{"bad raft addr", cluster.Config{NodeID: "a", DataDir: "d", RaftAddr: "nope", GossipAddr: "127.0.0.1:2", GRPCAddr: "127.0.0.1:3"}},
		{"expect without join", cluster.Config{NodeID: "a", DataDir: "d", RaftAddr: "127.0.0.1:1", GossipAddr: "127.0.0.1:2", GRPCAddr: "127.0.0.1:3", BootstrapExpect: 3}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.cfg.Validate(); !errors.Is(err, cluster.ErrInvalidConfig) {
				t.Fatalf("Validate() = %v, want ErrInvalidConfig", err)
			}
		})
	}
}

// TestIdempotencyKeysSurviveLeaderClockJump: keys are pruned after the
// retention as the leader's monotonic clock measures it. A forward jump
// of the leader's wall clock far beyond the retention must not make a key
// written a moment ago look old (a retried append would then be applied
// twice); the key is still pruned once it really is older.
func TestIdempotencyKeysSurviveLeaderClockJump(t *testing.T) {
	const retention = 4 * time.Second
	var offset atomic.Int64
	c := newCluster(t, 1, func(cfg *cluster.Config) {
		cfg.IdempotencyRetention = retention
		cfg.Clock = func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
	})
	n := c.leader()
	// Pruning starts once this leadership is a retention old.
	time.Sleep(retention + 500*time.Millisecond)
	ctx := contract.WithIdempotencyKey(ctxT(t), "k1")
	first, err := n.Append(ctx, []contract.NewEvent{ev("A", `{"try":1}`)})
	if err != nil {
		t.Fatal(err)
	}
	offset.Store(int64(3 * time.Hour))
	// Let a few prune rounds (every retention/4) run after the jump while
	// k1 is younger than the retention.
	time.Sleep(retention / 2)
	again, err := n.Append(ctx, []contract.NewEvent{ev("A", `{"try":2}`)})
	if err != nil {
		t.Fatal(err)
	}
	if again != first {
		t.Fatalf("retry with key k1 %.1fs after it was written was appended again (%+v, first %+v): the clock jump pruned the key early", (retention / 2).Seconds(), again, first)
	}
	// Well past the retention, the key is gone: pruning still works.
	time.Sleep(retention)
	late, err := n.Append(ctx, []contract.NewEvent{ev("A", `{"try":3}`)})
	if err != nil {
		t.Fatal(err)
	}
	if late == first {
		t.Fatalf("key k1 was never pruned: %+v", late)
	}
}

// TestCrashedHolderReleasesItsDurableNameAtRestart: a node that crashed
// while holding a durable name and restarted at once (faster than gossip
// declares it failed, so the leader releases nothing) frees the name
// itself, so the consumer can continue on another node.
func TestCrashedHolderReleasesItsDurableNameAtRestart(t *testing.T) {
	c := newCluster(t, 3, nil)
	holder := c.follower()
	ctx := ctxT(t)
	if _, err := c.leader().Append(ctx, []contract.NewEvent{ev("A", `{}`)}); err != nil {
		t.Fatal(err)
	}
	delivered := make(chan struct{}, 1)
	if _, err := holder.StreamAllDurable(ctx, "d", func(context.Context, []contract.EventRecord) error {
		select {
		case delivered <- struct{}{}:
		default:
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-delivered:
	case <-ctx.Done():
		t.Fatal("no delivery to the first holder")
	}
	var other *testNode
	for _, n := range c.running() {
		if n != holder {
			other = n
		}
	}
	if _, err := other.StreamAllDurable(ctx, "d", func(context.Context, []contract.EventRecord) error { return nil }); !errors.Is(err, contract.ErrDurableNameInUse) {
		t.Fatalf("second holder while the first runs: %v, want ErrDurableNameInUse", err)
	}
	spec := c.remove(holder)
	holder.kill()
	c.add(startNode(t, spec))
	eventually(t, "another node can take the durable name of the crashed holder", func() bool {
		sub, err := other.StreamAllDurable(ctx, "d", func(context.Context, []contract.EventRecord) error { return nil })
		if err != nil {
			return false
		}
		sub.Unsubscribe()
		return true
	})
}
