//go:build unix

package e2e

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/factstr/factstr-go/client"
	"github.com/factstr/factstr-go/contract"
	"github.com/factstr/factstr-go/internal/testcluster"
)

// TestStreamsLeaveAPausedNode pauses (SIGSTOP) the follower process that
// serves a live and a durable stream of the Go client. The node falls
// silent; the client takes it for stuck after its WithMaxStreamLag bound
// (not after the 40 s keepalive) and resumes both streams on the other
// nodes: every event appended meanwhile is delivered once, in order.
func TestStreamsLeaveAPausedNode(t *testing.T) {
	skipShort(t)
	c := testcluster.Start(t, testcluster.Options{Nodes: 3})
	ctx := testCtx(t, 3*time.Minute)
	f, err := c.Follower(ctx)
	if err != nil {
		t.Fatal(err)
	}
	paused := c.Node(f)
	addrs := []string{paused.Addr()}
	for i, n := range c.Nodes() {
		if i != f {
			addrs = append(addrs, n.Addr())
		}
	}
	type recorder struct {
		mu   sync.Mutex
		seqs []uint64
	}
	handle := func(r *recorder) contract.StreamHandler {
		return func(_ context.Context, b []contract.EventRecord) error {
			r.mu.Lock()
			defer r.mu.Unlock()
			for _, e := range b {
				r.seqs = append(r.seqs, e.SequenceNumber)
			}
			return nil
		}
	}
	// wait waits for 1..n once each, in order. A durable stream may
	// deliver again what it had delivered up to redelivered before a
	// fault (its node held the coalesced cursor write: at-least-once
	// after faults); those repeats are counted and left out.
	wait := func(r *recorder, what string, n int, redelivered uint64, within time.Duration) {
		t.Helper()
		deadline := time.Now().Add(within)
		for {
			r.mu.Lock()
			all := slices.Clone(r.seqs)
			r.mu.Unlock()
			var got []uint64
			seen := map[uint64]bool{}
			repeats := 0
			for _, seq := range all {
				if seen[seq] && seq <= redelivered {
					repeats++
					continue
				}
				seen[seq] = true
				got = append(got, seq)
			}
			if repeats > 0 && len(got) >= n {
				t.Logf("%s delivered %d events again after the fault (at-least-once)", what, repeats)
			}
			if len(got) >= n || time.Now().After(deadline) {
				want := make([]uint64, n)
				for i := range want {
					want[i] = uint64(i + 1)
				}
				if !slices.Equal(got, want) {
					t.Fatalf("%s delivered %v; want 1..%d once each, in order", what, got, n)
				}
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	// One client per stream, so that both start on the first address.
	var live, durable recorder
	lsub, err := c.DialClient(t, addrs, client.WithMaxStreamLag(2*time.Second)).StreamAll(ctx, handle(&live))
	if err != nil {
		t.Fatal(err)
	}
	defer lsub.Unsubscribe()
	dsub, err := c.DialClient(t, addrs, client.WithMaxStreamLag(2*time.Second)).StreamAllDurable(ctx, "e2e-move", handle(&durable))
	if err != nil {
		t.Fatal(err)
	}
	defer dsub.Unsubscribe()
	writer := c.DialClient(t, addrs[1:]) // appends go on without the node to be paused
	appendN := func(from, to int) {
		for i := from; i <= to; i++ {
			if _, err := writer.Append(ctx, []contract.NewEvent{ev("e2e-move", fmt.Sprintf(`{"i":%d}`, i))}); err != nil {
				t.Fatalf("append %d: %v", i, err)
			}
		}
	}
	appendN(1, 5)
	wait(&live, "the live stream", 5, 0, 20*time.Second)
	wait(&durable, "the durable stream", 5, 0, 20*time.Second)

	if err := paused.Pause(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = paused.Resume() })
	pausedAt := time.Now()
	appendN(6, 20)
	// Well before the 40 s a keepalive would take to notice (the
	// durable name waits for gossip to declare the paused node failed,
	// which frees its lease).
	wait(&live, "the live stream", 20, 0, 20*time.Second)
	wait(&durable, "the durable stream", 20, 5, 25*time.Second)
	t.Logf("both streams delivered everything %v after the pause", time.Since(pausedAt).Round(time.Millisecond))
}
