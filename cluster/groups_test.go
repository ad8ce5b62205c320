package cluster_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/factstr/factstr-go/contract"
)

// groupTrace records, in handling order, which member handled which event.
type groupTrace struct {
	mu      sync.Mutex
	handled []groupHandled
	changed chan struct{}
}

type groupHandled struct {
	member  int
	seq     uint64
	account string
	n       int
}

func (g *groupTrace) handler(member int) contract.StreamHandler {
	return func(_ context.Context, batch []contract.EventRecord) error {
		g.mu.Lock()
		defer g.mu.Unlock()
		for _, r := range batch {
			var p struct {
				Account string `json:"account"`
				N       int    `json:"n"`
			}
			_ = json.Unmarshal(r.Payload, &p)
			g.handled = append(g.handled, groupHandled{member, r.SequenceNumber, p.Account, p.N})
		}
		close(g.changed)
		g.changed = make(chan struct{})
		return nil
	}
}

// coversAll reports whether every sequence number 1..head was handled.
func (g *groupTrace) coversAll(head uint64) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	seen := make(map[uint64]bool, len(g.handled))
	for _, h := range g.handled {
		seen[h.seq] = true
	}
	for s := uint64(1); s <= head; s++ {
		if !seen[s] {
			return false
		}
	}
	return true
}

// TestGroupMembersOnThreeNodesSurviveANodeKill: a consumer group with one
// member on each of three nodes shares the partitions; when a node is
// killed, the leader releases its member's leases once gossip declares it
// failed, the survivors take its partitions from their stored cursors,
// and every event is handled, each key's events in order per member and
// across the survivors. Events handled twice are only those the killed
// member had handled (its last acknowledgements not yet stored), and are
// counted.
func TestGroupMembersOnThreeNodesSurviveANodeKill(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster and waits for failure detection")
	}
	c := newCluster(t, 3, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 2*waitFor)
	defer cancel()
	const partitions, accounts = 6, 12
	trace := &groupTrace{changed: make(chan struct{})}
	nodes := c.running()
	for i, n := range nodes {
		if _, err := n.StreamAllDurable(ctx, "projection", trace.handler(i), contract.Group(contract.KeyField("account"), partitions)); err != nil {
			t.Fatalf("member %d on %s: %v", i, n.ID(), err)
		}
	}
	eventually(t, "three members with two partitions each", func() bool {
		info, err := nodes[0].DurableAdmin().GetDurable(ctx, "projection")
		if err != nil || info.Group == nil || len(info.Group.Members) != 3 {
			return false
		}
		per := map[string]int{}
		for _, p := range info.Group.Partitions {
			per[p.Holder]++
		}
		return len(per) == 3 && per[""] == 0 && per[info.Group.Members[0]] == 2
	})

	// Append from the leader while a follower is killed in the middle.
	victim := c.follower()
	victimIdx := -1
	for i, n := range nodes {
		if n == victim {
			victimIdx = i
		}
	}
	var head uint64
	round := 0
	appendRound := func(w *testNode) {
		batch := make([]contract.NewEvent, accounts)
		for a := range batch {
			batch[a] = ev("Posted", fmt.Sprintf(`{"account":"acc-%d","n":%d}`, a, round))
		}
		res, err := w.Append(ctx, batch)
		if err != nil {
			t.Fatalf("append round %d: %v", round, err)
		}
		head = res.LastSequenceNumber
		round++
	}
	for range 20 {
		appendRound(c.leader())
	}
	c.remove(victim)
	victim.kill()
	var killedAt int
	trace.mu.Lock()
	killedAt = len(trace.handled)
	trace.mu.Unlock()
	leader := c.waitStable()
	for range 20 {
		appendRound(leader)
	}
	eventually(t, "the survivors hold every partition, the killed member's slot released", func() bool {
		info, err := leader.DurableAdmin().GetDurable(ctx, "projection")
		if err != nil || info.Group == nil || len(info.Group.Members) != 2 {
			return false
		}
		for _, p := range info.Group.Partitions {
			if p.Holder == "" || strings.HasPrefix(p.Holder, victim.ID()+"/") {
				return false
			}
		}
		return true
	})
	eventually(t, "every event handled", func() bool { return trace.coversAll(head) })

	trace.mu.Lock()
	defer trace.mu.Unlock()
	count := map[uint64]int{}
	byVictim := map[uint64]bool{}
	lastBy := map[[2]any]int{} // (member, account) → last n
	lastSurvivors := map[string]int{}
	for i, h := range trace.handled {
		count[h.seq]++
		if h.member == victimIdx {
			byVictim[h.seq] = true
			if i >= killedAt {
				t.Errorf("the killed member handled event %d after the kill", h.seq)
			}
		}
		k := [2]any{h.member, h.account}
		if last, ok := lastBy[k]; ok && h.n <= last {
			t.Errorf("member %d handled %s n=%d after n=%d: out of order", h.member, h.account, h.n, last)
		}
		lastBy[k] = h.n
		if h.member != victimIdx {
			if last, ok := lastSurvivors[h.account]; ok && h.n <= last {
				t.Errorf("the survivors handled %s n=%d after n=%d: out of order or twice", h.account, h.n, last)
			}
			lastSurvivors[h.account] = h.n
		}
	}
	dups := 0
	for seq, n := range count {
		if n > 1 {
			dups += n - 1
			if !byVictim[seq] || n > 2 {
				t.Errorf("event %d was handled %d times, and not as a redelivery of the killed member's", seq, n)
			}
		}
	}
	t.Logf("%d events, %d handled twice (the killed member's unstored acknowledgements), failover after the kill", head, dups)
}
