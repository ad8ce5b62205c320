package conformance

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/factstr/factstr-go/contract"
)

func durableCases() []testCase {
	return []testCase{
		{"ReplayThenLive", testDurableReplayThenLive},
		{"ReplayFiltered", testDurableReplayFiltered},
		{"CursorReusedByName", testDurableCursorReused},
		{"UnsubscribeKeepsCursor", testDurableUnsubscribeKeepsCursor},
		{"ReplayFailureResumesAtFailedBatch", testDurableReplayFailure},
		{"ReplayPanicResumesAtFailedBatch", testDurableReplayPanic},
		{"LiveFailureKeepsCursorAndFreesName", testDurableLiveFailure},
		{"NameInUse", testDurableNameInUse},
		{"NameFreeAfterUnsubscribe", testDurableNameFreeAfterUnsubscribe},
		{"UnsubscribeDuringHandlerThenDone", testDurableUnsubscribeDuringHandler},
		{"UnsubscribeInsideHandlerAdvancesCursor", testDurableUnsubscribeInsideHandler},
		{"ContextCancelEndsAndFreesName", testDurableCtxCancel},
		{"QueryMismatch", testDurableQueryMismatch},
		{"IgnoresMinSequenceNumber", testDurableIgnoresMin},
		{"MinSequenceNumberIsNotAQueryChange", testDurableMinNotAChange},
		{"EmptyNameRejected", testDurableEmptyName},
		{"ConcurrentAppendsNoGapNoDuplicate", testDurableConcurrent},
	}
}

func allDurable(s contract.EventStore, name string, rec *Recorder) func() (contract.Subscription, error) {
	return func() (contract.Subscription, error) {
		return s.StreamAllDurable(context.Background(), name, rec.Handle)
	}
}

func testDurableReplayThenLive(t *testing.T, s contract.EventStore) {
	mustAppend(t, s, ev("A", `{}`), ev("B", `{}`))                // 1, 2
	mustAppend(t, s, ev("A", `{}`))                               // 3
	mustAppend(t, s, ev("A", `{}`), ev("B", `{}`), ev("C", `{}`)) // 4..6
	rec := NewRecorder(nil)
	streamAllDurable(t, s, "d", rec)
	expectBatches(t, rec, "StreamAllDurable on a new name, before the call returned", [][]uint64{{1, 2}, {3}, {4, 5, 6}})
	mustAppend(t, s, ev("A", `{}`))                // 7
	mustAppend(t, s, ev("B", `{}`), ev("A", `{}`)) // 8, 9
	expectBatch(t, rec, "StreamAllDurable, live", 7)
	expectBatch(t, rec, "StreamAllDurable, live", 8, 9)
	if got, want := batchSeqs(rec.Batches()), [][]uint64{{1, 2}, {3}, {4, 5, 6}, {7}, {8, 9}}; !equalBatches(got, want) {
		t.Errorf("StreamAllDurable: all deliveries were %v, want %v", got, want)
	}
}

func testDurableReplayFiltered(t *testing.T, s contract.EventStore) {
	mustAppend(t, s, ev("A", `{"i":1}`), ev("B", `{"i":2}`))                     // 1, 2
	mustAppend(t, s, ev("B", `{"i":3}`))                                         // 3
	mustAppend(t, s, ev("A", `{"i":4}`), ev("B", `{"i":5}`), ev("A", `{"i":6}`)) // 4..6
	rec := NewRecorder(nil)
	streamToDurable(t, s, "d", typeQ("A"), rec)
	expectBatches(t, rec, "StreamToDurable type A, before the call returned", [][]uint64{{1}, {4, 6}})
	mustAppend(t, s, ev("B", `{"i":7}`), ev("A", `{"i":8}`)) // 7, 8
	mustAppend(t, s, ev("B", `{"i":9}`))                     // 9
	mustAppend(t, s, ev("A", `{"i":10}`))                    // 10
	expectBatch(t, rec, "StreamToDurable type A, live", 8)
	expectBatch(t, rec, "StreamToDurable type A, live", 10)

	pred := NewRecorder(nil)
	streamToDurable(t, s, "p", query(filter(types("A", "B"), `{"i":2}`, `{"i":6}`)), pred)
	expectBatches(t, pred, "StreamToDurable with predicates, before the call returned", [][]uint64{{2}, {6}})
}

func testDurableCursorReused(t *testing.T, s contract.EventStore) {
	mustAppend(t, s, ev("A", `{}`))                // 1
	mustAppend(t, s, ev("A", `{}`), ev("A", `{}`)) // 2, 3
	rec := NewRecorder(nil)
	sub := streamAllDurable(t, s, "d", rec)
	expectBatches(t, rec, "first subscription, replay", [][]uint64{{1}, {2, 3}})
	mustAppend(t, s, ev("A", `{}`)) // 4
	expectBatch(t, rec, "first subscription, live", 4)
	rec.Settle(t)
	unsubscribe(t, sub)

	mustAppend(t, s, ev("A", `{}`))                // 5
	mustAppend(t, s, ev("B", `{}`), ev("A", `{}`)) // 6, 7
	again := NewRecorder(nil)
	streamAllDurable(t, s, "d", again)
	expectBatches(t, again, "second subscription to the same name, replay (only what the first did not handle)", [][]uint64{{5}, {6, 7}})
	mustAppend(t, s, ev("A", `{}`)) // 8
	expectBatch(t, again, "second subscription, live", 8)
	if n := len(rec.Batches()); n != 3 {
		t.Errorf("the first subscription got %d deliveries after it was unsubscribed: %s", n-3, FormatBatches(rec.Batches()[3:]))
	}
}

func testDurableUnsubscribeKeepsCursor(t *testing.T, s contract.EventStore) {
	rec := NewRecorder(nil)
	sub := streamToDurable(t, s, "d", typeQ("A"), rec)
	mustAppend(t, s, ev("A", `{}`))                // 1
	mustAppend(t, s, ev("B", `{}`), ev("A", `{}`)) // 2, 3
	expectBatch(t, rec, "live", 1)
	expectBatch(t, rec, "live", 3)
	rec.Settle(t)
	unsubscribe(t, sub)

	again := NewRecorder(nil)
	streamToDurable(t, s, "d", typeQ("A"), again)
	expectBatches(t, again, "resubscribed after Unsubscribe with nothing new (every batch was handled live)", nil)
	mustAppend(t, s, ev("A", `{}`)) // 4
	expectBatch(t, again, "resubscribed, live", 4)
}

func testDurableReplayFailure(t *testing.T, s contract.EventStore) {
	testDurableReplayFails(t, s, func(ctx context.Context, n int, batch []contract.EventRecord) error {
		if n == 2 {
			return errHandler
		}
		return nil
	}, "returned an error")
}

func testDurableReplayPanic(t *testing.T, s contract.EventStore) {
	testDurableReplayFails(t, s, func(ctx context.Context, n int, batch []contract.EventRecord) error {
		if n == 2 {
			panic("handler panic requested by the conformance test")
		}
		return nil
	}, "panicked")
}

func testDurableReplayFails(t *testing.T, s contract.EventStore, hook func(context.Context, int, []contract.EventRecord) error, how string) {
	mustAppend(t, s, ev("A", `{}`))                // 1
	mustAppend(t, s, ev("A", `{}`), ev("B", `{}`)) // 2, 3
	mustAppend(t, s, ev("B", `{}`))                // 4
	failing := NewRecorder(hook)
	var sub contract.Subscription
	var err error
	within(t, "StreamAllDurable with a failing replay", func() {
		sub, err = s.StreamAllDurable(t.Context(), "d", failing.Handle)
	})
	if err == nil {
		if sub != nil {
			sub.Unsubscribe()
		}
		t.Fatalf("StreamAllDurable: the handler %s on the 2nd replayed batch, but the call returned no error", how)
	}
	t.Logf("StreamAllDurable returned (as expected): %v", err)
	expectBatches(t, failing, "the handler that "+how+" on the 2nd replayed batch", [][]uint64{{1}, {2, 3}})

	good := NewRecorder(nil)
	durableRetry(t, "StreamAllDurable after the failed replay", allDurable(s, "d", good))
	expectBatches(t, good, "resubscribed after the handler "+how+" on batch 2..3 (the cursor stays after batch 1)", [][]uint64{{2, 3}, {4}})
	mustAppend(t, s, ev("A", `{}`)) // 5
	expectBatch(t, good, "resubscribed, live", 5)
	if n := len(failing.Batches()); n != 2 {
		t.Errorf("the failed subscription got deliveries after its replay failed: %s", FormatBatches(failing.Batches()))
	}
}

func testDurableLiveFailure(t *testing.T, s contract.EventStore) {
	mustAppend(t, s, ev("A", `{}`)) // 1
	failing := NewRecorder(func(ctx context.Context, n int, batch []contract.EventRecord) error {
		if n == 2 {
			return errHandler
		}
		return nil
	})
	streamAllDurable(t, s, "d", failing)
	expectBatches(t, failing, "replay", [][]uint64{{1}})
	mustAppend(t, s, ev("A", `{}`), ev("B", `{}`)) // 2, 3: the handler fails
	expectBatch(t, failing, "live", 2, 3)
	mustAppend(t, s, ev("B", `{}`)) // 4: must not reach the stopped subscription

	good := NewRecorder(nil)
	durableRetry(t, "StreamAllDurable after a live handler failure", allDurable(s, "d", good))
	expectBatches(t, good, "resubscribed after the handler failed on live batch 2..3 (the cursor stays before it)", [][]uint64{{2, 3}, {4}})
	mustAppend(t, s, ev("A", `{}`)) // 5
	expectBatch(t, good, "resubscribed, live", 5)
	if got := batchSeqs(failing.Batches()); !equalBatches(got, [][]uint64{{1}, {2, 3}}) {
		t.Errorf("a durable stream must stop after its handler fails: the failed subscription got %v, want [[1] [2 3]]", got)
	}
}

func testDurableNameInUse(t *testing.T, s contract.EventStore) {
	first := NewRecorder(nil)
	streamAllDurable(t, s, "d", first)
	firstTo := NewRecorder(nil)
	streamToDurable(t, s, "e", typeQ("A"), firstTo)

	second := NewRecorder(nil)
	for _, c := range []struct {
		name string
		call func() (contract.Subscription, error)
	}{
		{`StreamAllDurable "d"`, func() (contract.Subscription, error) {
			return s.StreamAllDurable(t.Context(), "d", second.Handle)
		}},
		{`StreamToDurable "e"`, func() (contract.Subscription, error) {
			return s.StreamToDurable(t.Context(), "e", typeQ("A"), second.Handle)
		}},
	} {
		sub, err := c.call()
		if err == nil && sub != nil {
			sub.Unsubscribe()
		}
		if !errors.Is(err, contract.ErrDurableNameInUse) {
			t.Errorf("%s while another subscription holds the name: got error %v, want contract.ErrDurableNameInUse", c.name, err)
		}
	}
	// Another name is independent.
	other := NewRecorder(nil)
	streamAllDurable(t, s, "other", other)

	mustAppend(t, s, ev("A", `{}`))
	expectBatch(t, first, `the holder of "d"`, 1)
	expectBatch(t, firstTo, `the holder of "e"`, 1)
	expectBatch(t, other, `the holder of "other"`, 1)
	second.ExpectNone(t, "the refused subscriptions")
}

func testDurableNameFreeAfterUnsubscribe(t *testing.T, s contract.EventStore) {
	for i := uint64(1); i <= 3; i++ {
		rec := NewRecorder(nil)
		sub, err := s.StreamAllDurable(t.Context(), "d", rec.Handle)
		if err != nil {
			t.Fatalf("round %d: StreamAllDurable right after Unsubscribe of the previous holder returned: %v (the name must be free when Unsubscribe returns)", i, err)
		}
		keep(t, sub, nil, "StreamAllDurable")
		recTo := NewRecorder(nil)
		subTo, err := s.StreamToDurable(t.Context(), "e", typeQ("A"), recTo.Handle)
		if err != nil {
			t.Fatalf("round %d: StreamToDurable right after Unsubscribe of the previous holder returned: %v (the name must be free when Unsubscribe returns)", i, err)
		}
		keep(t, subTo, nil, "StreamToDurable")
		expectBatches(t, rec, "replay", nil)
		mustAppend(t, s, ev("A", `{}`))
		expectBatch(t, rec, "live", i)
		expectBatch(t, recTo, "live", i)
		rec.Settle(t)
		recTo.Settle(t)
		unsubscribe(t, sub)
		unsubscribe(t, subTo)
	}
}

func testDurableUnsubscribeInsideHandler(t *testing.T, s contract.EventStore) {
	mustAppend(t, s, ev("A", `{}`)) // 1
	subCh := make(chan contract.Subscription, 1)
	unsubReturned := make(chan struct{})
	handlerDone := make(chan struct{})
	rec := NewRecorder(func(ctx context.Context, n int, batch []contract.EventRecord) error {
		if n != 2 {
			return nil
		}
		defer close(handlerDone)
		sub := <-subCh
		sub.Unsubscribe()
		close(unsubReturned)
		return nil
	})
	sub := streamAllDurable(t, s, "d", rec)
	expectBatches(t, rec, "replay", [][]uint64{{1}})
	subCh <- sub
	mustAppend(t, s, ev("A", `{}`)) // 2: the handler unsubscribes and returns nil
	expectBatch(t, rec, "live", 2)
	waitChan(t, unsubReturned, "Unsubscribe called inside the handler to return (it must not wait for the handler that calls it)")
	waitChan(t, handlerDone, "the handler to finish")

	mustAppend(t, s, ev("A", `{}`)) // 3: committed after Unsubscribe returned
	again := NewRecorder(nil)
	durableRetry(t, "StreamAllDurable after Unsubscribe inside the handler", allDurable(s, "d", again))
	expectBatches(t, again, "resubscribed after the handler unsubscribed and returned nil for batch 2 (it must not come again)", [][]uint64{{3}})
	if got := batchSeqs(rec.Batches()); !equalBatches(got, [][]uint64{{1}, {2}}) {
		t.Errorf("the subscription that unsubscribed inside its handler got %v, want [[1] [2]]", got)
	}
}

func testDurableCtxCancel(t *testing.T, s contract.EventStore) {
	mustAppend(t, s, ev("A", `{}`)) // 1
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	rec := NewRecorder(nil)
	sub, err := s.StreamAllDurable(ctx, "d", rec.Handle)
	keep(t, sub, err, "StreamAllDurable")
	expectBatches(t, rec, "replay", [][]uint64{{1}})
	rec.Settle(t)
	hctx := rec.Ctx()
	cancel()
	waitDone(t, hctx, "durable subscription after cancelling the ctx passed to StreamAllDurable")

	// The name is freed without any further append.
	again := NewRecorder(nil)
	durableRetry(t, "StreamAllDurable after the ctx of the previous holder was cancelled", allDurable(s, "d", again))
	expectBatches(t, again, "resubscribed after ctx cancel (1 was handled)", nil)
	mustAppend(t, s, ev("A", `{}`)) // 2
	expectBatch(t, again, "resubscribed, live", 2)
	if got := batchSeqs(rec.Batches()); !equalBatches(got, [][]uint64{{1}}) {
		t.Errorf("the cancelled subscription got %v, want [[1]]", got)
	}
}

func testDurableQueryMismatch(t *testing.T, s contract.EventStore) {
	mustAppend(t, s, ev("A", `{"k":1}`))
	rec := NewRecorder(nil)
	sub := streamToDurable(t, s, "d", typeQ("A"), rec)
	unsubscribe(t, sub)
	allRec := NewRecorder(nil)
	sub = streamAllDurable(t, s, "all", allRec)
	unsubscribe(t, sub)

	other := NewRecorder(nil)
	for _, c := range []struct {
		name string
		call func() (contract.Subscription, error)
	}{
		{`StreamToDurable "d" type B`, func() (contract.Subscription, error) {
			return s.StreamToDurable(t.Context(), "d", typeQ("B"), other.Handle)
		}},
		{`StreamToDurable "d" types A, B`, func() (contract.Subscription, error) {
			return s.StreamToDurable(t.Context(), "d", typeQ("A", "B"), other.Handle)
		}},
		{`StreamToDurable "d" type A with a predicate`, func() (contract.Subscription, error) {
			return s.StreamToDurable(t.Context(), "d", query(filter(types("A"), `{"k":1}`)), other.Handle)
		}},
		{`StreamAllDurable "d"`, func() (contract.Subscription, error) {
			return s.StreamAllDurable(t.Context(), "d", other.Handle)
		}},
		{`StreamToDurable "all" type A`, func() (contract.Subscription, error) {
			return s.StreamToDurable(t.Context(), "all", typeQ("A"), other.Handle)
		}},
	} {
		var sub contract.Subscription
		var err error
		sub, err = c.call()
		if err == nil && sub != nil {
			sub.Unsubscribe()
		}
		if !errors.Is(err, contract.ErrDurableQueryMismatch) {
			t.Errorf("%s, a name created with another query: got error %v, want contract.ErrDurableQueryMismatch", c.name, err)
		}
	}
	if b := other.Batches(); len(b) != 0 {
		t.Errorf("refused subscriptions delivered %s", FormatBatches(b))
	}
	// The original query is still accepted.
	again := NewRecorder(nil)
	streamToDurable(t, s, "d", typeQ("A"), again)
	expectBatches(t, again, "resubscribed with the original query", nil)
}

func testDurableIgnoresMin(t *testing.T, s contract.EventStore) {
	mustAppend(t, s, ev("A", `{}`), ev("B", `{}`)) // 1, 2
	mustAppend(t, s, ev("A", `{}`))                // 3
	mustAppend(t, s, ev("B", `{}`))                // 4
	rec := NewRecorder(nil)
	streamToDurable(t, s, "d", withMin(typeQ("A"), 3), rec)
	expectBatches(t, rec, "StreamToDurable type A with MinSequenceNumber 3 on a new name (the cursor, 0, decides)", [][]uint64{{1}, {3}})
	recAll := NewRecorder(nil)
	streamToDurable(t, s, "e", withMin(contract.EventQuery{}, 10), recAll)
	expectBatches(t, recAll, "StreamToDurable without filters with MinSequenceNumber 10 on a new name", [][]uint64{{1, 2}, {3}, {4}})
}

func testDurableMinNotAChange(t *testing.T, s contract.EventStore) {
	mustAppend(t, s, ev("A", `{}`)) // 1
	rec := NewRecorder(nil)
	sub := streamToDurable(t, s, "d", typeQ("A"), rec)
	expectBatches(t, rec, "replay", [][]uint64{{1}})
	unsubscribe(t, sub)
	mustAppend(t, s, ev("A", `{}`)) // 2
	mustAppend(t, s, ev("B", `{}`)) // 3

	again := NewRecorder(nil)
	sub, err := s.StreamToDurable(t.Context(), "d", withMin(typeQ("A"), 1), again.Handle)
	if errors.Is(err, contract.ErrDurableQueryMismatch) {
		t.Fatalf("StreamToDurable with the same query but MinSequenceNumber 1 was refused as a changed query: %v", err)
	}
	keep(t, sub, err, "StreamToDurable with the same query and another MinSequenceNumber")
	expectBatches(t, again, "resubscribed with MinSequenceNumber 1 (the cursor, 1, decides)", [][]uint64{{2}})
	unsubscribe(t, sub)

	third := NewRecorder(nil)
	streamToDurable(t, s, "d", withMin(typeQ("A"), 99), third)
	expectBatches(t, third, "resubscribed with MinSequenceNumber 99 (the cursor, 2, decides)", nil)
	mustAppend(t, s, ev("A", `{}`)) // 4
	expectBatch(t, third, "live", 4)
}

func testDurableEmptyName(t *testing.T, s contract.EventStore) {
	rec := NewRecorder(nil)
	sub, err := s.StreamAllDurable(t.Context(), "", rec.Handle)
	if err == nil && sub != nil {
		sub.Unsubscribe()
	}
	if !errors.Is(err, contract.ErrInvalidQuery) {
		t.Errorf(`StreamAllDurable with name "": got error %v, want contract.ErrInvalidQuery`, err)
	}
	sub, err = s.StreamToDurable(t.Context(), "", typeQ("A"), rec.Handle)
	if err == nil && sub != nil {
		sub.Unsubscribe()
	}
	if !errors.Is(err, contract.ErrInvalidQuery) {
		t.Errorf(`StreamToDurable with name "": got error %v, want contract.ErrInvalidQuery`, err)
	}
}

func testDurableConcurrent(t *testing.T, s contract.EventStore) {
	for i := 0; i < 4; i++ {
		mustAppend(t, s, ev("A", `{}`)) // 1..4
	}
	a := startAppender(s, 10, 5, 20)
	rec := NewRecorder(a.hook)
	ranges := a.subscribe(t, func() {
		streamAllDurable(t, s, "d", rec)
	})
	want := append([][]uint64{{1}, {2}, {3}, {4}}, ranges...)
	expectAllBatches(t, rec, want, "StreamAllDurable while appends ran concurrently")
}

// testDurableUnsubscribeDuringHandler: an Unsubscribe from another
// goroutine while a handler call runs returns without waiting for it (it
// cannot tell that goroutine from the handler's own), delivers nothing
// more, and keeps the name held until the call has returned: Done closes
// only then, the handler's nil has moved the cursor, and the name is free.
func testDurableUnsubscribeDuringHandler(t *testing.T, s contract.EventStore) {
	release := make(chan struct{})
	var releaseOnce sync.Once
	releaseHandler := func() { releaseOnce.Do(func() { close(release) }) }
	defer releaseHandler()
	entered := make(chan struct{})
	rec := NewRecorder(func(ctx context.Context, n int, batch []contract.EventRecord) error {
		if n == 1 {
			close(entered)
			select {
			case <-release:
			case <-time.After(WaitTimeout):
			}
		}
		// Ignores the cancelled ctx on purpose: the batch was handled.
		return nil
	})
	sub := streamAllDurable(t, s, "d", rec)
	mustAppend(t, s, ev("A", `{}`)) // 1
	waitChan(t, entered, "the handler to receive batch 1")
	unsubDone := make(chan struct{})
	go func() {
		defer close(unsubDone)
		sub.Unsubscribe()
	}()
	waitChan(t, unsubDone, "Unsubscribe to return while a handler call runs")
	mustAppend(t, s, ev("A", `{}`)) // 2: never delivered to sub
	select {
	case <-sub.Done():
		t.Fatal("Done closed while the handler was still running for batch 1")
	case <-time.After(QuietWindow):
	}
	if other, err := s.StreamAllDurable(t.Context(), "d", NewRecorder(nil).Handle); !errors.Is(err, contract.ErrDurableNameInUse) {
		if err == nil {
			other.Unsubscribe()
		}
		t.Fatalf("StreamAllDurable while the unsubscribed handler still runs: %v, want contract.ErrDurableNameInUse (the outcome of batch 1 is not known yet)", err)
	}
	releaseHandler()
	waitChan(t, sub.Done(), "Done after the running handler returned")
	if err := sub.Err(); err != nil {
		t.Errorf("Err after Unsubscribe: %v, want nil", err)
	}
	expectBatches(t, rec, "the unsubscribed stream", [][]uint64{{1}})

	again := NewRecorder(nil)
	sub, err := s.StreamAllDurable(t.Context(), "d", again.Handle)
	keep(t, sub, err, "StreamAllDurable once Done was closed")
	expectBatch(t, again, "resubscribed: batch 1 was handled (its nil moved the cursor), batch 2 was not", 2)
}
