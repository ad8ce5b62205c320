package conformance

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/factstr/factstr-go/contract"
)

func catchUpCases() []testCase {
	return []testCase{
		{"FilteredReplayThenLive", testCatchUpFiltered},
		{"AllReplayThenLive", testCatchUpAll},
		{"ConcurrentAppendsNoGapNoDuplicate", testCatchUpConcurrent},
		{"AheadOfLogRefused", testCatchUpAhead},
	}
}

// seedCatchUp appends:
//
//	[A B] (1, 2)   [B] (3)   [A A B] (4, 5, 6)   [A] (7)
func seedCatchUp(t testing.TB, s contract.EventStore) {
	t.Helper()
	mustAppend(t, s, ev("A", `{"i":1}`), ev("B", `{"i":2}`))
	mustAppend(t, s, ev("B", `{"i":3}`))
	mustAppend(t, s, ev("A", `{"i":4}`), ev("A", `{"i":5}`), ev("B", `{"i":6}`))
	mustAppend(t, s, ev("A", `{"i":7}`))
}

// A catch-up from past the committed log is refused with ErrPositionAhead
// (it would skip events it has not seen); one from the last event is an
// empty replay followed by live delivery.
func testCatchUpAhead(t *testing.T, s contract.EventStore) {
	seedCatchUp(t, s)
	rec := NewRecorder(nil)
	for _, min := range []uint64{8, 1000} {
		var (
			sub contract.Subscription
			err error
		)
		within(t, fmt.Sprintf("StreamTo with MinSequenceNumber %d", min), func() {
			sub, err = s.StreamTo(t.Context(), withMin(typeQ("A"), min), rec.Handle)
		})
		if sub != nil {
			sub.Unsubscribe()
		}
		if !errors.Is(err, contract.ErrPositionAhead) {
			t.Errorf("StreamTo with MinSequenceNumber %d past the log's last event 7: got error %v, want contract.ErrPositionAhead", min, err)
		}
	}
	atHead := NewRecorder(nil)
	streamTo(t, s, withMin(typeQ("A"), 7), atHead)
	expectBatches(t, atHead, "StreamTo type A with MinSequenceNumber 7 (the last event), before the call returned", nil)
	mustAppend(t, s, ev("A", `{"i":8}`))
	expectBatch(t, atHead, "StreamTo type A with MinSequenceNumber 7, live", 8)
	if b := rec.Batches(); len(b) != 0 {
		t.Errorf("refused StreamTo calls delivered %s", FormatBatches(b))
	}
}

func testCatchUpFiltered(t *testing.T, s contract.EventStore) {
	seedCatchUp(t, s)
	rec := NewRecorder(nil)
	streamTo(t, s, withMin(typeQ("A"), 1), rec)
	// Before StreamTo returned: every committed batch after 1, grouped as
	// committed and filtered to type A.
	expectBatches(t, rec, "StreamTo type A with MinSequenceNumber 1, before the call returned", [][]uint64{{4, 5}, {7}})
	mustAppend(t, s, ev("B", `{"i":8}`), ev("A", `{"i":9}`))
	mustAppend(t, s, ev("B", `{"i":10}`))
	mustAppend(t, s, ev("A", `{"i":11}`))
	expectBatch(t, rec, "StreamTo catch-up, live", 9)
	expectBatch(t, rec, "StreamTo catch-up, live", 11)
	if got, want := batchSeqs(rec.Batches()), [][]uint64{{4, 5}, {7}, {9}, {11}}; !equalBatches(got, want) {
		t.Errorf("StreamTo catch-up: all deliveries were %v, want %v", got, want)
	}
}

func testCatchUpAll(t *testing.T, s contract.EventStore) {
	seedCatchUp(t, s)
	rec := NewRecorder(nil)
	// 5 is inside the batch 4..6: only 6 of it is after the cursor.
	streamTo(t, s, withMin(contract.EventQuery{}, 5), rec)
	expectBatches(t, rec, "StreamTo (no filters) with MinSequenceNumber 5, before the call returned", [][]uint64{{6}, {7}})
	mustAppend(t, s, ev("B", `{"i":8}`), ev("A", `{"i":9}`))
	mustAppend(t, s, ev("C", `{"i":10}`))
	expectBatch(t, rec, "StreamTo catch-up, live", 8, 9)
	expectBatch(t, rec, "StreamTo catch-up, live", 10)

	// A cursor at the end replays nothing and continues live.
	tail := NewRecorder(nil)
	streamTo(t, s, withMin(contract.EventQuery{}, 10), tail)
	expectBatches(t, tail, "StreamTo with MinSequenceNumber at the last event", nil)
	mustAppend(t, s, ev("A", `{"i":11}`))
	expectBatch(t, tail, "StreamTo with MinSequenceNumber at the last event, live", 11)
}

// appender appends single- and two-event batches in a goroutine around a
// Stream* call: `after` batches before it, `during` batches while the
// stream's first handler call (the replay) is running, and `tail` batches
// after the call returned.
type appender struct {
	s             contract.EventStore
	reached       chan struct{} // `after` batches committed
	replayStarted chan struct{} // the first handler call began
	midDone       chan struct{} // `during` batches committed
	subscribed    chan struct{} // the Stream* call returned
	done          chan error
	startOnce     sync.Once

	mu     sync.Mutex
	ranges [][]uint64
}

func startAppender(s contract.EventStore, after, during, tail int) *appender {
	a := &appender{
		s:             s,
		reached:       make(chan struct{}),
		replayStarted: make(chan struct{}),
		midDone:       make(chan struct{}),
		subscribed:    make(chan struct{}),
		done:          make(chan error, 1),
	}
	var midOnce sync.Once
	closeMid := func() { midOnce.Do(func() { close(a.midDone) }) }
	go func() {
		defer closeMid()
		err := a.run(after)
		close(a.reached)
		if err == nil {
			select {
			case <-a.replayStarted:
			case <-a.subscribed:
			case <-time.After(WaitTimeout):
			}
			err = a.run(during)
		}
		closeMid()
		if err == nil {
			select {
			case <-a.subscribed:
				err = a.run(tail)
			case <-time.After(WaitTimeout):
				err = fmt.Errorf("the Stream* call did not return within %v", WaitTimeout)
			}
		}
		a.done <- err
	}()
	return a
}

func (a *appender) run(n int) error {
	for i := 0; i < n; i++ {
		batch := evs(ev("A", `{}`))
		if i%3 == 1 {
			batch = append(batch, ev("B", `{}`))
		}
		res, err := doAppend(a.s, batch)
		if err != nil {
			return fmt.Errorf("background Append: %w", err)
		}
		a.mu.Lock()
		a.ranges = append(a.ranges, span(res.FirstSequenceNumber, res.LastSequenceNumber))
		a.mu.Unlock()
	}
	return nil
}

// hook is a Recorder hook: the first call waits (a bounded time) for the
// appends made while it runs, so they commit during the replay.
func (a *appender) hook(ctx context.Context, n int, batch []contract.EventRecord) error {
	if n == 1 {
		a.startOnce.Do(func() { close(a.replayStarted) })
		select {
		case <-a.midDone:
		case <-time.After(2 * time.Second): // a store may hold appends back during replay
		}
	}
	return nil
}

// subscribe waits for the first appends, runs the Stream* call and returns
// every committed range in commit order once the appends are done.
func (a *appender) subscribe(t testing.TB, call func()) [][]uint64 {
	t.Helper()
	waitChan(t, a.reached, "the background appends to get going")
	call()
	close(a.subscribed)
	select {
	case err := <-a.done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * WaitTimeout):
		t.Fatalf("background appends did not finish within %v", 10*WaitTimeout)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.ranges)
}

func testCatchUpConcurrent(t *testing.T, s contract.EventStore) {
	for i := 0; i < 4; i++ {
		mustAppend(t, s, ev("A", `{}`)) // 1..4
	}
	a := startAppender(s, 10, 5, 20)
	rec := NewRecorder(a.hook)
	ranges := a.subscribe(t, func() {
		streamTo(t, s, withMin(contract.EventQuery{}, 2), rec)
	})
	want := append([][]uint64{{3}, {4}}, ranges...)
	expectAllBatches(t, rec, want, "StreamTo with MinSequenceNumber 2 while appends ran concurrently")
}

// expectAllBatches waits until rec has as many events as want holds and
// checks the deliveries are exactly want.
func expectAllBatches(t testing.TB, rec *Recorder, want [][]uint64, what string) {
	t.Helper()
	n := 0
	for _, b := range want {
		n += len(b)
	}
	var lastWant uint64
	if len(want) > 0 {
		w := want[len(want)-1]
		lastWant = w[len(w)-1]
	}
	complete := rec.waitUntil(WaitTimeout, func() bool {
		c := 0
		for _, b := range rec.batches {
			c += len(b)
		}
		// Stop early once the last wanted number arrived (after a gap).
		if k := len(rec.batches); k > 0 && lastWant > 0 {
			b := rec.batches[k-1]
			if len(b) > 0 && b[len(b)-1].SequenceNumber >= lastWant {
				return true
			}
		}
		return c >= n
	})
	got := batchSeqs(rec.Batches())
	switch {
	case !equalBatches(got, want):
		t.Errorf("%s: deliveries are not exactly the committed batches (gap, duplicate or regrouping); %s", what, diffBatches(got, want))
	case !complete:
		t.Errorf("%s: waited %v for %d events", what, WaitTimeout, n)
	}
}

// diffBatches describes the first difference between two lists of batches.
func diffBatches(got, want [][]uint64) string {
	i := 0
	for i < len(got) && i < len(want) && slices.Equal(got[i], want[i]) {
		i++
	}
	lo := max(0, i-3)
	hiG, hiW := min(len(got), i+4), min(len(want), i+4)
	return fmt.Sprintf("they differ at delivery #%d:\n  got  ...%v... (%d deliveries)\n  want ...%v... (%d deliveries)",
		i+1, got[lo:hiG], len(got), want[lo:hiW], len(want))
}
