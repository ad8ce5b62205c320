package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/factstr/factstr-go/contract"
	"github.com/factstr/factstr-go/internal/testcluster"
)

// TestGroupSurvivesNodeKill: three Go clients, each first connected to a
// different node of three real processes, run one member each of a
// consumer group while a writer appends. The node serving one member is
// killed (SIGKILL). Its client resumes the member on another node, the
// cluster releases the dead node's leases once gossip declares it failed,
// and the group goes on: every event is handled, each key's events are
// handled for the first time in order, and an event is handled twice only
// after the kill (the dead member's acknowledgements not yet stored),
// each such duplicate counted.
func TestGroupSurvivesNodeKill(t *testing.T) {
	skipShort(t)
	const accounts, partitions = 10, 6
	c := testcluster.Start(t, testcluster.Options{Nodes: 3})
	ctx := testCtx(t, 3*time.Minute)
	leader, err := c.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	addrs := c.Addrs()

	type handled struct {
		member  int
		account string
		n       int
		at      time.Time
	}
	var (
		mu  sync.Mutex
		log []handled
	)
	handler := func(member int) contract.StreamHandler {
		return func(_ context.Context, batch []contract.EventRecord) error {
			mu.Lock()
			defer mu.Unlock()
			for _, r := range batch {
				var p struct {
					Account string `json:"account"`
					N       int    `json:"n"`
				}
				if err := json.Unmarshal(r.Payload, &p); err != nil {
					return err
				}
				log = append(log, handled{member, p.Account, p.N, time.Now()})
			}
			return nil
		}
	}
	for i := range 3 {
		// Rotated, so member i subscribes on node i first.
		cl := c.Client(t, append(append([]string{}, addrs[i:]...), addrs[:i]...)...)
		if _, err := cl.StreamAllDurable(ctx, "ledger", handler(i), contract.Group(contract.KeyField("account"), partitions)); err != nil {
			t.Fatalf("member %d: %v", i, err)
		}
	}
	admin := c.Client(t)
	groupInfo := func() (contract.DurableInfo, error) {
		return admin.GetDurable(ctx, "ledger")
	}
	waitFor(t, 30*time.Second, func() bool {
		info, err := groupInfo()
		if err != nil || info.Group == nil || len(info.Group.Members) != 3 {
			return false
		}
		per := map[string]int{}
		for _, p := range info.Group.Partitions {
			per[p.Holder]++
		}
		return per[""] == 0 && len(per) == 3
	}, func() string {
		info, err := groupInfo()
		return fmt.Sprintf("three members sharing the partitions (%+v, %v)", info.Group, err)
	})

	writer := c.Client(t)
	sent := map[string]int{}
	appendRounds := func(n int) {
		for range n {
			batch := make([]contract.NewEvent, accounts)
			for a := range batch {
				acc := fmt.Sprintf("acc-%d", a)
				sent[acc]++
				batch[a] = ev("Posted", fmt.Sprintf(`{"account":%q,"n":%d}`, acc, sent[acc]))
			}
			if _, err := writer.Append(ctx, batch); err != nil {
				t.Fatalf("append: %v", err)
			}
		}
	}
	appendRounds(20)
	victim := (leader + 1) % 3 // a follower: the writes go on without an election
	killedAt := time.Now()
	if err := c.Node(victim).Kill(); err != nil {
		t.Fatal(err)
	}
	appendRounds(20)
	total := 40 * accounts
	waitFor(t, 60*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		seen := map[[2]any]bool{}
		for _, h := range log {
			seen[[2]any{h.account, h.n}] = true
		}
		return len(seen) == total
	}, func() string {
		mu.Lock()
		defer mu.Unlock()
		return fmt.Sprintf("every one of %d events handled (%d handlings so far)", total, len(log))
	})
	waitFor(t, 60*time.Second, func() bool {
		info, err := groupInfo()
		if err != nil || info.Group == nil {
			return false
		}
		for _, p := range info.Group.Partitions {
			if p.Holder == "" || strings.HasPrefix(p.Holder, c.Node(victim).ID()+"/") {
				return false
			}
		}
		return true
	}, func() string {
		info, _ := groupInfo()
		return fmt.Sprintf("no partition held by the killed node (%+v)", info.Group)
	})

	mu.Lock()
	defer mu.Unlock()
	highest := map[string]int{}
	dups := 0
	for _, h := range log {
		if h.n <= highest[h.account] {
			dups++
			if h.at.Before(killedAt) {
				t.Errorf("%s n=%d was handled again before the kill", h.account, h.n)
			}
			continue
		}
		if h.n != highest[h.account]+1 {
			t.Errorf("%s: n=%d handled after n=%d: a gap or out of order", h.account, h.n, highest[h.account])
		}
		highest[h.account] = h.n
	}
	t.Logf("%d events, %d handlings, %d redelivered after the kill of %s", total, len(log), dups, c.Node(victim).ID())
}
