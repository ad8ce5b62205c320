package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/factstr/factstr-go/contract"
	"github.com/factstr/factstr-go/internal/testcluster"
)

// TestGroupSurvivesMemberKill: a consumer group of three members, two in
// this test and one a separate process (factstr-node tail --durable
// --group-key), on three real nodes. The member process is killed
// (SIGKILL) while events flow: its connection ends, the node serving it
// releases its member slot and partitions, and the two members left take
// them over. Every event is handled, each key's events are first handled
// in order, and an event is handled twice only after the kill (what the
// dead member handled but had not acknowledged), each one counted.
func TestGroupSurvivesMemberKill(t *testing.T) {
	skipShort(t)
	const accounts, partitions = 10, 6
	c := testcluster.Start(t, testcluster.Options{Nodes: 3})
	ctx := testCtx(t, 3*time.Minute)
	bin := testcluster.Build(t)
	addrs := c.Addrs()

	type handled struct {
		member  string
		account string
		n       int
		at      time.Time
	}
	var (
		mu  sync.Mutex
		log []handled
	)
	record := func(member string, payload []byte, at time.Time) error {
		var p struct {
			Account string `json:"account"`
			N       int    `json:"n"`
		}
		if err := json.Unmarshal(payload, &p); err != nil {
			return err
		}
		mu.Lock()
		log = append(log, handled{member, p.Account, p.N, at})
		mu.Unlock()
		return nil
	}
	group := contract.Group(contract.KeyField("account"), partitions)
	for i := range 2 {
		member := fmt.Sprintf("in-test-%d", i)
		cl := c.Client(t, append(append([]string{}, addrs[i:]...), addrs[:i]...)...)
		sub, err := cl.StreamAllDurable(ctx, "ledger", func(_ context.Context, batch []contract.EventRecord) error {
			for _, r := range batch {
				if err := record(member, r.Payload, time.Now()); err != nil {
					return err
				}
			}
			return nil
		}, group)
		if err != nil {
			t.Fatalf("member %s: %v", member, err)
		}
		defer sub.Unsubscribe()
	}

	// The third member: a process printing what it handles as JSON lines.
	out := newLines(openLog(t, c.Dir(), "member.stdout"))
	errLog := newLines(openLog(t, c.Dir(), "member.stderr"))
	cmd := exec.Command(bin, "tail", "--addr", addrs[2], "--durable", "ledger", "--group-key", "account", "--partitions", fmt.Sprint(partitions))
	cmd.Stdout, cmd.Stderr = out, errLog
	proc, err := testcluster.Spawn(t, "member", cmd)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := errLog.Wait(30*time.Second, "following"); !ok {
		t.Fatalf("the member process did not start (%s); stderr:\n%s", proc.ExitString(), strings.Join(errLog.Lines(), "\n"))
	}
	admin := c.Client(t)
	holders := func() (map[string]int, error) {
		info, err := admin.GetDurable(ctx, "ledger")
		if err != nil || info.Group == nil {
			return nil, err
		}
		per := map[string]int{}
		for _, p := range info.Group.Partitions {
			per[p.Holder]++
		}
		return per, nil
	}
	waitFor(t, 30*time.Second, func() bool {
		per, err := holders()
		return err == nil && per[""] == 0 && len(per) == 3
	}, func() string {
		per, err := holders()
		return fmt.Sprintf("three members sharing the partitions (%v, %v)", per, err)
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
	if !out.WaitCount(30*time.Second, 1) {
		t.Fatal("the member process handled nothing")
	}
	if err := proc.Kill(); err != nil {
		t.Fatal(err)
	}
	killedAt := time.Now()
	// What the process printed, it handled (it prints before it acks).
	for _, line := range out.Lines() {
		var r struct {
			Payload json.RawMessage `json:"payload"`
		}
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("member output %q: %v", line, err)
		}
		if err := record("process", r.Payload, killedAt.Add(-time.Millisecond)); err != nil {
			t.Fatal(err)
		}
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
	waitFor(t, 30*time.Second, func() bool {
		per, err := holders()
		return err == nil && per[""] == 0 && len(per) == 2
	}, func() string {
		per, err := holders()
		return fmt.Sprintf("the two members left holding every partition (%v, %v)", per, err)
	})

	mu.Lock()
	defer mu.Unlock()
	// Partitions did not move before the kill (the members shared them
	// before the first append), so each key was handled by one member
	// until then: the process's lines, stamped just before the kill, sort
	// before anything handled of their keys after it.
	sort.SliceStable(log, func(i, j int) bool { return log[i].at.Before(log[j].at) })
	highest := map[string]int{}
	dups, byProcess := 0, 0
	for _, h := range log {
		if h.member == "process" {
			byProcess++
		}
		if h.n <= highest[h.account] {
			dups++
			if h.at.Before(killedAt) {
				t.Errorf("%s n=%d was handled again before the kill (by %s)", h.account, h.n, h.member)
			}
			continue
		}
		if h.n != highest[h.account]+1 {
			t.Errorf("%s: n=%d handled after n=%d: a gap or out of order", h.account, h.n, highest[h.account])
		}
		highest[h.account] = h.n
	}
	if byProcess == 0 {
		t.Error("the member process handled nothing before it was killed")
	}
	t.Logf("%d events, %d handlings (%d by the killed member process), %d redelivered after the kill", total, len(log), byProcess, dups)
}
