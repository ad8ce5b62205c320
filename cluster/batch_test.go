package cluster_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/factstr/factstr-go/cluster"
	"github.com/factstr/factstr-go/contract"
	"github.com/factstr/factstr-go/fsm/command"
)

func seatQuery(seat string) contract.EventQuery {
	return contract.EventQuery{Filters: []contract.EventFilter{{
		EventTypes:        []string{"seat-reserved"},
		PayloadPredicates: []json.RawMessage{json.RawMessage(fmt.Sprintf(`{"seat":%q}`, seat))},
	}}}
}

func seatEvent(seat, user string) []contract.NewEvent {
	return []contract.NewEvent{ev("seat-reserved", fmt.Sprintf(`{"seat":%q,"user":%q}`, seat, user))}
}

// TestBatchOutcomesReachTheirCallers: commands that the proposer takes as
// one Raft entry succeed, conflict and fail validation each on their own;
// an AppendIf later in the entry sees the appends before it; every caller
// gets its own command's outcome. On the leader and, forwarded as one
// batch, from a follower, where the leader also refuses what no follower
// may send.
func TestBatchOutcomesReachTheirCallers(t *testing.T) {
	c := newCluster(t, 3, nil)
	for _, tc := range []struct {
		name string
		node func() *testNode
	}{
		{"leader", c.leader},
		{"follower", c.follower},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := ctxT(t)
			n := tc.node()
			seat := "s-" + tc.name
			head := n.Info().Head
			if err := n.ReadBarrier(ctx); err != nil {
				t.Fatal(err)
			}
			head = max(head, n.Info().Head)
			key := func(i int) string { return fmt.Sprintf("%s-%d", tc.name, i) }
			cmds := []command.Command{
				command.Append{Events: seatEvent(seat, "ann"), IdempotencyKey: key(0)},
				// Expects the context to be empty: the append before it in
				// the same entry made it non-empty.
				command.AppendIf{Events: seatEvent(seat, "bob"), Context: seatQuery(seat), Expected: 0, IdempotencyKey: key(1)},
				// Expects exactly what the first command appended.
				command.AppendIf{Events: seatEvent(seat, "cid"), Context: seatQuery(seat), Expected: head + 1, IdempotencyKey: key(2)},
				// Not JSON: fails Apply's own check, alone.
				command.Append{Events: []contract.NewEvent{ev("seat-reserved", `{"seat":`)}, IdempotencyKey: key(3)},
				command.Append{Events: seatEvent(seat, "dan"), IdempotencyKey: key(4)},
			}
			if tc.name == "follower" {
				cmds = append(cmds,
					// Only the leader prunes: refused from a peer.
					command.PruneIdempotency{Before: time.Now()},
					// A forwarded append always carries a key.
					command.Append{Events: seatEvent(seat, "eve")},
				)
			}
			out := cluster.ProposeTogether(ctx, n.Node, cmds)
			var conflict *contract.ConflictError
			for i, o := range out {
				if o.Err != nil {
					t.Fatalf("command %d: proposal failed: %v", i, o.Err)
				}
			}
			if r := out[0].Result; r.Err != nil || r.Append.FirstSequenceNumber != head+1 {
				t.Fatalf("append 0: %+v, want sequence %d", r, head+1)
			}
			if r := out[1].Result; !errors.As(r.Err, &conflict) || conflict.Expected != 0 || conflict.Actual != head+1 {
				t.Fatalf("append-if 1: %+v, want a conflict expected 0 actual %d", r, head+1)
			}
			if r := out[2].Result; r.Err != nil || r.Append.FirstSequenceNumber != head+2 {
				t.Fatalf("append-if 2: %+v, want sequence %d", r, head+2)
			}
			if r := out[3].Result; !errors.Is(r.Err, contract.ErrInvalidEvent) {
				t.Fatalf("append 3: %+v, want ErrInvalidEvent", r)
			}
			if r := out[4].Result; r.Err != nil || r.Append.FirstSequenceNumber != head+3 {
				t.Fatalf("append 4: %+v, want sequence %d", r, head+3)
			}
			if tc.name == "follower" {
				for _, i := range []int{5, 6} {
					if r := out[i].Result; !errors.Is(r.Err, cluster.ErrRefusedFromPeer) {
						t.Fatalf("command %d: %+v, want ErrRefusedFromPeer", i, r)
					}
				}
			}
			// One entry: every proposed command shares its index.
			for i := range 5 {
				if out[i].Index != out[0].Index || out[0].Index == 0 {
					t.Fatalf("command %d in entry %d, command 0 in entry %d: not one entry", i, out[i].Index, out[0].Index)
				}
			}
			res, err := n.Query(ctx, seatQuery(seat))
			if err != nil {
				t.Fatal(err)
			}
			var users []string
			for _, e := range res.Events {
				var p struct{ User string }
				_ = json.Unmarshal(e.Payload, &p)
				users = append(users, p.User)
			}
			if fmt.Sprint(users) != "[ann cid dan]" {
				t.Fatalf("log holds %v, want [ann cid dan]", users)
			}
		})
	}
}

// TestForwardedAppendsSurviveLeaderChanges: appends forwarded by a follower
// over its stream while leadership moves twice are each in the log exactly
// once if they were acknowledged, and at most once if their outcome was
// unknown to the caller; nothing is lost, nothing doubled.
func TestForwardedAppendsSurviveLeaderChanges(t *testing.T) {
	c := newCluster(t, 3, nil)
	ctx := ctxT(t)
	writer := c.follower()
	others := func() []*testNode {
		var out []*testNode
		for _, n := range c.running() {
			if n != writer {
				out = append(out, n)
			}
		}
		return out
	}

	const workers = 8
	var (
		mu    sync.Mutex
		acked = map[string]uint64{} // id -> sequence number
		next  atomic.Int64
		stop  = make(chan struct{})
		wg    sync.WaitGroup
	)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				id := fmt.Sprintf("e%d", next.Add(1))
				actx, cancel := context.WithTimeout(ctx, 10*time.Second)
				r, err := writer.Append(actx, []contract.NewEvent{ev("tick", fmt.Sprintf(`{"id":%q}`, id))})
				cancel()
				if err == nil {
					mu.Lock()
					acked[id] = r.FirstSequenceNumber
					mu.Unlock()
				}
			}
		}()
	}
	countAcked := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(acked)
	}
	waitAcked := func(n int) {
		deadline := time.Now().Add(waitFor)
		for countAcked() < n {
			if time.Now().After(deadline) {
				t.Fatalf("only %d appends acknowledged, want %d", countAcked(), n)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitAcked(50)
	for round := range 2 {
		// Move leadership to the other node, never to the writer, so its
		// appends keep going through its forward stream.
		leader := c.waitStable()
		var target *testNode
		for _, n := range others() {
			if n != leader {
				target = n
			}
		}
		if _, err := leader.Admin().TransferLeadership(ctx, target.ID()); err != nil {
			t.Fatalf("round %d: transfer leadership to %s: %v", round, target.ID(), err)
		}
		if l := c.waitStable(); l != target {
			t.Fatalf("round %d: leader is %s, want %s", round, l.ID(), target.ID())
		}
		waitAcked(countAcked() + 50)
	}
	close(stop)
	wg.Wait()

	if err := writer.ReadBarrier(ctx); err != nil {
		t.Fatal(err)
	}
	res, err := writer.Query(ctx, contract.EventQuery{Filters: []contract.EventFilter{{EventTypes: []string{"tick"}}}})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]uint64{}
	for _, e := range res.Events {
		var p struct{ ID string }
		if err := json.Unmarshal(e.Payload, &p); err != nil {
			t.Fatal(err)
		}
		if first, dup := seen[p.ID]; dup {
			t.Fatalf("append %s is in the log twice: sequence %d and %d", p.ID, first, e.SequenceNumber)
		}
		seen[p.ID] = e.SequenceNumber
	}
	for id, seq := range acked {
		if got, ok := seen[id]; !ok || got != seq {
			t.Fatalf("acknowledged append %s (sequence %d) is in the log at %d (present: %v)", id, seq, got, ok)
		}
	}
	t.Logf("%d appends acknowledged, %d in the log, %d outcomes unknown to callers", len(acked), len(seen), int(next.Load())-len(acked))
}
