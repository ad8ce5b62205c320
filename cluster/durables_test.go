package cluster_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/factstr/factstr-go/contract"
)

// A durable stream on a follower whose name an operator resets with force
// through the leader ends with ErrDurableLeaseLost at its next
// acknowledgement (the refused advance travels back from the leader with
// its sentinel); the name then starts from the reset cursor, which every
// node agrees on.
func TestForcedResetEndsFollowerStream(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster")
	}
	c := newCluster(t, 3, nil)
	leader, follower := c.leader(), c.follower()
	ctx := ctxT(t)
	ev := []contract.NewEvent{{Type: "A", Payload: json.RawMessage(`{}`)}}
	for range 3 {
		if _, err := leader.Append(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	got := make(chan uint64, 16)
	sub, err := follower.StreamAllDurable(ctx, "d", func(_ context.Context, b []contract.EventRecord) error {
		got <- b[len(b)-1].SequenceNumber
		return nil
	}, contract.StartAfter(1))
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	for _, want := range []uint64{2, 3} {
		if seq := <-got; seq != want {
			t.Fatalf("delivered %d, want %d", seq, want)
		}
	}
	info, err := leader.DurableAdmin().ResetDurable(ctx, "d", contract.StartPosition{Kind: contract.StartAfterSequence, After: 1}, true)
	if err != nil || info.Cursor != 1 || info.Holder != "" {
		t.Fatalf("forced reset: %+v, %v", info, err)
	}
	if _, err := leader.Append(ctx, ev); err != nil {
		t.Fatal(err)
	}
	select {
	case <-sub.Done():
	case <-time.After(waitFor):
		t.Fatal("the follower's stream did not end after its name was reset with force")
	}
	if err := sub.Err(); !errors.Is(err, contract.ErrDurableLeaseLost) {
		t.Fatalf("Err = %v, want contract.ErrDurableLeaseLost", err)
	}
	for _, n := range c.running() {
		rctx := contract.WithReadOptions(ctx, contract.ReadOptions{Consistency: contract.Local})
		deadline := time.Now().Add(waitFor)
		for {
			info, err := n.DurableAdmin().GetDurable(rctx, "d")
			if err == nil && info.Cursor == 1 && info.Holder == "" && info.Head == 4 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %+v, %v; want cursor 1, free, head 4", n.ID(), info, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}
