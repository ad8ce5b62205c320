package cluster_test

import (
	"context"
	"testing"
	"time"

	"github.com/factstr/factstr-go/contract"
)

// A graceful Close of the node serving a durable stream stores the cursor
// of everything the handler acknowledged, including a batch whose handler
// returns nil only once Close has cancelled it, before the node refuses
// proposals: the next subscriber, on another node, gets nothing again.
func TestGracefulCloseStoresFinalCursor(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster")
	}
	c := newCluster(t, 3, nil)
	leader, serving := c.leader(), c.follower()
	ctx := ctxT(t)
	const last = 5
	inLast := make(chan struct{})
	sub, err := serving.StreamAllDurable(ctx, "d", func(hctx context.Context, b []contract.EventRecord) error {
		if b[len(b)-1].SequenceNumber == last {
			// The handler is still working when the node shuts down, and
			// finishes: its nil counts.
			close(inLast)
			<-hctx.Done()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := range last {
		if _, err := leader.Append(ctx, []contract.NewEvent{ev("A", `{}`)}); err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
	}
	select {
	case <-inLast:
	case <-time.After(waitFor):
		t.Fatal("the last batch was not delivered")
	}
	closed := make(chan error, 1)
	go func() { closed <- serving.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatalf("Close: %v", err)
		}
	case <-time.After(waitFor):
		t.Fatal("Close did not return")
	}
	c.remove(serving)
	serving.srv.Stop()
	select {
	case <-sub.Done():
	default:
		t.Fatal("the stream has not ended after Close returned")
	}

	other := c.running()[0]
	info, err := other.DurableAdmin().GetDurable(ctx, "d")
	if err != nil {
		t.Fatal(err)
	}
	if info.Cursor != last || info.Holder != "" {
		t.Fatalf("after a graceful close: %+v; want cursor %d and the name free", info, last)
	}
	redelivered := make(chan uint64, 16)
	sub2, err := other.StreamAllDurable(ctx, "d", func(_ context.Context, b []contract.EventRecord) error {
		redelivered <- b[0].SequenceNumber
		return nil
	})
	if err != nil {
		t.Fatalf("subscribe on %s after the close: %v", other.ID(), err)
	}
	defer sub2.Unsubscribe()
	if _, err := leaderOf(t, c).Append(ctx, []contract.NewEvent{ev("A", `{}`)}); err != nil {
		t.Fatal(err)
	}
	select {
	case seq := <-redelivered:
		if seq != last+1 {
			t.Fatalf("the next subscriber got %d first, want %d (no redelivery)", seq, last+1)
		}
	case <-time.After(waitFor):
		t.Fatal("the next subscriber got nothing")
	}
}

// leaderOf waits for the running nodes' leader.
func leaderOf(t *testing.T, c *testCluster) *testNode {
	t.Helper()
	return c.waitStable()
}
