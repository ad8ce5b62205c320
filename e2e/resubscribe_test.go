//go:build unix

package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/factstr/factstr-go/contract"
	"github.com/factstr/factstr-go/internal/testcluster"
)

// TestDurableResubscribeRightAfterUnsubscribe: when Unsubscribe returns,
// the durable name is free ("for a remote store, Unsubscribe waits for the
// server to release it"), also when it is called right after
// StreamAllDurable returned. The client used to return at once when its
// delivering goroutine had not started yet, and about one resubscription
// in five failed with ErrDurableNameInUse.
func TestDurableResubscribeRightAfterUnsubscribe(t *testing.T) {
	skipShort(t)
	const rounds = 20
	c := testcluster.Start(t, testcluster.Options{Nodes: 3})
	ctx := testCtx(t, 2*time.Minute)
	f, err := c.Follower(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cl := c.Client(t, c.Node(f).Addr())
	h := func(context.Context, []contract.EventRecord) error { return nil }
	for i := range rounds {
		sub, err := cl.StreamAllDurable(ctx, "resubscribe", h)
		if err != nil {
			t.Fatalf("round %d: subscribing right after the previous Unsubscribe returned: %v", i, err)
		}
		sub.Unsubscribe()
	}
}
