package cluster_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/factstr/factstr-go/cluster"
	"github.com/factstr/factstr-go/contract"
)

func TestRecoverAfterQuorumLoss(t *testing.T) {
	c := newCluster(t, 3, nil)
	leader := c.leader()
	for i := range 25 {
		if _, err := leader.Append(ctxT(t), []contract.NewEvent{ev("q", fmt.Sprintf(`{"i":%d}`, i))}); err != nil {
			t.Fatal(err)
		}
	}
	survivor := c.follower()
	for _, n := range c.running() {
		if n != survivor {
			c.remove(n)
			n.kill()
		}
	}
	// Without quorum, writes cannot commit.
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	_, err := survivor.Append(ctx, []contract.NewEvent{ev("q", `{"lost":true}`)})
	cancel()
	if err == nil {
		t.Fatal("append succeeded with 2 of 3 voters gone")
	}
	spec := c.remove(survivor)
	survivor.stop()
	raftAddr := fmt.Sprintf("127.0.0.1:%d", spec.raftPort)
	if err := cluster.Recover(ctxT(t), spec.dir, spec.id, []cluster.Peer{{ID: spec.id, RaftAddr: raftAddr}}, testLogger(t)); err != nil {
		t.Fatalf("recover: %v", err)
	}
	back := startNode(t, spec)
	c.add(back)
	c.waitStable()
	r, err := back.Append(ctxT(t), []contract.NewEvent{ev("q", `{"after":true}`)})
	if err != nil {
		t.Fatalf("append after recovery: %v", err)
	}
	evs := allEvents(t, back)
	if uint64(len(evs)) != r.LastSequenceNumber || r.LastSequenceNumber < 26 {
		t.Fatalf("after recovery the log has %d events, last append got %d; want the 25 acknowledged ones kept", len(evs), r.LastSequenceNumber)
	}
}
