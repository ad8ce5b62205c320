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
// apply answered, and the second append was not even proposed while the
// first one's apply was held here.
func TestNextEntryOverlapsTheApply(t *testing.T) {
	type gate struct {
		armed    atomic.Bool
		held     chan struct{} // closed when an apply is held
		release  chan struct{}
		proposed chan struct{} // a Raft entry this node proposed as leader
	}
	var mu sync.Mutex
	gates := map[string]*gate{}
	c := newCluster(t, 3, func(cfg *cluster.Config) {
		g := &gate{held: make(chan struct{}), release: make(chan struct{}), proposed: make(chan struct{}, 64)}
		mu.Lock()
		gates[cfg.NodeID] = g
		mu.Unlock()
		cfg.MaxInflightProposals = 1
		cfg.OnApply = func(int, int, time.Duration) {
			if g.armed.CompareAndSwap(true, false) {
				close(g.held)
				<-g.release
			}
		}
		cfg.OnPropose = func(kind string, _, _ int) {
			if kind == cluster.ProposeEntry {
				select {
				case g.proposed <- struct{}{}:
				default:
				}
			}
		}
	})
	leader := c.leader()
	mu.Lock()
	g := gates[leader.spec.id]
	mu.Unlock()
	released := false
	defer func() {
		if !released {
			close(g.release)
		}
	}()

	ctx := ctxT(t)
	g.armed.Store(true)
	type outcome struct {
		res contract.AppendResult
		err error
	}
	first, second := make(chan outcome, 1), make(chan outcome, 1)
	go func() {
		r, err := leader.Append(ctx, []contract.NewEvent{ev("pipelined", `{"n":1}`)})
		first <- outcome{r, err}
	}()
	select {
	case <-g.held:
	case <-time.After(waitFor):
		t.Fatal("the first append's apply never started on the leader")
	}
	for len(g.proposed) > 0 {
		<-g.proposed // the first append's entry
	}
	go func() {
		r, err := leader.Append(ctx, []contract.NewEvent{ev("pipelined", `{"n":2}`)})
		second <- outcome{r, err}
	}()
	select {
	case <-g.proposed:
	case <-time.After(waitFor):
		t.Fatalf("the second append was not proposed in %v while the first entry's apply was held: "+
			"a committed entry still holds the leader's only proposal slot", waitFor)
	}
	select {
	case o := <-first:
		t.Fatalf("the first append was answered (%+v, %v) while its apply was held", o.res, o.err)
	default:
	}
	close(g.release)
	released = true
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
	res, err := leader.Query(ctx, contract.EventQuery{Filters: []contract.EventFilter{{EventTypes: []string{"pipelined"}}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Events) != 2 || string(res.Events[0].Payload) != `{"n":1}` || string(res.Events[1].Payload) != `{"n":2}` {
		t.Fatalf("read back %s, want both appends in order", fmt.Sprint(res.Events))
	}
}
