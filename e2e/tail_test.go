//go:build unix

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/factstr/factstr-go/contract"
	"github.com/factstr/factstr-go/internal/testcluster"
)

// batchLog records the batches a stream handler received.
type batchLog struct {
	mu      sync.Mutex
	batches [][]contract.EventRecord
}

func (b *batchLog) handler(_ context.Context, batch []contract.EventRecord) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.batches = append(b.batches, append([]contract.EventRecord(nil), batch...))
	return nil
}

func (b *batchLog) snapshot() [][]contract.EventRecord {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([][]contract.EventRecord(nil), b.batches...)
}

// last is the highest sequence number delivered so far.
func (b *batchLog) last() uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	var m uint64
	for _, bt := range b.batches {
		for _, r := range bt {
			m = max(m, r.SequenceNumber)
		}
	}
	return m
}

// TestTailReconnectsAfterNodeKill follows the log with `factstr-node tail`
// (a subprocess), a live StreamAll and a durable StreamAllDurable through
// the Go client, all first connected to the node that is then SIGKILLed
// while appends go on. Live streams must deliver exactly the sequence
// numbers after their subscription point, each once, in order; the durable
// stream may repeat only the batch in flight at the kill.
func TestTailReconnectsAfterNodeKill(t *testing.T) {
	skipShort(t)
	for _, victim := range []string{"follower", "leader"} {
		t.Run("kill "+victim, func(t *testing.T) { testTailReconnects(t, victim == "leader") })
	}
}

func testTailReconnects(t *testing.T, killLeader bool) {
	const (
		preAppended   = 5
		appendsBefore = 30
		appendsAfter  = 30
	)
	bin := testcluster.Build(t)
	c := testcluster.Start(t, testcluster.Options{Nodes: 3})
	ctx := testCtx(t, 3*time.Minute)
	leader, err := c.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	victim := leader
	if !killLeader {
		if victim, err = c.Follower(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// The client picks targets round-robin from index 0: a fresh client's
	// first call goes to the first target, the victim.
	targets := []string{c.Node(victim).Addr()}
	for i := range c.Len() {
		if i != victim {
			targets = append(targets, c.Node(i).Addr())
		}
	}
	t.Logf("victim %s (leader %v); stream targets %v", c.Node(victim).ID(), killLeader, targets)

	writer := c.Client(t) // all nodes, in node order
	for i := range preAppended {
		if _, err := writer.Append(ctx, []contract.NewEvent{ev("e2e-tail", fmt.Sprintf(`{"pre":%d}`, i))}); err != nil {
			t.Fatal(err)
		}
	}

	// The tail subprocess: JSON lines on stdout.
	out := newLines(openLog(t, c.Dir(), "tail.stdout"))
	errLog := newLines(openLog(t, c.Dir(), "tail.stderr"))
	cmd := exec.Command(bin, "tail", "--addr", strings.Join(targets, ","))
	cmd.Stdout, cmd.Stderr = out, errLog
	tail, err := testcluster.Spawn(t, "tail", cmd)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := errLog.Wait(30*time.Second, "following"); !ok {
		t.Fatalf("tail did not start following within 30s (%s); stderr:\n%s", tail.ExitString(), strings.Join(errLog.Lines(), "\n"))
	}

	// A live and a durable stream through fresh clients (first target: the victim).
	var live, durable batchLog
	liveSub, err := c.Client(t, targets...).StreamAll(ctx, live.handler)
	if err != nil {
		t.Fatal(err)
	}
	defer liveSub.Unsubscribe()
	durSub, err := c.Client(t, targets...).StreamAllDurable(ctx, "e2e-tail", durable.handler)
	if err != nil {
		t.Fatal(err)
	}
	defer durSub.Unsubscribe()
	if got := durable.last(); got != preAppended {
		t.Fatalf("durable replay delivered through %d before StreamAllDurable returned, want %d", got, preAppended)
	}

	// Append in a loop; kill the victim part-way.
	var (
		acked    atomic.Int64
		appendMu sync.Mutex
		errs     []error
		stop     = make(chan struct{})
		done     = make(chan struct{})
	)
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := writer.Append(ctx, []contract.NewEvent{ev("e2e-tail", fmt.Sprintf(`{"i":%d}`, i))}); err != nil {
				appendMu.Lock()
				errs = append(errs, err)
				appendMu.Unlock()
				if ctx.Err() != nil {
					return
				}
				continue
			}
			acked.Add(1)
			time.Sleep(5 * time.Millisecond) // pace, so the kill lands mid-stream
		}
	}()
	stopAppends := func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		<-done
	}
	defer stopAppends()
	waitFor(t, 30*time.Second, func() bool { return acked.Load() >= appendsBefore },
		func() string { return fmt.Sprintf("%d appends before the kill (have %d)", appendsBefore, acked.Load()) })
	if err := c.Node(victim).Kill(); err != nil {
		t.Fatal(err)
	}
	atKill := acked.Load()
	t.Logf("SIGKILLed %s after %d appends; delivered so far: tail %d lines, live through %d, durable through %d",
		c.Node(victim).ID(), atKill, len(out.Lines()), live.last(), durable.last())
	waitFor(t, 60*time.Second, func() bool { return acked.Load() >= atKill+appendsAfter },
		func() string {
			return fmt.Sprintf("%d appends after the kill (have %d)", appendsAfter, acked.Load()-atKill)
		})
	stopAppends()
	for _, err := range errs {
		t.Errorf("append failed: %v", err)
	}

	// The log as committed; every stream must catch up with its end.
	res, err := writer.Query(ctx, contract.EventQuery{})
	if err != nil {
		t.Fatal(err)
	}
	all := res.Events
	checkGapless(t, "the log", all)
	head := uint64(len(all))
	waitFor(t, 90*time.Second, func() bool {
		return live.last() >= head && durable.last() >= head && out.WaitCount(0, int(head)-preAppended)
	}, func() string {
		return fmt.Sprintf("every stream to deliver through %d: tail has %d lines (want %d), live through %d, durable through %d",
			head, len(out.Lines()), int(head)-preAppended, live.last(), durable.last())
	})
	// A late duplicate would show up now.
	time.Sleep(500 * time.Millisecond)

	// The tail must exit 0 on SIGTERM.
	if clean, err := tail.Terminate(10 * time.Second); !clean || err != nil {
		t.Errorf("tail did not exit cleanly on SIGTERM: %v", err)
	}
	// Each client must have seen its stream lose the victim and resume.
	if !strings.Contains(strings.Join(errLog.Lines(), "\n"), "live stream lost its node") {
		t.Errorf("the tail subprocess never lost its stream: was it connected to the killed node? stderr:\n%s", strings.Join(errLog.Lines(), "\n"))
	}
	clientLog, _ := os.ReadFile(c.Dir() + "/clients.log")
	for _, want := range []string{"live stream lost its node", "durable stream lost its node"} {
		if !strings.Contains(string(clientLog), want) {
			t.Errorf("clients.log has no %q: was the stream connected to the killed node?", want)
		}
	}

	// Tail: exactly preAppended+1..head, in order, each once.
	var tailed []contract.EventRecord
	for _, ln := range out.Lines() {
		var r tailRecord
		if err := json.Unmarshal([]byte(ln), &r); err != nil {
			t.Fatalf("tail printed a line that is not a JSON record: %q: %v", ln, err)
		}
		tailed = append(tailed, contract.EventRecord{SequenceNumber: r.Seq, OccurredAt: r.OccurredAt, Type: r.Type, Payload: r.Payload})
	}
	checkExactly(t, "tail", tailed, all[preAppended:])
	checkExactly(t, "live StreamAll", flatten(live.snapshot()), all[preAppended:])

	// Durable: 1..head, where only the batch in flight at the kill may come twice.
	batches := durable.snapshot()
	var dedup []contract.EventRecord
	var last uint64
	rewinds := 0
	for i, b := range batches {
		first := b[0].SequenceNumber
		if first <= last {
			rewinds++
			prev := batches[i-1]
			if rewinds > 1 || first != prev[0].SequenceNumber || len(b) < len(prev) {
				t.Fatalf("durable stream went back from %d to %d: only the one batch in flight at the kill (%d..%d) may be delivered again",
					last, first, prev[0].SequenceNumber, prev[len(prev)-1].SequenceNumber)
			}
			t.Logf("durable stream delivered batch %d..%d again after resuming (the batch in flight at the kill)", first, prev[len(prev)-1].SequenceNumber)
			for _, r := range b {
				if r.SequenceNumber > last {
					dedup = append(dedup, r)
				}
			}
		} else {
			dedup = append(dedup, b...)
		}
		last = max(last, b[len(b)-1].SequenceNumber)
	}
	checkExactly(t, "durable StreamAllDurable (duplicates of the in-flight batch removed)", dedup, all)
}

func flatten(bs [][]contract.EventRecord) []contract.EventRecord {
	var out []contract.EventRecord
	for _, b := range bs {
		out = append(out, b...)
	}
	return out
}

// checkExactly fails unless got holds exactly the records of want, in order.
func checkExactly(t *testing.T, who string, got, want []contract.EventRecord) {
	t.Helper()
	seqs := func(rs []contract.EventRecord) string {
		var b strings.Builder
		for i, r := range rs {
			if i > 0 {
				b.WriteByte(' ')
			}
			fmt.Fprint(&b, r.SequenceNumber)
		}
		return b.String()
	}
	for i := range max(len(got), len(want)) {
		if i >= len(got) || i >= len(want) || got[i].SequenceNumber != want[i].SequenceNumber {
			t.Errorf("%s delivered sequence numbers\n  %s\nwant\n  %s", who, seqs(got), seqs(want))
			return
		}
		if !sameJSON(got[i].Payload, want[i].Payload) || got[i].Type != want[i].Type {
			t.Errorf("%s: sequence %d delivered as %s %s, committed as %s %s", who, got[i].SequenceNumber, got[i].Type, got[i].Payload, want[i].Type, want[i].Payload)
			return
		}
	}
}
