//go:build unix

package testcluster

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/factstr/factstr-go/contract"
)

func TestMain(m *testing.M) {
	code := m.Run()
	RemoveBuild()
	os.Exit(code)
}

func TestLastFlag(t *testing.T) {
	args := []string{"serve", "--grpc-addr", "a:1", "-grpc-addr=b:2", "--join", "x", "--grpc-addr", "c:3", "--data-dir"}
	if v, ok := lastFlag(args, "grpc-addr"); !ok || v != "c:3" {
		t.Fatalf("grpc-addr = %q, %v; want c:3", v, ok)
	}
	if _, ok := lastFlag(args, "data-dir"); ok {
		t.Fatal("a flag without a value must not count")
	}
	if _, ok := lastFlag(args, "raft-addr"); ok {
		t.Fatal("raft-addr is not there")
	}
}

// TestLifecycle drives the harness itself: start, leader and follower,
// kill, restart, pause and resume, stop.
func TestLifecycle(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes")
	}
	t0 := time.Now()
	step := func(what string) { t.Logf("%-28s at %v", what, time.Since(t0).Round(time.Millisecond)) }
	Build(t)
	step("built")
	c := Start(t, Options{Nodes: 3})
	step("started")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	addrs := c.Addrs()
	if len(addrs) != 3 || len(slices.Compact(slices.Sorted(slices.Values(addrs)))) != 3 {
		t.Fatalf("Addrs = %v, want three distinct addresses", addrs)
	}
	leader, err := c.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	follower, err := c.Follower(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if leader == follower {
		t.Fatalf("Leader and Follower both returned %d", leader)
	}
	st, err := c.Node(follower).Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.GetLeaderId() != c.Node(leader).ID() || len(st.GetMembers()) != 3 {
		t.Fatalf("follower status: leader %q, %d members; want %q and 3", st.GetLeaderId(), len(st.GetMembers()), c.Node(leader).ID())
	}

	cl := c.Client(t)
	if _, err := cl.Append(ctx, []contract.NewEvent{{Type: "T", Payload: json.RawMessage(`{"a":1}`)}}); err != nil {
		t.Fatal(err)
	}

	step("appended")
	// Kill the leader: the others elect a new one.
	if err := c.Node(leader).Kill(); err != nil {
		t.Fatal(err)
	}
	if c.Node(leader).Running() {
		t.Fatal("killed node still running")
	}
	if err := c.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	nl, err := c.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if nl == leader {
		t.Fatalf("the killed node %d is still the leader", leader)
	}

	step("new leader")
	// Restart it on the same ports and data.
	if err := c.Node(leader).Restart(); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	step("restarted, ready")
	lctx := contract.WithReadOptions(ctx, contract.ReadOptions{Consistency: contract.Local, MinSequenceNumber: 1})
	res, err := c.Client(t, c.Node(leader).Addr()).Query(lctx, contract.EventQuery{})
	if err != nil || len(res.Events) != 1 {
		t.Fatalf("restarted node's local query: %d events, %v; want 1", len(res.Events), err)
	}
	if _, err := os.Stat(filepath.Join(c.Node(leader).DataDir(), "node.json")); err != nil {
		t.Fatalf("data dir: %v", err)
	}

	step("local query")
	// Pause a node: it is left out of readiness; resume it.
	p := (nl + 1) % 3
	if err := c.Node(p).Pause(); err != nil {
		t.Fatal(err)
	}
	if !c.Node(p).Paused() {
		t.Fatal("Paused() = false after Pause")
	}
	if err := c.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	step("paused, ready")
	if err := c.Node(p).Resume(); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}

	step("resumed, ready")
	// A graceful stop exits 0.
	if err := c.Node(p).Stop(); err != nil {
		t.Fatal(err)
	}
	if code := c.Node(p).Process().ExitCode(); code != 0 {
		t.Fatalf("exit code %d after SIGTERM", code)
	}
	step("one node stopped")
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	step("all stopped")
}
