package cluster_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/factstr/factstr-go/contract"
)

// A batch parked by a retry-then-park stream on a follower is in the
// replicated state: after the leader that committed the park is killed,
// every remaining node lists it (with its attempts and error), and a
// redelivery asked through the new leader reaches the follower's
// subscriber and empties the list on every node.
func TestParkedBatchSurvivesLeaderChange(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster")
	}
	c := newCluster(t, 3, nil)
	leader, follower := c.leader(), c.follower()
	ctx := ctxT(t)
	var fixed atomic.Bool
	handled := make(chan contract.Delivery, 16)
	sub, err := follower.StreamAllDurable(ctx, "outbox", func(hctx context.Context, b []contract.EventRecord) error {
		d, _ := contract.DeliveryInfo(hctx)
		if b[0].Type == "Bad" && !fixed.Load() {
			return errors.New("downstream refused")
		}
		handled <- d
		return nil
	}, contract.RetryThenPark(3, time.Millisecond, 2*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	for _, typ := range []string{"Bad", "Good"} {
		if _, err := leader.Append(ctx, []contract.NewEvent{{Type: typ, Payload: json.RawMessage(`{}`)}}); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-handled: // event 2: event 1 was parked before it
	case <-time.After(waitFor):
		t.Fatal("the event after the parked one was not delivered")
	}

	c.remove(leader)
	leader.kill()
	newLeader := c.waitStable()
	if newLeader == leader {
		t.Fatal("the killed node still leads")
	}
	for _, n := range c.running() {
		ps, err := n.DurableAdmin().ListParked(ctx, "outbox", 0, 0)
		if err != nil {
			t.Fatalf("%s: ListParked: %v", n.ID(), err)
		}
		if len(ps) != 1 || ps[0].Event.SequenceNumber != 1 || ps[0].Attempts != 3 || !strings.Contains(ps[0].LastError, "downstream refused") {
			t.Fatalf("%s: parked %+v, want event 1 after 3 attempts", n.ID(), ps)
		}
		info, err := n.DurableAdmin().GetDurable(ctx, "outbox")
		if err != nil || info.Parked != 1 || info.Cursor < 1 || info.Failure.MaxDeliveries != 3 {
			t.Fatalf("%s: GetDurable %+v, %v; want 1 parked, cursor past it, retry 3 then park", n.ID(), info, err)
		}
	}

	fixed.Store(true)
	if n, err := newLeader.DurableAdmin().RedeliverParked(ctx, "outbox", 0); err != nil || n != 1 {
		t.Fatalf("RedeliverParked through the new leader: %d, %v", n, err)
	}
	select {
	case d := <-handled:
		if !d.Redelivery || d.Attempt != 1 {
			t.Fatalf("redelivery came as %+v, want attempt 1, redelivery", d)
		}
	case <-time.After(waitFor):
		t.Fatal("the parked event was not redelivered to the follower's subscriber")
	}
	for _, n := range c.running() {
		deadline := time.Now().Add(waitFor)
		for {
			ps, err := n.DurableAdmin().ListParked(ctx, "outbox", 0, 0)
			if err == nil && len(ps) == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: parked after the redelivery was handled: %+v, %v", n.ID(), ps, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}
