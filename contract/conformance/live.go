package conformance

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/factstr/factstr-go/contract"
)

func liveCases() []testCase {
	return []testCase{
		{"OnlyBatchesAfterSubscribe", testLiveOnlyAfter},
		{"OneDeliveryPerBatch", testLiveOneDeliveryPerBatch},
		{"FilteredBatchKeepsOrder", testLiveFilteredBatch},
		{"BatchWithoutMatchNotDelivered", testLiveNoMatchNotDelivered},
		{"TwoStreamsSeeSameBatches", testLiveTwoStreams},
		{"UnsubscribeOneLeavesOther", testLiveUnsubscribeOne},
		{"NothingAfterUnsubscribe", testLiveNothingAfterUnsubscribe},
		{"UnsubscribeIdempotent", testLiveUnsubscribeIdempotent},
		{"HandlerErrorKeepsAppendAndStream", testLiveHandlerError},
		{"FailedAppendIfDeliversNothing", testLiveFailedAppendIf},
		{"HandlerCallsNeverOverlapAndInCommitOrder", testLiveNoOverlap},
		{"ContextCancelEndsSubscription", testLiveCtxCancel},
		{"UnsubscribeCancelsHandlerContext", testLiveUnsubscribeCancelsCtx},
		{"SubscriptionIDsUnique", testLiveUniqueIDs},
	}
}

func testLiveOnlyAfter(t *testing.T, s contract.EventStore) {
	mustAppend(t, s, ev("A", `{}`))                // 1
	mustAppend(t, s, ev("A", `{}`), ev("B", `{}`)) // 2, 3
	all := NewRecorder(nil)
	streamAll(t, s, all)
	onlyA := NewRecorder(nil)
	streamTo(t, s, typeQ("A"), onlyA)
	if b := all.Batches(); len(b) != 0 {
		t.Errorf("StreamAll delivered batches committed before it was called: %s", FormatBatches(b))
	}
	if b := onlyA.Batches(); len(b) != 0 {
		t.Errorf("StreamTo (MinSequenceNumber 0) delivered batches committed before it was called: %s", FormatBatches(b))
	}
	mustAppend(t, s, ev("B", `{}`), ev("A", `{}`)) // 4, 5
	// The first delivery must be the new batch: nothing older comes first.
	expectBatch(t, all, "StreamAll", 4, 5)
	expectBatch(t, onlyA, "StreamTo type A", 5)
}

func testLiveOneDeliveryPerBatch(t *testing.T, s contract.EventStore) {
	rec := NewRecorder(nil)
	streamAll(t, s, rec)
	batch := evs(ev("A", `{"i":1}`), ev("B", `{"i":2}`), ev("C", `{"i":3}`))
	mustAppend(t, s, batch...)
	got := expectBatch(t, rec, "StreamAll after a 3-event append (one handler call with all 3)", 1, 2, 3)
	checkRecords(t, "delivered batch", got, 1, batch)
	stored := mustQuery(t, s, contract.EventQuery{}).Events
	for i := range got {
		if i < len(stored) && !got[i].OccurredAt.Equal(stored[i].OccurredAt) {
			t.Errorf("event %d: delivered OccurredAt %v differs from the queried %v", got[i].SequenceNumber, got[i].OccurredAt, stored[i].OccurredAt)
		}
	}
	mustAppend(t, s, ev("A", `{"i":4}`))
	expectBatch(t, rec, "StreamAll after a 1-event append", 4)
	mustAppend(t, s, ev("A", `{"i":5}`), ev("A", `{"i":6}`))
	expectBatch(t, rec, "StreamAll after a 2-event append", 5, 6)
}

func testLiveFilteredBatch(t *testing.T, s contract.EventStore) {
	byType := NewRecorder(nil)
	streamTo(t, s, typeQ("A"), byType)
	byPred := NewRecorder(nil)
	streamTo(t, s, predQ(`{"k":1}`), byPred)
	batch := evs(ev("A", `{"k":1}`), ev("B", `{"k":1}`), ev("A", `{"k":2}`), ev("B", `{"k":2}`), ev("A", `{"k":3}`))
	mustAppend(t, s, batch...)
	got := expectBatch(t, byType, "StreamTo type A", 1, 3, 5)
	for i, want := range []string{`{"k":1}`, `{"k":2}`, `{"k":3}`} {
		if got[i].Type != "A" || !samePayload(got[i].Payload, []byte(want)) {
			t.Errorf("StreamTo type A: delivered event %d is {type %q, payload %s}, want {type \"A\", payload %s}", got[i].SequenceNumber, got[i].Type, got[i].Payload, want)
		}
	}
	expectBatch(t, byPred, `StreamTo {"k":1}`, 1, 2)
}

func testLiveNoMatchNotDelivered(t *testing.T, s contract.EventStore) {
	rec := NewRecorder(nil)
	streamTo(t, s, typeQ("A"), rec)
	mustAppend(t, s, ev("B", `{}`), ev("B", `{}`)) // 1, 2
	mustAppend(t, s, ev("C", `{}`))                // 3
	mustAppend(t, s, ev("A", `{}`))                // 4
	expectBatch(t, rec, "StreamTo type A after two batches without A and one with", 4)
	mustAppend(t, s, ev("B", `{}`))                // 5
	mustAppend(t, s, ev("B", `{}`), ev("A", `{}`)) // 6, 7
	expectBatch(t, rec, "StreamTo type A", 7)
}

func testLiveTwoStreams(t *testing.T, s contract.EventStore) {
	r1, r2 := NewRecorder(nil), NewRecorder(nil)
	streamAll(t, s, r1)
	streamAll(t, s, r2)
	mustAppend(t, s, ev("A", `{}`))
	mustAppend(t, s, ev("B", `{}`), ev("B", `{}`))
	mustAppend(t, s, ev("A", `{}`), ev("B", `{}`), ev("A", `{}`))
	for i, r := range []*Recorder{r1, r2} {
		what := fmt.Sprintf("stream %d", i+1)
		expectBatch(t, r, what, 1)
		expectBatch(t, r, what, 2, 3)
		expectBatch(t, r, what, 4, 5, 6)
	}
}

func testLiveUnsubscribeOne(t *testing.T, s contract.EventStore) {
	r1, r2 := NewRecorder(nil), NewRecorder(nil)
	sub1 := streamAll(t, s, r1)
	streamAll(t, s, r2)
	mustAppend(t, s, ev("A", `{}`))
	expectBatch(t, r1, "stream 1", 1)
	expectBatch(t, r2, "stream 2", 1)
	unsubscribe(t, sub1)
	mustAppend(t, s, ev("A", `{}`), ev("A", `{}`))
	expectBatch(t, r2, "stream 2 after stream 1 unsubscribed", 2, 3)
	mustAppend(t, s, ev("A", `{}`))
	expectBatch(t, r2, "stream 2 after stream 1 unsubscribed", 4)
	r1.ExpectNone(t, "stream 1 after its Unsubscribe returned")
}

func testLiveNothingAfterUnsubscribe(t *testing.T, s contract.EventStore) {
	slow := func(ctx context.Context, n int, batch []contract.EventRecord) error {
		time.Sleep(2 * time.Millisecond) // widens the window in which a handler call is in flight
		return nil
	}
	rec := NewRecorder(slow)
	sub := streamAll(t, s, rec)
	for i := 0; i < 10; i++ {
		mustAppend(t, s, ev("A", `{}`))
	}
	rec.Next(t)
	unsubscribe(t, sub)
	rec.Skip() // whatever was delivered before Unsubscribe returned
	mustAppend(t, s, ev("A", `{}`))
	rec.ExpectNone(t, "a handler call began after Unsubscribe returned")
}

func testLiveUnsubscribeIdempotent(t *testing.T, s contract.EventStore) {
	r1, r2 := NewRecorder(nil), NewRecorder(nil)
	sub1 := streamAll(t, s, r1)
	sub2 := streamAll(t, s, r2)
	unsubscribe(t, sub1)
	unsubscribe(t, sub1)
	within(t, "two concurrent Unsubscribe calls", func() {
		var wg sync.WaitGroup
		wg.Go(sub1.Unsubscribe)
		wg.Go(sub1.Unsubscribe)
		wg.Wait()
	})
	mustAppend(t, s, ev("A", `{}`))
	expectBatch(t, r2, "the other stream after repeated Unsubscribe of stream 1", 1)
	r1.ExpectNone(t, "stream 1 after Unsubscribe")
	unsubscribe(t, sub2)
	unsubscribe(t, sub2)
}

func testLiveHandlerError(t *testing.T, s contract.EventStore) {
	failing := func(ctx context.Context, n int, batch []contract.EventRecord) error { return errHandler }
	all := NewRecorder(failing)
	streamAll(t, s, all)
	onlyA := NewRecorder(failing)
	streamTo(t, s, typeQ("A"), onlyA)
	healthy := NewRecorder(nil)
	streamAll(t, s, healthy)

	mustAppend(t, s, ev("A", `{}`))
	expectBatch(t, all, "StreamAll with a failing handler", 1)
	expectBatch(t, onlyA, "StreamTo with a failing handler", 1)
	expectBatch(t, healthy, "another StreamAll", 1)
	all.Settle(t)
	onlyA.Settle(t)
	checkQuery(t, s, contract.EventQuery{}, []uint64{1}, 1)

	mustAppend(t, s, ev("B", `{}`), ev("A", `{}`))
	expectBatch(t, all, "StreamAll after its handler returned an error (a live stream keeps delivering)", 2, 3)
	expectBatch(t, onlyA, "StreamTo after its handler returned an error (a live stream keeps delivering)", 3)
	expectBatch(t, healthy, "another StreamAll", 2, 3)
	checkQuery(t, s, contract.EventQuery{}, span(1, 3), 3)
}

func testLiveFailedAppendIf(t *testing.T, s contract.EventStore) {
	rec := NewRecorder(nil)
	streamAll(t, s, rec)
	mustAppend(t, s, ev("A", `{}`)) // 1
	expectBatch(t, rec, "StreamAll", 1)
	expectConflict(t, s, typeQ("A"), 0, 1)
	if _, err := doAppendIf(s, nil, typeQ("A"), 1); !errors.Is(err, contract.ErrEmptyAppend) {
		t.Errorf("AppendIf of an empty batch: got %v, want contract.ErrEmptyAppend", err)
	}
	if _, err := doAppendIf(s, evs(ev("", `{}`)), typeQ("A"), 1); !errors.Is(err, contract.ErrInvalidEvent) {
		t.Errorf("AppendIf of an event with an empty type: got %v, want contract.ErrInvalidEvent", err)
	}
	mustAppend(t, s, ev("B", `{}`)) // 2
	expectBatch(t, rec, "StreamAll after failed AppendIf calls (they must deliver nothing)", 2)
}

func testLiveNoOverlap(t *testing.T, s contract.EventStore) {
	slow := func(ctx context.Context, n int, batch []contract.EventRecord) error {
		time.Sleep(time.Millisecond) // widens the window in which an overlap would show
		return nil
	}
	all := NewRecorder(slow)
	streamAll(t, s, all)
	onlyA := NewRecorder(slow)
	streamTo(t, s, typeQ("A"), onlyA)

	const writers, perWriter = 4, 8
	type committed struct {
		res    contract.AppendResult
		events []contract.NewEvent
	}
	results := make([][]committed, writers)
	errs := make([]error, writers)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for w := range writers {
		wg.Go(func() {
			<-start
			for i := range perWriter {
				n := 1 + (w+i)%3
				batch := make([]contract.NewEvent, n)
				for j := range batch {
					batch[j] = ev([]string{"A", "B"}[(w+i+j)%2], fmt.Sprintf(`{"w":%d,"i":%d,"j":%d}`, w, i, j))
				}
				res, err := doAppend(s, batch)
				if err != nil {
					errs[w] = err
					return
				}
				results[w] = append(results[w], committed{res, batch})
			}
		})
	}
	close(start)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("concurrent Append failed: %v", err)
	}
	var commits []committed
	total := 0
	for _, r := range results {
		commits = append(commits, r...)
		for _, c := range r {
			total += len(c.events)
		}
	}
	slices.SortFunc(commits, func(a, b committed) int { return cmp.Compare(a.res.FirstSequenceNumber, b.res.FirstSequenceNumber) })
	var wantAll, wantA [][]uint64
	totalA := 0
	for _, c := range commits {
		wantAll = append(wantAll, span(c.res.FirstSequenceNumber, c.res.LastSequenceNumber))
		var a []uint64
		for j, e := range c.events {
			if e.Type == "A" {
				a = append(a, c.res.FirstSequenceNumber+uint64(j))
			}
		}
		if len(a) > 0 {
			wantA = append(wantA, a)
			totalA += len(a)
		}
	}
	all.WaitEvents(t, total)
	onlyA.WaitEvents(t, totalA)
	all.Settle(t)
	onlyA.Settle(t)
	if got := batchSeqs(all.Batches()); !equalBatches(got, wantAll) {
		t.Errorf("StreamAll deliveries are not the committed batches in commit order:\n  got  %v\n  want %v", got, wantAll)
	}
	if got := batchSeqs(onlyA.Batches()); !equalBatches(got, wantA) {
		t.Errorf("StreamTo type A deliveries are not the committed batches (filtered) in commit order:\n  got  %v\n  want %v", got, wantA)
	}
	if n := all.Overlaps(); n != 0 {
		t.Errorf("StreamAll: %d handler calls began while another call of the same subscription was running", n)
	}
	if n := onlyA.Overlaps(); n != 0 {
		t.Errorf("StreamTo: %d handler calls began while another call of the same subscription was running", n)
	}
}

func testLiveCtxCancel(t *testing.T, s contract.EventStore) {
	ctxAll, cancelAll := context.WithCancel(t.Context())
	defer cancelAll()
	ctxTo, cancelTo := context.WithCancel(t.Context())
	defer cancelTo()
	all, onlyA := NewRecorder(nil), NewRecorder(nil)
	sub, err := s.StreamAll(ctxAll, all.Handle)
	keep(t, sub, err, "StreamAll")
	sub, err = s.StreamTo(ctxTo, typeQ("A"), onlyA.Handle)
	keep(t, sub, err, "StreamTo")

	mustAppend(t, s, ev("A", `{}`))
	expectBatch(t, all, "StreamAll", 1)
	expectBatch(t, onlyA, "StreamTo", 1)
	cancelAll()
	cancelTo()
	waitDone(t, all.Ctx(), "StreamAll after cancelling the ctx passed to it")
	waitDone(t, onlyA.Ctx(), "StreamTo after cancelling the ctx passed to it")
	mustAppend(t, s, ev("A", `{}`))
	all.ExpectNone(t, "StreamAll after its ctx was cancelled")
	onlyA.ExpectNone(t, "StreamTo after its ctx was cancelled")
}

func testLiveUnsubscribeCancelsCtx(t *testing.T, s contract.EventStore) {
	rec := NewRecorder(nil)
	sub := streamAll(t, s, rec)
	mustAppend(t, s, ev("A", `{}`))
	expectBatch(t, rec, "StreamAll", 1)
	rec.Settle(t)
	ctx := rec.Ctx()
	if err := ctx.Err(); err != nil {
		t.Fatalf("the handler ctx was already done (%v) before Unsubscribe", err)
	}
	unsubscribe(t, sub)
	waitDone(t, ctx, "after Unsubscribe")
}

func testLiveUniqueIDs(t *testing.T, s contract.EventStore) {
	mustAppend(t, s, ev("A", `{}`))
	rec := NewRecorder(nil)
	var subs []contract.Subscription
	add := func(sub contract.Subscription) { subs = append(subs, sub) }
	add(streamAll(t, s, rec))
	add(streamAll(t, s, rec))
	add(streamTo(t, s, typeQ("A"), rec))
	add(streamTo(t, s, withMin(typeQ("A"), 1), rec))
	add(streamAllDurable(t, s, "d1", rec))
	add(streamToDurable(t, s, "d2", typeQ("A"), rec))
	unsubscribe(t, subs[0])
	unsubscribe(t, subs[4])
	add(streamAll(t, s, rec))
	add(streamAllDurable(t, s, "d1", rec))
	add(streamTo(t, s, typeQ("B"), rec))
	seen := map[uint64]int{}
	for i, sub := range subs {
		id := sub.ID()
		if j, ok := seen[id]; ok {
			t.Errorf("subscriptions #%d and #%d of one store have the same ID %d", j+1, i+1, id)
		}
		seen[id] = i
	}
}
