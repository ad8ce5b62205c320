package cluster_test

import (
	"testing"

	"github.com/factstr/factstr-go/contract"
)

// A retry with the key of a committed append returns the first outcome and
// says so, on the leader and through a follower alike; nothing is appended
// twice.
func TestAppendWithReportsDuplicates(t *testing.T) {
	c := newCluster(t, 3, nil)
	leader := c.waitStable()
	var follower *testNode
	for _, n := range c.running() {
		if n != leader {
			follower = n
			break
		}
	}
	ctx := ctxT(t)
	opts := contract.AppendOptions{IdempotencyKey: "order-42"}
	first, err := follower.AppendWith(ctx, []contract.NewEvent{ev("placed", `{"order":42}`)}, opts)
	if err != nil {
		t.Fatal(err)
	}
	if first.Duplicate {
		t.Fatal("the first append with a key is reported as a duplicate")
	}
	for _, n := range []*testNode{leader, follower} {
		again, err := n.AppendWith(ctx, []contract.NewEvent{ev("placed", `{"order":42}`)}, opts)
		if err != nil {
			t.Fatal(err)
		}
		if !again.Duplicate || again.AppendResult != first.AppendResult {
			t.Fatalf("retry on %s: %+v, want the first outcome %+v marked duplicate", n.ID(), again, first.AppendResult)
		}
	}
	q := contract.EventQuery{Filters: []contract.EventFilter{{EventTypes: []string{"placed"}}}}
	ifOpts := contract.AppendOptions{IdempotencyKey: "ship-42"}
	shipped, err := leader.AppendIfWith(ctx, []contract.NewEvent{ev("placed", `{"order":43}`)}, q, first.LastSequenceNumber, ifOpts)
	if err != nil || shipped.Duplicate {
		t.Fatalf("AppendIfWith: %+v, %v", shipped, err)
	}
	again, err := follower.AppendIfWith(ctx, []contract.NewEvent{ev("placed", `{"order":43}`)}, q, first.LastSequenceNumber, ifOpts)
	if err != nil || !again.Duplicate || again.AppendResult != shipped.AppendResult {
		t.Fatalf("AppendIfWith retry: %+v, %v; want the first outcome %+v marked duplicate", again, err, shipped.AppendResult)
	}
	res, err := leader.Query(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Events) != 2 {
		t.Fatalf("%d events of type placed, want 2 (no retry appended)", len(res.Events))
	}
}
