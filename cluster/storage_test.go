package cluster_test

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/factstr/factstr-go/cluster"
	"github.com/factstr/factstr-go/contract"
	"github.com/factstr/factstr-go/raftlog"
)

// damage is what happens to a file while the node is stopped.
type damage struct {
	name string
	do   func(t *testing.T, path string)
}

var damages = []damage{
	{"truncated to zero", func(t *testing.T, path string) { truncate(t, path, 0) }},
	{"truncated in the middle", func(t *testing.T, path string) {
		// In the middle of the pages in use, not of the preallocated file.
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		pageSize := binary.LittleEndian.Uint32(b[24:])
		hwm := max(binary.LittleEndian.Uint64(b[56:]), binary.LittleEndian.Uint64(b[pageSize+56:]))
		if hwm < 4 {
			t.Fatalf("only %d pages in use", hwm)
		}
		truncate(t, path, int64(hwm)*int64(pageSize)/2+100)
	}},
	{"pages overwritten with garbage", func(t *testing.T, path string) {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		// Everything after the two meta pages.
		r := rand.New(rand.NewPCG(7, 8))
		for i := 2 * os.Getpagesize(); i < len(b); i++ {
			b[i] = byte(r.UintN(256))
		}
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}},
}

func truncate(t *testing.T, path string, size int64) {
	t.Helper()
	if err := os.Truncate(path, size); err != nil {
		t.Fatal(err)
	}
}

// snapshottedNode runs a single-node cluster to 40 events, a snapshot that
// compacts the log, then 3 more events, and stops it cleanly.
func snapshottedNode(t *testing.T) nodeSpec {
	t.Helper()
	c := newCluster(t, 1, func(cfg *cluster.Config) {
		cfg.Raft.SnapshotThreshold, cfg.Raft.TrailingLogs = 4, 4
	})
	leader := c.waitStable()
	for i := range 43 {
		if _, err := leader.Append(ctxT(t), []contract.NewEvent{ev("s", fmt.Sprintf(`{"i":%d}`, i))}); err != nil {
			t.Fatal(err)
		}
		if i == 39 {
			if err := leader.Raft().Snapshot().Error(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if first, err := cluster.RaftFirstIndex(leader.Node); err != nil || first <= 1 {
		t.Fatalf("the log was not compacted: first index %d, %v", first, err)
	}
	spec := c.remove(leader)
	leader.stop()
	return spec
}

// all43 checks that node serves exactly the 43 events, numbered as written.
func all43(t *testing.T, n *testNode) {
	t.Helper()
	if _, err := n.WaitLeader(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if err := n.ReadBarrier(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	res, err := n.Query(ctxT(t), contract.EventQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Events) != 43 {
		t.Fatalf("%d events after the restart, want 43", len(res.Events))
	}
	for i, e := range res.Events {
		var p struct{ I int }
		if err := json.Unmarshal(e.Payload, &p); err != nil {
			t.Fatal(err)
		}
		if e.SequenceNumber != uint64(i+1) || p.I != i {
			t.Fatalf("event %d is sequence %d with payload %s: renumbered", i, e.SequenceNumber, e.Payload)
		}
	}
}

// A damaged or emptied state machine (fsm.db) is derived state: the node
// rebuilds it from the snapshot and the log, never serves a renumbered
// tail, never crashes.
func TestDamagedStateMachineIsRebuilt(t *testing.T) {
	for _, d := range damages {
		t.Run(d.name, func(t *testing.T) {
			spec := snapshottedNode(t)
			fsmPath := filepath.Join(spec.dir, "fsm.db")
			d.do(t, fsmPath)
			back := startNode(t, spec)
			t.Cleanup(back.stop)
			all43(t, back)
			aside, _ := filepath.Glob(fsmPath + ".corrupt-*")
			if wantAside := d.name != "truncated to zero"; (len(aside) == 1) != wantAside {
				t.Fatalf("files moved aside: %v, want one: %v", aside, wantAside)
			}
		})
	}
}

// A damaged Raft log (raft.db) cannot be rebuilt on the node: the start
// fails with one error naming the file and the recovery, never a panic or
// a fault.
func TestDamagedRaftLogRefusedWithRecovery(t *testing.T) {
	for _, d := range damages {
		t.Run(d.name, func(t *testing.T) {
			spec := snapshottedNode(t)
			raftPath := filepath.Join(spec.dir, "raft", "raft.db")
			d.do(t, raftPath)
			n, err := tryStartNode(t, spec)
			if err == nil {
				n.stop()
				t.Fatal("a node started on a damaged raft.db")
			}
			if !errors.Is(err, raftlog.ErrCorruptLog) {
				t.Fatalf("error %v, want ErrCorruptLog", err)
			}
			for _, want := range []string{raftPath, "remove the data directory", "restore a backup"} {
				if !strings.Contains(err.Error(), want) {
					t.Fatalf("error %q does not say %q", err, want)
				}
			}
		})
	}
}
