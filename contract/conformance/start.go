package conformance

import (
	"errors"
	"testing"

	"github.com/factstr/factstr-go/contract"
)

// startCases check where a new durable name starts, and that a name that
// exists resumes from its cursor whatever start is asked for.
func startCases() []testCase {
	return []testCase{
		{"DefaultIsBeginning", testStartDefault},
		{"AtEnd", testStartAtEnd},
		{"AtEndFiltered", testStartAtEndFiltered},
		{"AfterSequence", testStartAfter},
		{"AfterInsideABatch", testStartAfterInsideBatch},
		{"AfterZeroIsBeginning", testStartAfterZero},
		{"AfterHeadIsEnd", testStartAfterHead},
		{"AfterPastTheLogRefused", testStartAfterAhead},
		{"ExistingNameResumesFromCursor", testStartExistingName},
	}
}

func threeBatches(t *testing.T, s contract.EventStore) {
	mustAppend(t, s, ev("A", `{}`), ev("B", `{}`))                // 1, 2
	mustAppend(t, s, ev("A", `{}`))                               // 3
	mustAppend(t, s, ev("B", `{}`), ev("A", `{}`), ev("B", `{}`)) // 4..6
}

func durableWith(t *testing.T, s contract.EventStore, name string, q contract.EventQuery, rec *Recorder, opts ...contract.DurableOption) contract.Subscription {
	t.Helper()
	sub, err := s.StreamToDurable(t.Context(), name, q, rec.Handle, opts...)
	return keep(t, sub, err, "StreamToDurable "+name+" "+fmtQuery(q)+" with a start position")
}

func testStartDefault(t *testing.T, s contract.EventStore) {
	threeBatches(t, s)
	rec := NewRecorder(nil)
	durableWith(t, s, "d", contract.EventQuery{}, rec, contract.StartAtBeginning())
	expectBatches(t, rec, "StartAtBeginning on a new name", [][]uint64{{1, 2}, {3}, {4, 5, 6}})
}

func testStartAtEnd(t *testing.T, s contract.EventStore) {
	threeBatches(t, s)
	rec := NewRecorder(nil)
	durableWith(t, s, "d", contract.EventQuery{}, rec, contract.StartAtEnd())
	expectBatches(t, rec, "StartAtEnd on a new name (nothing committed before is delivered)", nil)
	mustAppend(t, s, ev("A", `{}`)) // 7
	expectBatch(t, rec, "StartAtEnd, live", 7)
}

func testStartAtEndFiltered(t *testing.T, s contract.EventStore) {
	threeBatches(t, s)
	rec := NewRecorder(nil)
	sub := durableWith(t, s, "d", typeQ("A"), rec, contract.StartAtEnd())
	expectBatches(t, rec, "StartAtEnd type A on a new name", nil)
	mustAppend(t, s, ev("B", `{}`))                // 7
	mustAppend(t, s, ev("B", `{}`), ev("A", `{}`)) // 8, 9
	expectBatch(t, rec, "StartAtEnd type A, live", 9)
	rec.Settle(t)
	unsubscribe(t, sub)
	// The cursor was recorded: the name resumes after 9, not at the end.
	mustAppend(t, s, ev("A", `{}`)) // 10
	again := NewRecorder(nil)
	durableWith(t, s, "d", typeQ("A"), again)
	expectBatches(t, again, "resubscribed to a name created at the end", [][]uint64{{10}})
}

func testStartAfter(t *testing.T, s contract.EventStore) {
	threeBatches(t, s)
	rec := NewRecorder(nil)
	durableWith(t, s, "d", contract.EventQuery{}, rec, contract.StartAfter(3))
	expectBatches(t, rec, "StartAfter(3) on a new name", [][]uint64{{4, 5, 6}})
	filtered := NewRecorder(nil)
	durableWith(t, s, "e", typeQ("A"), filtered, contract.StartAfter(2))
	expectBatches(t, filtered, "StartAfter(2) type A on a new name", [][]uint64{{3}, {5}})
	mustAppend(t, s, ev("A", `{}`)) // 7
	expectBatch(t, rec, "StartAfter(3), live", 7)
	expectBatch(t, filtered, "StartAfter(2) type A, live", 7)
}

func testStartAfterInsideBatch(t *testing.T, s contract.EventStore) {
	threeBatches(t, s)
	rec := NewRecorder(nil)
	durableWith(t, s, "d", contract.EventQuery{}, rec, contract.StartAfter(4))
	expectBatches(t, rec, "StartAfter(4), inside the batch 4..6 (only the events after 4 are delivered)", [][]uint64{{5, 6}})
}

func testStartAfterZero(t *testing.T, s contract.EventStore) {
	threeBatches(t, s)
	rec := NewRecorder(nil)
	durableWith(t, s, "d", contract.EventQuery{}, rec, contract.StartAfter(0))
	expectBatches(t, rec, "StartAfter(0) on a new name", [][]uint64{{1, 2}, {3}, {4, 5, 6}})
}

func testStartAfterHead(t *testing.T, s contract.EventStore) {
	threeBatches(t, s)
	rec := NewRecorder(nil)
	durableWith(t, s, "d", contract.EventQuery{}, rec, contract.StartAfter(6))
	expectBatches(t, rec, "StartAfter(6), the head", nil)
	mustAppend(t, s, ev("A", `{}`)) // 7
	expectBatch(t, rec, "StartAfter(6), live", 7)
}

func testStartAfterAhead(t *testing.T, s contract.EventStore) {
	threeBatches(t, s)
	rec := NewRecorder(nil)
	sub, err := s.StreamAllDurable(t.Context(), "d", rec.Handle, contract.StartAfter(7))
	if err == nil && sub != nil {
		sub.Unsubscribe()
	}
	if !errors.Is(err, contract.ErrPositionAhead) {
		t.Fatalf("StartAfter(7) with the log ending at 6: got error %v, want contract.ErrPositionAhead", err)
	}
	// The refused call did not create the name.
	again := NewRecorder(nil)
	durableRetry(t, "StreamAllDurable after a refused start", allDurable(s, "d", again))
	expectBatches(t, again, "the name after a refused start (it was not created: it starts at the beginning)", [][]uint64{{1, 2}, {3}, {4, 5, 6}})
}

func testStartExistingName(t *testing.T, s contract.EventStore) {
	mustAppend(t, s, ev("A", `{}`)) // 1
	rec := NewRecorder(nil)
	sub := durableWith(t, s, "d", contract.EventQuery{}, rec)
	expectBatches(t, rec, "new name, default start", [][]uint64{{1}})
	unsubscribe(t, sub)
	mustAppend(t, s, ev("A", `{}`)) // 2
	mustAppend(t, s, ev("A", `{}`)) // 3

	for _, c := range []struct {
		what   string
		opt    contract.DurableOption
		replay [][]uint64
	}{
		{"StartAtEnd", contract.StartAtEnd(), [][]uint64{{2}, {3}}},
		{"StartAfter(1), behind the cursor", contract.StartAfter(1), [][]uint64{{4}}},
		{"StartAfter(99), past the log", contract.StartAfter(99), [][]uint64{{5}}},
	} {
		again := NewRecorder(nil)
		sub, err := s.StreamToDurable(t.Context(), "d", contract.EventQuery{}, again.Handle, c.opt)
		keep(t, sub, err, "StreamToDurable on an existing name with "+c.what)
		expectBatches(t, again, "existing name subscribed with "+c.what+": it resumes from its cursor", c.replay)
		unsubscribe(t, sub)
		mustAppend(t, s, ev("A", `{}`)) // 4, then 5, then 6
	}
}
