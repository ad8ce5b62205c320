package membership

import (
	"net"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

// testDelegate is the delegate of node "a", alive at 10.0.0.1:7946.
func testDelegate(t *testing.T) *delegate {
	t.Helper()
	meta, err := newLocalMeta(Meta{NodeID: "a"})
	if err != nil {
		t.Fatal(err)
	}
	view := newMemberView("a", time.Hour, discardLogger)
	view.alive("a", viewMember("a", "10.0.0.1:7946", "", time.Now()), false, EventJoin)
	return &delegate{self: "a", logger: discardLogger, meta: meta, view: view, conflicts: &conflictLog{}}
}

func node(name, ip string, state memberlist.NodeStateType) *memberlist.Node {
	return &memberlist.Node{Name: name, Addr: net.ParseIP(ip), Port: 7946, State: state}
}

// A joined peer's member list tells whether that peer holds this node at
// its current address; only the list of the peer being contacted counts.
func TestDelegateMergeFindsStaleSelf(t *testing.T) {
	const seed = "10.0.0.9:7946"
	cases := []struct {
		name      string
		target    string
		peers     []*memberlist.Node
		wantStale bool
	}{
		{"an inbound join", "", []*memberlist.Node{node("s", "10.0.0.9", memberlist.StateAlive)}, false},
		{"a list from another peer", seed, []*memberlist.Node{node("x", "10.0.0.8", memberlist.StateAlive)}, false},
		{"the seed holds us as we are", seed, []*memberlist.Node{
			node("s", "10.0.0.9", memberlist.StateAlive), node("a", "10.0.0.1", memberlist.StateAlive)}, false},
		{"the seed suspects us at our address", seed, []*memberlist.Node{
			node("s", "10.0.0.9", memberlist.StateAlive), node("a", "10.0.0.1", memberlist.StateSuspect)}, false},
		{"the seed holds our old address", seed, []*memberlist.Node{
			node("s", "10.0.0.9", memberlist.StateAlive), node("a", "10.0.0.7", memberlist.StateAlive)}, true},
		{"the seed holds us dead", seed, []*memberlist.Node{
			node("s", "10.0.0.9", memberlist.StateAlive), node("a", "10.0.0.1", memberlist.StateDead)}, true},
		{"the seed does not know us", seed, []*memberlist.Node{node("s", "10.0.0.9", memberlist.StateAlive)}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := testDelegate(t)
			d.contacting(tc.target)
			if err := d.NotifyMerge(tc.peers); err != nil {
				t.Fatalf("NotifyMerge refused the merge: %v", err)
			}
			if got := d.staleSelf.Load(); got != tc.wantStale {
				t.Fatalf("stale self %v, want %v", got, tc.wantStale)
			}
		})
	}
}

// A conflict is counted every time and published at powers of two; one
// over this node's own name also asks the join loop to re-announce it.
func TestDelegateConflict(t *testing.T) {
	for _, self := range []bool{false, true} {
		name := "b"
		if self {
			name = "a"
		}
		d := testDelegate(t)
		events, cancel := d.view.subscribe()
		kept := node(name, "10.0.0.2", memberlist.StateAlive)
		rival := node(name, "10.0.0.3", memberlist.StateAlive)
		for range 3 {
			d.NotifyConflict(kept, rival)
		}
		cancel()
		var got []Event
		for ev := range events {
			got = append(got, ev)
		}
		if len(got) != 2 || got[0].Kind != EventConflict || got[0].Member.Addr != "10.0.0.3:7946" {
			t.Fatalf("self %v: events %+v, want two conflicts naming the rival", self, got)
		}
		if d.conflicts.count() != 3 {
			t.Fatalf("self %v: %d conflicts counted, want 3", self, d.conflicts.count())
		}
		if d.staleSelf.Load() != self {
			t.Fatalf("self %v: stale self %v", self, d.staleSelf.Load())
		}
	}
}
