//go:build unix

package e2e

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/factstr/factstr-go/contract"
	"github.com/factstr/factstr-go/internal/testcluster"
)

// TestKillLeaderWhileAppending SIGKILLs the leader process while several
// goroutines append through one client that knows all three nodes. The
// client must ride through the failover on its own; every acknowledged
// append must be on both survivors (and, after a restart, on the killed
// node) at its sequence number, in a gapless log with no duplicate.
func TestKillLeaderWhileAppending(t *testing.T) {
	skipShort(t)
	const (
		writers         = 4
		acksBeforeKill  = 60
		acksAfterKill   = 25               // per writer, each started after the kill
		errorWindow     = 10 * time.Second // errors are tolerated only this long after the kill
		maxFailoverTime = 20 * time.Second // from the kill to the first append acknowledged after it
	)
	c := testcluster.Start(t, testcluster.Options{Nodes: 3})
	ctx := testCtx(t, 3*time.Minute)
	leader, err := c.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cl := c.Client(t) // all three nodes
	t.Logf("leader is %s; writers append through a client over %v", c.Node(leader).ID(), c.Addrs())

	type ack struct {
		seq     uint64
		payload string
		started time.Time
		took    time.Duration
	}
	type failure struct {
		at      time.Time
		payload string
		err     error
	}
	var (
		mu        sync.Mutex
		acks      []ack
		failures  []failure
		killedAt  atomic.Pointer[time.Time]
		afterKill [writers]atomic.Int64
		stop      = make(chan struct{})
		wg        sync.WaitGroup
	)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				payload := fmt.Sprintf(`{"writer":%d,"i":%d}`, w, i)
				start := time.Now()
				res, err := cl.Append(ctx, []contract.NewEvent{ev("e2e-failover", payload)})
				took := time.Since(start)
				mu.Lock()
				if err != nil {
					failures = append(failures, failure{at: time.Now(), payload: payload, err: err})
				} else {
					if res.CommittedCount != 1 || res.FirstSequenceNumber != res.LastSequenceNumber || res.FirstSequenceNumber == 0 {
						t.Errorf("Append of one event returned %+v", res)
					}
					acks = append(acks, ack{seq: res.FirstSequenceNumber, payload: payload, started: start, took: took})
				}
				mu.Unlock()
				if k := killedAt.Load(); err == nil && k != nil && start.After(*k) {
					afterKill[w].Add(1)
				}
				if err != nil && ctx.Err() != nil {
					return
				}
			}
		}()
	}
	defer func() { // on an early t.Fatal
		select {
		case <-stop:
		default:
			close(stop)
		}
		wg.Wait()
	}()
	nAcks := func() int { mu.Lock(); defer mu.Unlock(); return len(acks) }
	waitFor(t, 30*time.Second, func() bool { return nAcks() >= acksBeforeKill },
		func() string {
			return fmt.Sprintf("%d acknowledged appends before the kill (have %d)", acksBeforeKill, nAcks())
		})

	if err := c.Node(leader).Kill(); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	killedAt.Store(&now)
	t.Logf("SIGKILLed leader %s after %d acknowledged appends", c.Node(leader).ID(), nAcks())

	minAfter := func() int64 {
		m := afterKill[0].Load()
		for i := range afterKill {
			m = min(m, afterKill[i].Load())
		}
		return m
	}
	waitFor(t, 60*time.Second, func() bool { return minAfter() >= acksAfterKill },
		func() string {
			mu.Lock()
			defer mu.Unlock()
			return fmt.Sprintf("every writer to get %d appends acknowledged after the kill (min %d; %d errors so far, last: %v)",
				acksAfterKill, minAfter(), len(failures), lastErr(failures, func(f failure) error { return f.err }))
		})
	close(stop)
	wg.Wait()

	mu.Lock()
	defer mu.Unlock()
	kill := *killedAt.Load()

	// Errors: none outside a bounded window after the kill.
	for _, f := range failures {
		d := f.at.Sub(kill)
		t.Logf("append %s failed %v after the kill: %v", f.payload, d.Round(time.Millisecond), f.err)
		if d < 0 || d > errorWindow {
			t.Errorf("append %s failed %v after the kill (allowed only within %v after it): %v", f.payload, d.Round(time.Millisecond), errorWindow, f.err)
		}
	}
	// Failover time and slowest call.
	var firstAfter time.Time
	var slowest ack
	for _, a := range acks {
		if a.started.After(kill) && (firstAfter.IsZero() || a.started.Add(a.took).Before(firstAfter)) {
			firstAfter = a.started.Add(a.took)
		}
		if a.took > slowest.took {
			slowest = a
		}
	}
	t.Logf("%d appends acknowledged, %d failed; first acknowledged append started after the kill returned %v after it; slowest call %v (seq %d)",
		len(acks), len(failures), firstAfter.Sub(kill).Round(time.Millisecond), slowest.took.Round(time.Millisecond), slowest.seq)
	if d := firstAfter.Sub(kill); d > maxFailoverTime {
		t.Errorf("the first append after the kill took until %v after it; want under %v", d.Round(time.Millisecond), maxFailoverTime)
	}

	// Acknowledged sequence numbers are distinct.
	bySeq := make(map[uint64]string, len(acks))
	var maxSeq uint64
	for _, a := range acks {
		if p, dup := bySeq[a.seq]; dup {
			t.Fatalf("sequence number %d acknowledged twice: for %s and %s", a.seq, p, a.payload)
		}
		bySeq[a.seq] = a.payload
		maxSeq = max(maxSeq, a.seq)
	}
	failed := make(map[string]bool, len(failures))
	for _, f := range failures {
		failed[f.payload] = true
	}

	// The head, linearizably, then each survivor's local log once it has
	// applied that far.
	head, err := cl.Query(ctx, contract.EventQuery{})
	if err != nil {
		t.Fatal(err)
	}
	h := head.CurrentContextVersion
	if h < maxSeq {
		t.Fatalf("linearizable head %d is below the highest acknowledged sequence number %d", h, maxSeq)
	}
	var logs [][]contract.EventRecord
	var survivors []int
	for i := range c.Len() {
		if i == leader {
			continue
		}
		survivors = append(survivors, i)
		recs, err := localLog(ctx, c.Client(t, c.Node(i).Addr()), h)
		if err != nil {
			t.Fatalf("local read on survivor %s: %v", c.Node(i).ID(), err)
		}
		who := "survivor " + c.Node(i).ID()
		checkLog(t, who, recs, h, bySeq, failed)
		logs = append(logs, recs)
	}
	if d := diffLogs(logs[0], logs[1]); d != "" {
		t.Fatalf("survivors %s and %s hold different logs: %s", c.Node(survivors[0]).ID(), c.Node(survivors[1]).ID(), d)
	}

	// The killed node comes back and converges to the same log.
	if err := c.Node(leader).Restart(); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	recs, err := localLog(ctx, c.Client(t, c.Node(leader).Addr()), h)
	if err != nil {
		t.Fatalf("local read on the restarted node %s: %v", c.Node(leader).ID(), err)
	}
	checkLog(t, "restarted "+c.Node(leader).ID(), recs, h, bySeq, failed)
	if d := diffLogs(logs[0], recs); d != "" {
		t.Fatalf("the restarted node %s and survivor %s hold different logs: %s", c.Node(leader).ID(), c.Node(survivors[0]).ID(), d)
	}
	t.Logf("all three nodes hold the same %d-event log", len(recs))
}

// checkLog checks one node's log: exactly head events numbered 1..head,
// every acknowledged append at its sequence number, every other event an
// append whose call failed (its outcome was unknown to the caller), and no
// payload twice.
func checkLog(t *testing.T, who string, recs []contract.EventRecord, head uint64, acked map[uint64]string, failed map[string]bool) {
	t.Helper()
	if uint64(len(recs)) != head {
		t.Fatalf("%s: %d events, want %d (the linearizable head)", who, len(recs), head)
	}
	checkGapless(t, who, recs)
	seen := make(map[string]uint64, len(recs))
	var unacked []string
	for _, r := range recs {
		p := string(r.Payload)
		if s, dup := seen[p]; dup {
			t.Errorf("%s: payload %s is in the log twice, at %d and %d (a retried append was applied twice)", who, p, s, r.SequenceNumber)
		}
		seen[p] = r.SequenceNumber
		want, ok := acked[r.SequenceNumber]
		switch {
		case ok && !sameJSON(r.Payload, []byte(want)):
			t.Errorf("%s: sequence %d holds %s, but the append acknowledged with %d was %s", who, r.SequenceNumber, p, r.SequenceNumber, want)
		case !ok && !failed[compactKey(p)] && !failed[p]:
			t.Errorf("%s: sequence %d holds %s, which no append call wrote (neither acknowledged nor failed)", who, r.SequenceNumber, p)
		case !ok:
			unacked = append(unacked, fmt.Sprintf("%d=%s", r.SequenceNumber, p))
		}
	}
	seqs := make([]uint64, 0, len(acked))
	for s := range acked {
		seqs = append(seqs, s)
	}
	slices.Sort(seqs)
	for _, s := range seqs {
		if s > uint64(len(recs)) {
			t.Errorf("%s: acknowledged sequence %d (%s) is missing; the log ends at %d", who, s, acked[s], len(recs))
		}
	}
	if len(unacked) > 0 {
		sort.Strings(unacked)
		t.Logf("%s: %d event(s) from appends that returned an error are in the log: %s", who, len(unacked), strings.Join(unacked, ", "))
	}
}

func compactKey(p string) string { return strings.ReplaceAll(p, " ", "") }

func lastErr[T any](xs []T, f func(T) error) error {
	if len(xs) == 0 {
		return nil
	}
	return f(xs[len(xs)-1])
}
