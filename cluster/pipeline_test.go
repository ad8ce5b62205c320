package cluster_test

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/factstr/factstr-go/cluster"
	"github.com/factstr/factstr-go/contract"
)

// TestNextEntryOverlapsTheApply: with one entry in flight (the default), a
// leader proposes its next entry as soon as the one before is committed,
// while the state machine still applies it; both callers get their
// outcomes once the apply goes on. Before, the slot was held until the
// apply answered, and nothing more was proposed while the first append's
// apply was held here.
//
// Every node holds the apply that moves its head past the first append
// (a commit does not need any apply), so the test does not depend on which
// node leads when the append arrives.
func TestNextEntryOverlapsTheApply(t *testing.T) {
	type gate struct {
		node    atomic.Pointer[cluster.Node]
		after   atomic.Int64 // hold the first apply that moves the head past it; -1: disarmed
		held    chan struct{}
		release chan struct{}
	}
	var mu sync.Mutex
	gates := map[string]*gate{}
	proposed := make(chan struct{}, 64) // a Raft entry some node proposed as leader
	c := newCluster(t, 3, func(cfg *cluster.Config) {
		g := &gate{held: make(chan struct{}), release: make(chan struct{})}
		g.after.Store(-1)
		mu.Lock()
		gates[cfg.NodeID] = g
		mu.Unlock()
		cfg.MaxInflightProposals = 1
		cfg.OnApply = func(int, int, time.Duration) {
			n, after := g.node.Load(), g.after.Load()
			if n == nil || after < 0 || cluster.Store(n).Replica().Head() <= uint64(after) {
				return
			}
			if g.after.CompareAndSwap(after, -1) {
				close(g.held)
				<-g.release
			}
		}
		cfg.OnPropose = func(kind string, _, _ int) {
			if kind == cluster.ProposeEntry {
				select {
				case proposed <- struct{}{}:
				default:
				}
			}
		}
	})
	ctx := ctxT(t)
	nodes := c.running()
	var head uint64
	for _, n := range nodes {
		if err := n.ReadBarrier(ctx); err != nil {
			t.Fatal(err)
		}
		head = max(head, n.Info().Head)
	}
	var held []*gate
	for _, n := range nodes {
		mu.Lock()
		g := gates[n.spec.id]
		mu.Unlock()
		g.node.Store(n.Node)
		g.after.Store(int64(head))
		held = append(held, g)
	}
	released := false
	release := func() {
		if !released {
			released = true
			for _, g := range held {
				close(g.release)
			}
		}
	}
	defer release()

	type outcome struct {
		res contract.AppendResult
		err error
	}
	target := c.leader()
	for len(proposed) > 0 {
		<-proposed // entries proposed before the first append
	}
	first, second := make(chan outcome, 1), make(chan outcome, 1)
	go func() {
		r, err := target.Append(ctx, []contract.NewEvent{ev("pipelined", `{"n":1}`)})
		first <- outcome{r, err}
	}()
	for _, g := range held {
		select {
		case <-g.held:
		case <-time.After(waitFor):
			t.Fatal("the first append's apply never started on every node")
		}
	}
	go func() {
		r, err := target.Append(ctx, []contract.NewEvent{ev("pipelined", `{"n":2}`)})
		second <- outcome{r, err}
	}()
	// The first append's entry, then the next one the leader proposes: the
	// second append's, or one of its own duties that came first (the
	// cluster has just formed); either took the slot the first one held.
	for i := range 2 {
		select {
		case <-proposed:
		case <-time.After(waitFor):
			t.Fatalf("%d entries were proposed in %v, the first append's included, while its apply was held: "+
				"a committed entry still holds the leader's only proposal slot", i, waitFor)
		}
	}
	select {
	case o := <-first:
		t.Fatalf("the first append was answered (%+v, %v) while its apply was held", o.res, o.err)
	default:
	}
	release()
	var got []uint64
	for i, ch := range []chan outcome{first, second} {
		select {
		case o := <-ch:
			if o.err != nil {
				t.Fatalf("append %d: %v", i+1, o.err)
			}
			got = append(got, o.res.FirstSequenceNumber)
		case <-time.After(waitFor):
			t.Fatalf("append %d was not answered after the apply went on", i+1)
		}
	}
	if got[1] != got[0]+1 {
		t.Fatalf("sequence numbers %v: want the second right after the first", got)
	}
	res, err := target.Query(ctx, contract.EventQuery{Filters: []contract.EventFilter{{EventTypes: []string{"pipelined"}}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Events) != 2 || string(res.Events[0].Payload) != `{"n":1}` || string(res.Events[1].Payload) != `{"n":2}` {
		t.Fatalf("read back %s, want both appends in order", fmt.Sprint(res.Events))
	}
}
