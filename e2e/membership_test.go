//go:build unix

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	factstrv1 "github.com/factstr/factstr-go/api/gen/factstr/v1"
	"github.com/factstr/factstr-go/client"
	"github.com/factstr/factstr-go/contract"
	"github.com/factstr/factstr-go/internal/freeport"
	"github.com/factstr/factstr-go/internal/testcluster"
)

// The membership tests (issue 5) run real factstr-node processes. Each has
// writers appending throughout through one client and checks at the end
// that no acknowledged append was lost on any running node.

// TestMembershipBootstrapAndJoin: three nodes started together with
// --bootstrap-expect 3 form one cluster (one cluster id, three voters); a
// fourth node started with only --join (so --bootstrap-expect 0) is added
// as a non-voter and promoted to voter.
func TestMembershipBootstrapAndJoin(t *testing.T) {
	skipShort(t)
	c := testcluster.Start(t, testcluster.Options{Nodes: 3})
	ctx := testCtx(t, 4*time.Minute)
	cl := c.Client(t)
	w := startWriters(t, ctx, cl, "join", 3)
	w.waitMore(t, 30, 30*time.Second, "before the join")

	// One cluster: `admin status --json` on every node names the same
	// cluster id, the same leader and the same three voters.
	var first statusJSON
	for i, nd := range c.Nodes() {
		var st statusJSON
		waitFor(t, 15*time.Second, func() bool {
			out, _, code := cli(t, ctx, 30*time.Second, "admin", "status", "--json", "--addr", nd.Addr())
			if code != 0 {
				return false
			}
			st = parseStatusJSON(t, out)
			return st.ClusterID != "" && st.LeaderID != ""
		}, func() string { return fmt.Sprintf("%s to report a cluster id and a leader (last: %+v)", nd.ID(), st) })
		if st.NodeID != nd.ID() {
			t.Errorf("status of %s says node_id %q", nd.ID(), st.NodeID)
		}
		if len(st.Members) != 3 {
			t.Fatalf("status of %s lists %d members, want 3: %+v", nd.ID(), len(st.Members), st.Members)
		}
		for j, m := range st.Members {
			want := c.Node(j)
			if m.ID != want.ID() || m.Suffrage != "voter" || m.RaftAddr != want.RaftAddr() || m.GRPCAddr != want.Addr() || m.State == "" || m.AppliedIndex == 0 {
				t.Errorf("status of %s: member %d is %+v; want %s, voter, raft %s, grpc %s, a state and an applied index",
					nd.ID(), j, m, want.ID(), want.RaftAddr(), want.Addr())
			}
		}
		if i == 0 {
			first = st
			continue
		}
		if st.ClusterID != first.ClusterID {
			t.Fatalf("two clusters: %s reports cluster id %q, %s reports %q", c.Node(0).ID(), first.ClusterID, nd.ID(), st.ClusterID)
		}
	}
	t.Logf("one cluster %s of three voters", first.ClusterID)

	// A fourth node joins through one member's gossip address.
	clients := map[string]*client.Client{}
	for _, nd := range c.Nodes() {
		clients[nd.ID()] = c.Client(t, nd.Addr())
	}
	n4 := startExtraNode(t, c.Dir(), "n4", "--join", c.Node(1).GossipAddr())
	clients["n4"] = c.Client(t, n4.grpcAddr)
	start := time.Now()
	var sawNonvoter time.Duration
	var last string
	waitFor(t, 90*time.Second, func() bool {
		if n4.proc.Exited() {
			t.Fatalf("n4 exited (%s): %s", n4.proc.ExitString(), tailFile(n4.logPath, 20))
		}
		for _, nd := range c.Nodes() { // any member's view of the configuration
			if st, err := statusAt(ctx, clients[nd.ID()]); err == nil {
				if m := memberOf(st, "n4"); m != nil && m.GetSuffrage() == "nonvoter" && sawNonvoter == 0 {
					sawNonvoter = time.Since(start)
					t.Logf("n4 is a non-voter after %v: %s", sawNonvoter.Round(time.Millisecond), describeMembers(st))
				}
			}
		}
		st, seen, ok := leaderStatus(ctx, clients)
		last = seen
		if !ok {
			return false
		}
		m := memberOf(st, "n4")
		return m != nil && m.GetSuffrage() == "voter" && m.GetRaftAddr() == n4.raftAddr
	}, func() string { return "n4 to become a voter in the leader's configuration; last: " + last })
	t.Logf("n4 is a voter after %v", time.Since(start).Round(time.Millisecond))
	if sawNonvoter == 0 {
		t.Fatal("n4 became a voter without ever being seen as a non-voter")
	}
	// n4's own view: the same cluster, four voters, and the warning that
	// an even number of voters gains nothing (its view of the configuration
	// may trail the leader's by a heartbeat).
	var n4st *factstrv1.StatusResponse
	waitFor(t, 15*time.Second, func() bool {
		st, err := statusAt(ctx, clients["n4"])
		if err != nil {
			return false
		}
		n4st = st
		return st.GetClusterId() == first.ClusterID && len(voters(st)) == 4 &&
			slices.ContainsFunc(st.GetWarnings(), func(s string) bool { return strings.Contains(s, "4 voters") })
	}, func() string {
		return fmt.Sprintf("n4's status to show cluster %s, four voters and an even-number warning; last: %s", first.ClusterID, describeMembers(n4st))
	})
	w.waitMore(t, 30, 60*time.Second, "after the join")
	nodes := append(runningNodes(c), nodeAddr{"n4", n4.grpcAddr})
	w.finish(t, ctx, c, cl, nodes)
}

// TestMembershipLeaveLeader runs `factstr-node admin leave` against the
// leader: it hands leadership over, the cluster shrinks to two voters, and
// the node is not added back while it keeps running.
func TestMembershipLeaveLeader(t *testing.T) {
	skipShort(t)
	c := testcluster.Start(t, testcluster.Options{Nodes: 3})
	ctx := testCtx(t, 4*time.Minute)
	cl := c.Client(t)
	w := startWriters(t, ctx, cl, "leave", 3)
	w.waitMore(t, 50, 30*time.Second, "before the leave")

	li, err := c.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	left := c.Node(li)
	out, _, code := cli(t, ctx, 60*time.Second, "admin", "leave", "--addr", left.Addr())
	if code != 0 {
		t.Fatalf("admin leave on the leader %s failed (exit %d)", left.ID(), code)
	}
	if !strings.Contains(out, "left the cluster") {
		t.Errorf("admin leave printed %q", out)
	}

	survivors := map[string]*client.Client{}
	for _, nd := range c.Nodes() {
		if nd != left {
			survivors[nd.ID()] = c.Client(t, nd.Addr())
		}
	}
	checkShrunk := func(what string, d time.Duration) {
		t.Helper()
		var last string
		waitFor(t, d, func() bool {
			st, seen, ok := leaderStatus(ctx, survivors)
			last = seen
			return ok && st.GetLeaderId() != left.ID() && len(st.GetMembers()) == 2 && len(voters(st)) == 2 && memberOf(st, left.ID()) == nil
		}, func() string { return what + "; last: " + last })
	}
	checkShrunk(fmt.Sprintf("a new leader and two voters without %s", left.ID()), 30*time.Second)
	t.Logf("after the leave: %s", func() string { st, s, _ := leaderStatus(ctx, survivors); _ = st; return s }())

	// The left node still runs; reconcile rounds (every 500ms) must not add
	// it back.
	time.Sleep(3 * time.Second)
	if !left.Running() {
		t.Fatalf("%s exited after leaving: %s", left.ID(), left.Process().ExitString())
	}
	checkShrunk(fmt.Sprintf("%s to stay out while it runs", left.ID()), 5*time.Second)
	st, _, _ := leaderStatus(ctx, survivors)
	if !slices.ContainsFunc(st.GetWarnings(), func(s string) bool { return strings.Contains(s, "2 voters") }) {
		t.Errorf("two voters, but the leader's status has no even-number warning: %q", st.GetWarnings())
	}

	// As `admin leave` says, the node can now be stopped. (While it runs,
	// calls the writers' client sends it wait for a leader it never gets
	// again, until the call's deadline; see the report.)
	if err := left.Stop(); err != nil {
		t.Errorf("stopping the left node: %v", err)
	}
	checkShrunk(fmt.Sprintf("%s to stay out once stopped", left.ID()), 10*time.Second)
	w.waitMore(t, 50, 60*time.Second, "after the leave")
	w.finish(t, ctx, c, cl, runningNodes(c))
}

// TestMembershipRemoveKilledNode SIGKILLs a follower and removes it with
// `factstr-node admin remove <id>` sent to the other follower (which
// forwards it to the leader).
func TestMembershipRemoveKilledNode(t *testing.T) {
	skipShort(t)
	c := testcluster.Start(t, testcluster.Options{Nodes: 3})
	ctx := testCtx(t, 4*time.Minute)
	cl := c.Client(t)
	w := startWriters(t, ctx, cl, "remove", 3)
	w.waitMore(t, 50, 30*time.Second, "before the kill")

	li, err := c.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var followers []*testcluster.Node
	for i, nd := range c.Nodes() {
		if i != li {
			followers = append(followers, nd)
		}
	}
	victim, via := followers[0], followers[1]
	if err := victim.Kill(); err != nil {
		t.Fatal(err)
	}
	w.waitMore(t, 20, 30*time.Second, "after the kill")
	survivors := map[string]*client.Client{}
	for _, nd := range c.Nodes() {
		if nd != victim {
			survivors[nd.ID()] = c.Client(t, nd.Addr())
		}
	}
	// As an operator would: remove the node once status shows it failed.
	// (Removed while the leader's gossip still sees it alive, in the first
	// second or so after the kill, the leader adds it straight back as a
	// non-voter that stays in the configuration; see the report.)
	var last string
	waitFor(t, 30*time.Second, func() bool {
		st, seen, ok := leaderStatus(ctx, survivors)
		last = seen
		m := memberOf(st, victim.ID())
		return ok && m != nil && m.GetGossipState() == "dead"
	}, func() string {
		return fmt.Sprintf("the leader's gossip to report %s dead; last: %s", victim.ID(), last)
	})
	out, _, code := cli(t, ctx, 60*time.Second, "admin", "remove", "--addr", via.Addr(), victim.ID())
	if code != 0 {
		t.Fatalf("admin remove %s via %s failed (exit %d)", victim.ID(), via.ID(), code)
	}
	if !strings.Contains(out, "removed "+victim.ID()) {
		t.Errorf("admin remove printed %q", out)
	}
	waitFor(t, 30*time.Second, func() bool {
		st, seen, ok := leaderStatus(ctx, survivors)
		last = seen
		return ok && len(st.GetMembers()) == 2 && len(voters(st)) == 2 && memberOf(st, victim.ID()) == nil
	}, func() string { return fmt.Sprintf("two voters without %s; last: %s", victim.ID(), last) })
	t.Logf("after the remove: %s", last)
	// Reconcile rounds (every 500ms) must not add it back; check every
	// survivor's configuration.
	time.Sleep(2 * time.Second)
	for id, sc := range survivors {
		st, err := statusAt(ctx, sc)
		if err != nil {
			t.Fatal(err)
		}
		if memberOf(st, victim.ID()) != nil {
			t.Errorf("%s still lists %s: %s", id, victim.ID(), describeMembers(st))
		}
	}
	w.waitMore(t, 50, 60*time.Second, "after the remove")
	w.finish(t, ctx, c, cl, runningNodes(c))
}

// TestMembershipRestartOnNewAddress restarts a follower with the same data
// directory on new gRPC, Raft and gossip ports (a rescheduled pod). The
// leader updates its address with no operator step; it is a voter again
// and serves reads at its new address.
func TestMembershipRestartOnNewAddress(t *testing.T) {
	skipShort(t)
	c := testcluster.Start(t, testcluster.Options{Nodes: 3})
	ctx := testCtx(t, 5*time.Minute)
	cl := c.Client(t) // keeps the moved node's old address: calls there fail over
	w := startWriters(t, ctx, cl, "moved", 3)
	w.waitMore(t, 50, 30*time.Second, "before the move")

	fi, err := c.Follower(ctx)
	if err != nil {
		t.Fatal(err)
	}
	nd := c.Node(fi)
	var p [3]int
	for i := range p {
		if p[i], err = freeport.Get(i == 2); err != nil {
			t.Fatal(err)
		}
	}
	oldRaft, oldGRPC := nd.RaftAddr(), nd.Addr()
	newGRPC, newRaft, newGossip := fmt.Sprintf("127.0.0.1:%d", p[0]), fmt.Sprintf("127.0.0.1:%d", p[1]), fmt.Sprintf("127.0.0.1:%d", p[2])
	start := time.Now()
	if err := nd.Restart("--grpc-addr", newGRPC, "--raft-addr", newRaft, "--gossip-addr", newGossip); err != nil {
		t.Fatal(err)
	}
	t.Logf("restarted %s: grpc %s -> %s, raft %s -> %s, gossip -> %s", nd.ID(), oldGRPC, newGRPC, oldRaft, newRaft, newGossip)
	if nd.Addr() != newGRPC || nd.RaftAddr() != newRaft {
		t.Fatalf("harness did not pick up the new addresses: %s %s", nd.Addr(), nd.RaftAddr())
	}

	all := map[string]*client.Client{}
	for _, n := range c.Nodes() {
		all[n.ID()] = c.Client(t, n.Addr())
	}
	var last string
	waitFor(t, 2*time.Minute, func() bool {
		if !nd.Running() {
			t.Fatalf("%s exited after the restart: %s", nd.ID(), tailFile(nd.LogPath(), 20))
		}
		st, seen, ok := leaderStatus(ctx, all)
		last = seen
		if !ok {
			return false
		}
		m := memberOf(st, nd.ID())
		return len(st.GetMembers()) == 3 && len(voters(st)) == 3 && m != nil && m.GetRaftAddr() == newRaft && m.GetGrpcAddr() == newGRPC && m.GetHealthy()
	}, func() string {
		return fmt.Sprintf("the leader to list %s as a healthy voter at raft %s, grpc %s; last: %s", nd.ID(), newRaft, newGRPC, last)
	})
	t.Logf("%s rejoined at its new address %v after the restart: %s", nd.ID(), time.Since(start).Round(time.Millisecond), last)
	if err := c.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}

	// It serves reads at the new address, linearizable and local.
	moved := c.Client(t, newGRPC)
	floor := w.maxAcked()
	qctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	res, err := moved.Query(qctx, contract.EventQuery{})
	cancel()
	if err != nil {
		t.Fatalf("linearizable query on %s at %s: %v", nd.ID(), newGRPC, err)
	}
	if res.CurrentContextVersion < floor || uint64(len(res.Events)) != res.CurrentContextVersion {
		t.Fatalf("query on the moved node: %d events, version %d; at least %d were acknowledged before", len(res.Events), res.CurrentContextVersion, floor)
	}
	w.waitMore(t, 50, 60*time.Second, "after the move")
	w.finish(t, ctx, c, cl, runningNodes(c))
}

// TestMembershipWipedDataDir SIGKILLs a follower, deletes its data
// directory and starts it again with the same id and flags: the leader
// sees the new incarnation, re-adds it as a non-voter and promotes it once
// it has caught up.
func TestMembershipWipedDataDir(t *testing.T) {
	skipShort(t)
	c := testcluster.Start(t, testcluster.Options{Nodes: 3})
	ctx := testCtx(t, 4*time.Minute)
	cl := c.Client(t)
	w := startWriters(t, ctx, cl, "wiped", 3)
	w.waitMore(t, 100, 30*time.Second, "before the wipe")

	fi, err := c.Follower(ctx)
	if err != nil {
		t.Fatal(err)
	}
	nd := c.Node(fi)
	before, err := c.Node((fi + 1) % 3).Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := nd.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(nd.DataDir()); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := nd.Restart(); err != nil {
		t.Fatal(err)
	}
	t.Logf("killed %s, wiped %s and started it again with the same flags", nd.ID(), nd.DataDir())

	all := map[string]*client.Client{}
	for _, n := range c.Nodes() {
		all[n.ID()] = c.Client(t, n.Addr())
	}
	var sawNonvoter time.Duration
	var last string
	waitFor(t, 2*time.Minute, func() bool {
		if !nd.Running() {
			t.Fatalf("%s exited after the restart: %s", nd.ID(), tailFile(nd.LogPath(), 20))
		}
		for id, cc := range all {
			if id == nd.ID() {
				continue
			}
			if st, err := statusAt(ctx, cc); err == nil {
				if m := memberOf(st, nd.ID()); m != nil && m.GetSuffrage() == "nonvoter" && sawNonvoter == 0 {
					sawNonvoter = time.Since(start)
					t.Logf("%s is a non-voter after %v: %s", nd.ID(), sawNonvoter.Round(time.Millisecond), describeMembers(st))
				}
			}
		}
		st, seen, ok := leaderStatus(ctx, all)
		last = seen
		if !ok || sawNonvoter == 0 {
			return false
		}
		m := memberOf(st, nd.ID())
		return m != nil && m.GetSuffrage() == "voter" && len(voters(st)) == 3
	}, func() string {
		return fmt.Sprintf("%s to be seen as a non-voter (seen: %v) and then a voter; last: %s", nd.ID(), sawNonvoter != 0, last)
	})
	t.Logf("%s is a voter again %v after the restart", nd.ID(), time.Since(start).Round(time.Millisecond))
	st, err := nd.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.GetClusterId() != before.GetClusterId() {
		t.Errorf("the wiped node reports cluster id %q, the cluster's is %q", st.GetClusterId(), before.GetClusterId())
	}
	w.waitMore(t, 50, 60*time.Second, "after the wiped node's return")
	w.finish(t, ctx, c, cl, runningNodes(c))
}

// TestMembershipSnapshotRestore saves a backup with `admin snapshot save`
// while writers append, restores it with `admin snapshot restore` into a
// fresh single node, and compares: the restored node holds exactly the
// source's events up to the backup's head (with every append acknowledged
// before the save started), new appends continue the sequence, and the
// restored state survives a restart.
func TestMembershipSnapshotRestore(t *testing.T) {
	skipShort(t)
	c := testcluster.Start(t, testcluster.Options{Nodes: 3})
	ctx := testCtx(t, 4*time.Minute)
	cl := c.Client(t)
	w := startWriters(t, ctx, cl, "backup", 3)
	w.waitMore(t, 150, 30*time.Second, "before the backup")

	fi, err := c.Follower(ctx)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "factstr.backup")
	floor := w.maxAcked()
	out, _, code := cli(t, ctx, 60*time.Second, "admin", "snapshot", "save", "--addr", c.Node(fi).Addr(), file)
	if code != 0 {
		t.Fatalf("admin snapshot save failed (exit %d)", code)
	}
	fstat, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, fmt.Sprintf("saved a %d-byte backup to %s", fstat.Size(), file)) {
		t.Errorf("snapshot save printed %q; the file has %d bytes", out, fstat.Size())
	}
	w.waitMore(t, 50, 60*time.Second, "after the backup")
	source := w.finish(t, ctx, c, cl, runningNodes(c))

	// A fresh single node: --bootstrap-expect 1, no --join.
	r := testcluster.Start(t, testcluster.Options{Nodes: 1})
	rn := r.Node(0)
	out, _, code = cli(t, ctx, 60*time.Second, "admin", "snapshot", "restore", "--addr", rn.Addr(), "--json", file)
	if code != 0 {
		t.Fatalf("admin snapshot restore failed (exit %d)", code)
	}
	var rr struct {
		Applied uint64 `json:"applied_index"`
		Head    uint64 `json:"head_sequence_number"`
	}
	if err := json.Unmarshal([]byte(out), &rr); err != nil {
		t.Fatalf("snapshot restore --json printed %q: %v", out, err)
	}
	h := rr.Head
	if h < floor || h > uint64(len(source)) {
		t.Fatalf("the backup ends at sequence %d; want at least %d (acknowledged before the save started) and at most %d (the source's head)", h, floor, len(source))
	}
	rcl := r.Client(t)
	restored := queryAll(t, ctx, rcl)
	if d := diffLogs(source[:h], restored); d != "" {
		t.Fatalf("the restored node differs from the source's first %d events: %s", h, d)
	}
	t.Logf("the backup holds sequence 1..%d (%d were acknowledged when the save started, the source ended at %d); the restored node holds exactly those events", h, floor, len(source))

	// New appends continue the sequence.
	for i := range 5 {
		actx, cancel := context.WithTimeout(ctx, 15*time.Second)
		res, err := rcl.Append(actx, []contract.NewEvent{ev("after-restore", fmt.Sprintf(`{"i":%d}`, i))})
		cancel()
		if err != nil {
			t.Fatalf("append on the restored node: %v", err)
		}
		if want := h + 1 + uint64(i); res.FirstSequenceNumber != want {
			t.Fatalf("append %d on the restored node got sequence %d, want %d", i, res.FirstSequenceNumber, want)
		}
	}
	// The restore survives a restart.
	if err := rn.Restart(); err != nil {
		t.Fatal(err)
	}
	if err := r.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	after := queryAll(t, ctx, r.Client(t))
	if len(after) != int(h)+5 {
		t.Fatalf("after a restart the restored node holds %d events, want %d", len(after), h+5)
	}
	if d := diffLogs(source[:h], after[:h]); d != "" {
		t.Fatalf("after a restart the restored node differs from the source: %s", d)
	}
	checkGapless(t, "restored node after a restart", after)
}

// TestMembershipSafetyRefusals: removing the last voter and removing an
// unknown node are refused with a non-zero exit and one clear line; a
// second process with a member's node id does not disturb the cluster and
// status warns about it.
func TestMembershipSafetyRefusals(t *testing.T) {
	skipShort(t)
	oneLine := func(t *testing.T, stderr string, want ...string) {
		t.Helper()
		s := strings.TrimRight(stderr, "\n")
		if s == "" || strings.Contains(s, "\n") {
			t.Errorf("want one line on stderr, got %q", stderr)
		}
		for _, w := range want {
			if !strings.Contains(s, w) {
				t.Errorf("stderr %q does not say %q", s, w)
			}
		}
	}

	t.Run("single node", func(t *testing.T) {
		c := testcluster.Start(t, testcluster.Options{Nodes: 1})
		ctx := testCtx(t, 2*time.Minute)
		cl := c.Client(t)
		w := startWriters(t, ctx, cl, "refuse1", 2)
		w.waitMore(t, 20, 30*time.Second, "before the refusals")
		_, stderr, code := cli(t, ctx, 30*time.Second, "admin", "remove", "--addr", c.Node(0).Addr(), "n1")
		if code == 0 {
			t.Fatal("admin remove of the last voter succeeded")
		}
		oneLine(t, stderr, "last voter", "n1")
		_, stderr, code = cli(t, ctx, 30*time.Second, "admin", "remove", "--addr", c.Node(0).Addr(), "nobody")
		if code == 0 {
			t.Fatal("admin remove nobody succeeded")
		}
		oneLine(t, stderr, "nobody", "not in the raft configuration")
		st, err := c.Node(0).Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if v := voters(st); !slices.Equal(v, []string{"n1"}) {
			t.Fatalf("after the refusals the voters are %v", v)
		}
		w.waitMore(t, 20, 30*time.Second, "after the refusals")
		w.finish(t, ctx, c, cl, runningNodes(c))
	})

	t.Run("duplicate node id", func(t *testing.T) {
		c := testcluster.Start(t, testcluster.Options{Nodes: 3})
		ctx := testCtx(t, 3*time.Minute)
		cl := c.Client(t)
		w := startWriters(t, ctx, cl, "dup", 3)
		w.waitMore(t, 30, 30*time.Second, "before the duplicate")

		li, err := c.Leader(ctx)
		if err != nil {
			t.Fatal(err)
		}
		via := c.Node((li + 1) % 3)
		_, stderr, code := cli(t, ctx, 30*time.Second, "admin", "remove", "--addr", via.Addr(), "nobody")
		if code == 0 {
			t.Fatal("admin remove nobody succeeded")
		}
		oneLine(t, stderr, "nobody", "not in the raft configuration")

		members := map[string]*client.Client{}
		for _, nd := range c.Nodes() {
			members[nd.ID()] = c.Client(t, nd.Addr())
		}
		dup := startExtraNode(t, c.Dir(), "n1", "--join", c.Node(1).GossipAddr())
		intact := func() (bool, string) {
			st, seen, ok := leaderStatus(ctx, members)
			if !ok {
				return false, seen
			}
			if len(st.GetMembers()) != 3 || len(voters(st)) != 3 {
				return false, seen
			}
			for _, nd := range c.Nodes() {
				if m := memberOf(st, nd.ID()); m == nil || m.GetRaftAddr() != nd.RaftAddr() || m.GetGrpcAddr() != nd.Addr() {
					return false, seen
				}
			}
			return true, seen
		}
		warned := func() (string, string) {
			for _, nd := range c.Nodes() {
				st, err := statusAt(ctx, members[nd.ID()])
				if err != nil {
					continue
				}
				for _, wn := range st.GetWarnings() {
					if strings.Contains(wn, "node id") {
						return nd.ID(), wn
					}
				}
			}
			return "", ""
		}
		var who, warning, last string
		waitFor(t, 60*time.Second, func() bool {
			if ok, seen := intact(); !ok {
				t.Fatalf("the cluster changed after a second n1 started: %s", seen)
			}
			who, warning = warned()
			last = who
			return warning != ""
		}, func() string { return "a status warning about the duplicate node id; last: " + last })
		t.Logf("%s's status warns: %s", who, warning)
		// The duplicate runs on; for a while the cluster keeps its three
		// members at their addresses and keeps appending.
		deadline := time.Now().Add(4 * time.Second)
		target := w.acks() + 30
		for time.Now().Before(deadline) || w.acks() < target {
			if ok, seen := intact(); !ok {
				t.Fatalf("the cluster changed while a second n1 runs: %s", seen)
			}
			if time.Since(deadline) > 30*time.Second {
				t.Fatalf("appends stalled while a second n1 runs (%d of %d)", w.acks(), target)
			}
			time.Sleep(100 * time.Millisecond)
		}
		if dst, err := statusAt(ctx, c.Client(t, dup.grpcAddr)); err == nil {
			t.Logf("the duplicate's own status: %s", describeMembers(dst))
		} else {
			t.Logf("the duplicate's own status: %v", err)
		}
		t.Logf("the duplicate is %s", dup.proc.ExitString())
		if clean, err := dup.proc.Terminate(10 * time.Second); !clean {
			t.Errorf("the duplicate did not stop on SIGTERM: %v", err)
		}
		w.waitMore(t, 20, 30*time.Second, "after the duplicate stopped")
		if ok, seen := intact(); !ok {
			t.Fatalf("the cluster changed: %s", seen)
		}
		w.finish(t, ctx, c, cl, runningNodes(c))
	})
}

// queryAll reads every event, linearizably, through cl.
func queryAll(t *testing.T, ctx context.Context, cl *client.Client) []contract.EventRecord {
	t.Helper()
	qctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	res, err := cl.Query(qctx, contract.EventQuery{})
	if err != nil {
		t.Fatalf("query: %v", err)
	}
	return res.Events
}
