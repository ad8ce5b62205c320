package cluster_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/factstr/factstr-go/client"
	"github.com/factstr/factstr-go/cluster"
	"github.com/factstr/factstr-go/contract"
)

// seqRecorder records the sequence numbers a stream delivered.
type seqRecorder struct {
	mu   sync.Mutex
	seqs []uint64
}

func (r *seqRecorder) handle(_ context.Context, b []contract.EventRecord) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range b {
		r.seqs = append(r.seqs, e.SequenceNumber)
	}
	return nil
}

func (r *seqRecorder) get() []uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.seqs)
}

// waitSeqs waits until r holds n sequence numbers and checks they are
// 1..n: nothing skipped, nothing twice.
func (r *seqRecorder) waitSeqs(t *testing.T, what string, n int) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for len(r.get()) < n && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	got := r.get()
	want := make([]uint64, n)
	for i := range want {
		want[i] = uint64(i + 1)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("%s delivered %v; want 1..%d exactly once each, in order", what, got, n)
	}
}

// A follower cut off from the Raft traffic serves a live and a durable
// stream of the Go client. Writes go on on the majority; the node reports
// that it falls behind, and the client moves both streams to other nodes
// (the live one after its last event, the durable one from the cursor the
// cut-off node stored when it let the name go): they deliver every event
// once, in order, while the node is still cut off.
func TestStreamsMoveOffACutOffFollower(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster")
	}
	c := newClusterWith(t, 3, nil, true)
	leader := c.waitStable()
	cut := c.follower()
	targets := []string{cut.lis.Addr().String()}
	for _, n := range c.running() {
		if n != cut {
			targets = append(targets, n.lis.Addr().String())
		}
	}
	ctx := ctxT(t)
	// One client per stream, so that each starts on the first target.
	dial := func() *client.Client {
		cl, err := client.Dial(ctx, targets, client.WithMaxStreamLag(time.Second), client.WithLogger(testLogger(t)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cl.Close() })
		return cl
	}
	var live, durable seqRecorder
	lsub, err := dial().StreamAll(ctx, live.handle)
	if err != nil {
		t.Fatal(err)
	}
	defer lsub.Unsubscribe()
	dsub, err := dial().StreamAllDurable(ctx, "projection", durable.handle)
	if err != nil {
		t.Fatal(err)
	}
	defer dsub.Unsubscribe()
	if got := cut.Info().Streams; got != 2 {
		t.Fatalf("the follower serves %d streams, want both", got)
	}
	appendN := func(from, to int) {
		for i := from; i <= to; i++ {
			if _, err := leader.Append(ctx, []contract.NewEvent{ev("E", fmt.Sprintf(`{"i":%d}`, i))}); err != nil {
				t.Fatalf("append %d: %v", i, err)
			}
		}
	}
	appendN(1, 5)
	live.waitSeqs(t, "the live stream", 5)
	durable.waitSeqs(t, "the durable stream", 5)
	if _, _, behind := cut.Freshness(); behind > time.Second {
		t.Fatalf("a follower that follows reports being %v behind", behind)
	}

	net := cluster.RaftNetwork(cut.Node)
	net.SetPartitioned(true)
	t.Cleanup(func() { net.SetPartitioned(false) })
	const total = 25
	appendN(6, total)
	live.waitSeqs(t, "the live stream", total)
	durable.waitSeqs(t, "the durable stream", total)

	info := cut.Info()
	if info.Head >= total {
		t.Fatalf("the cut-off follower has head %d: it was not cut off", info.Head)
	}
	if _, _, behind := cut.Freshness(); behind <= time.Second {
		t.Fatalf("the cut-off follower reports being only %v behind", behind)
	}
	if info.Streams != 0 {
		t.Fatalf("the cut-off follower still serves %d streams", info.Streams)
	}
	d, err := leader.DurableAdmin().GetDurable(ctx, "projection")
	if err != nil {
		t.Fatal(err)
	}
	if d.Holder == "" || strings.HasPrefix(d.Holder, cut.ID()+"/") {
		t.Fatalf("the durable name is held by %q, want a node other than the cut-off %s", d.Holder, cut.ID())
	}
}
