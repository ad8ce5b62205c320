package conformance

import (
	"cmp"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"github.com/factstr/factstr-go/contract"
)

func closeCases() []testCase {
	return []testCase{
		{"CallsReturnErrClosed", testCloseCalls},
		{"EndsSubscriptions", testCloseEndsSubscriptions},
		{"Twice", testCloseTwice},
		{"Concurrent", testCloseConcurrent},
	}
}

func concurrencyCases() []testCase {
	return []testCase{
		{"ParallelAppends", testConcurrentAppends},
		{"RacingAppendIf", testRacingAppendIf},
	}
}

func closeStore(t testing.TB, s contract.EventStore) {
	t.Helper()
	var err error
	within(t, "Close", func() { err = s.Close() })
	if err != nil {
		t.Errorf("Close of an open store returned %v, want nil", err)
	}
}

func testCloseCalls(t *testing.T, s contract.EventStore) {
	mustAppend(t, s, ev("A", `{}`))
	closeStore(t, s)
	rec := NewRecorder(nil)
	ctx := t.Context()
	stream := func(sub contract.Subscription, err error) error {
		if err == nil && sub != nil {
			sub.Unsubscribe()
		}
		return err
	}
	calls := []struct {
		name string
		call func() error
	}{
		{"Append", func() error { _, err := doAppend(s, evs(ev("A", `{}`))); return err }},
		{"AppendIf", func() error { _, err := doAppendIf(s, evs(ev("A", `{}`)), typeQ("A"), 1); return err }},
		{"Query", func() error { _, err := doQuery(s, contract.EventQuery{}); return err }},
		{"StreamAll", func() error { return stream(s.StreamAll(ctx, rec.Handle)) }},
		{"StreamTo", func() error { return stream(s.StreamTo(ctx, typeQ("A"), rec.Handle)) }},
		{"StreamTo (catch-up)", func() error { return stream(s.StreamTo(ctx, withMin(typeQ("A"), 1), rec.Handle)) }},
		{"StreamAllDurable", func() error { return stream(s.StreamAllDurable(ctx, "d", rec.Handle)) }},
		{"StreamToDurable", func() error { return stream(s.StreamToDurable(ctx, "e", typeQ("A"), rec.Handle)) }},
	}
	for _, c := range calls {
		var err error
		within(t, c.name+" after Close", func() { err = c.call() })
		if !errors.Is(err, contract.ErrClosed) {
			t.Errorf("%s after Close: got error %v, want contract.ErrClosed", c.name, err)
		}
	}
	if b := rec.Batches(); len(b) != 0 {
		t.Errorf("stream calls after Close delivered %s", FormatBatches(b))
	}
}

func testCloseEndsSubscriptions(t *testing.T, s contract.EventStore) {
	recs := map[string]*Recorder{}
	var subs []contract.Subscription
	add := func(name string, subscribe func(*Recorder) contract.Subscription) {
		r := NewRecorder(nil)
		recs[name] = r
		subs = append(subs, subscribe(r))
	}
	add("StreamAll", func(r *Recorder) contract.Subscription { return streamAll(t, s, r) })
	add("StreamTo", func(r *Recorder) contract.Subscription { return streamTo(t, s, typeQ("A"), r) })
	add("StreamAllDurable", func(r *Recorder) contract.Subscription { return streamAllDurable(t, s, "d", r) })
	add("StreamToDurable", func(r *Recorder) contract.Subscription { return streamToDurable(t, s, "e", typeQ("A"), r) })
	mustAppend(t, s, ev("A", `{}`))
	for name, r := range recs {
		expectBatch(t, r, name, 1)
		r.Settle(t)
	}
	closeStore(t, s)
	for name, r := range recs {
		waitDone(t, r.Ctx(), name+" after Close")
	}
	for _, sub := range subs {
		unsubscribe(t, sub) // still safe after Close
	}
}

// Close is a call after Close too: the contract says it returns ErrClosed,
// so a caller can tell that someone else closed the store.
func testCloseTwice(t *testing.T, s contract.EventStore) {
	closeStore(t, s)
	for _, which := range []string{"second", "third"} {
		var err error
		within(t, which+" Close", func() { err = s.Close() })
		if !errors.Is(err, contract.ErrClosed) {
			t.Errorf("%s Close returned %v, want contract.ErrClosed", which, err)
		}
	}
}

// Of Closes racing on an open store exactly one closes it (nil); every
// other returns ErrClosed.
func testCloseConcurrent(t *testing.T, s contract.EventStore) {
	mustAppend(t, s, ev("A", `{}`))
	const n = 4
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			errs[i] = s.Close()
		})
	}
	within(t, "concurrent Close", func() {
		close(start)
		wg.Wait()
	})
	nils := 0
	for i, err := range errs {
		switch {
		case err == nil:
			nils++
		case !errors.Is(err, contract.ErrClosed):
			t.Errorf("concurrent Close %d returned %v, want nil or contract.ErrClosed", i, err)
		}
	}
	if nils != 1 {
		t.Errorf("%d of %d concurrent Closes returned nil, want exactly 1 (errors: %v)", nils, n, errs)
	}
}

func testConcurrentAppends(t *testing.T, s contract.EventStore) {
	const workers, perWorker = 8, 10
	type committed struct {
		worker int
		res    contract.AppendResult
		events []contract.NewEvent
	}
	results := make([][]committed, workers)
	errs := make([]error, workers)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 42))
			<-start
			for i := range perWorker {
				batch := make([]contract.NewEvent, 1+rng.IntN(5))
				for j := range batch {
					batch[j] = ev(fmt.Sprintf("W%d", w), fmt.Sprintf(`{"w":%d,"i":%d,"j":%d}`, w, i, j))
				}
				res, err := doAppend(s, batch)
				if err != nil {
					errs[w] = fmt.Errorf("worker %d append %d: %w", w, i, err)
					return
				}
				results[w] = append(results[w], committed{w, res, batch})
			}
		})
	}
	close(start)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("concurrent Append failed: %v", err)
	}
	var all []committed
	total := uint64(0)
	for w, rs := range results {
		var prev uint64
		for i, c := range rs {
			n := uint64(len(c.events))
			if c.res.CommittedCount != n || c.res.LastSequenceNumber != c.res.FirstSequenceNumber+n-1 || c.res.FirstSequenceNumber == 0 {
				t.Errorf("worker %d append %d of %d events returned %+v, not a contiguous range of %d", w, i, n, c.res, n)
			}
			if c.res.FirstSequenceNumber <= prev {
				t.Errorf("worker %d: append %d got First %d, not after the previous append's Last %d (appends of one goroutine are ordered)", w, i, c.res.FirstSequenceNumber, prev)
			}
			prev = c.res.LastSequenceNumber
			total += n
			all = append(all, c)
		}
	}
	slices.SortFunc(all, func(a, b committed) int { return cmp.Compare(a.res.FirstSequenceNumber, b.res.FirstSequenceNumber) })
	next := uint64(1)
	for _, c := range all {
		if c.res.FirstSequenceNumber != next {
			t.Fatalf("the committed ranges do not tile 1..%d: a range starts at %d where %d was expected (gap or overlap); ranges: %v",
				total, c.res.FirstSequenceNumber, next, rangesOf(all, func(c committed) contract.AppendResult { return c.res }))
		}
		next = c.res.LastSequenceNumber + 1
	}
	res := checkQuery(t, s, contract.EventQuery{}, span(1, total), total)
	if uint64(len(res.Events)) != total {
		return
	}
	for _, c := range all {
		checkRecords(t, fmt.Sprintf("events of worker %d's batch %d..%d", c.worker, c.res.FirstSequenceNumber, c.res.LastSequenceNumber),
			res.Events[c.res.FirstSequenceNumber-1:c.res.LastSequenceNumber], c.res.FirstSequenceNumber, c.events)
	}
}

func rangesOf[T any](xs []T, f func(T) contract.AppendResult) []string {
	out := make([]string, len(xs))
	for i, x := range xs {
		r := f(x)
		out[i] = fmt.Sprintf("%d..%d", r.FirstSequenceNumber, r.LastSequenceNumber)
	}
	return out
}

func testRacingAppendIf(t *testing.T, s contract.EventStore) {
	const racers, rounds = 8, 3
	ctxQ := typeQ("Counter")
	mustAppend(t, s, ev("Counter", `{"round":0}`))
	mustAppend(t, s, ev("Other", `{}`))
	for round := 1; round <= rounds; round++ {
		expected := mustQuery(t, s, ctxQ).CurrentContextVersion
		total := mustQuery(t, s, contract.EventQuery{}).CurrentContextVersion
		type outcome struct {
			res contract.AppendResult
			err error
		}
		outcomes := make([]outcome, racers)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range racers {
			wg.Go(func() {
				<-start
				res, err := doAppendIf(s, evs(ev("Counter", fmt.Sprintf(`{"round":%d,"racer":%d}`, round, i))), ctxQ, expected)
				outcomes[i] = outcome{res, err}
			})
		}
		close(start)
		wg.Wait()
		var winners []int
		for i, o := range outcomes {
			if o.err == nil {
				winners = append(winners, i)
			}
		}
		if len(winners) != 1 {
			t.Fatalf("round %d: %d racing AppendIf calls with expected version %d on one context: %d succeeded (%v), want exactly 1; outcomes: %+v",
				round, racers, expected, len(winners), winners, outcomes)
		}
		win := outcomes[winners[0]].res
		checkResult(t, "winning AppendIf", win, 1)
		if win.FirstSequenceNumber != total+1 {
			t.Errorf("round %d: the winning AppendIf got First %d, want %d", round, win.FirstSequenceNumber, total+1)
		}
		for i, o := range outcomes {
			if i == winners[0] {
				continue
			}
			var ce *contract.ConflictError
			if !errors.As(o.err, &ce) {
				t.Errorf("round %d racer %d: got error %v, want a *contract.ConflictError", round, i, o.err)
				continue
			}
			if ce.Expected != expected || ce.Actual < win.LastSequenceNumber {
				t.Errorf("round %d racer %d: ConflictError{Expected: %d, Actual: %d}, want Expected %d and Actual >= the winner's %d",
					round, i, ce.Expected, ce.Actual, expected, win.LastSequenceNumber)
			}
		}
		checkQuery(t, s, contract.EventQuery{}, span(1, total+1), total+1)
	}
}
