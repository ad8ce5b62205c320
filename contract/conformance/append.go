package conformance

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/factstr/factstr-go/contract"
)

func appendCases() []testCase {
	return []testCase{
		{"ConsecutiveFromOne", testAppendConsecutive},
		{"EmptyBatch", testAppendEmpty},
		{"EmptyBatchAppendIf", testAppendIfEmpty},
		{"InvalidEventRejectsWholeBatch", testAppendInvalid},
		{"NullPayload", testAppendNullPayload},
		{"OccurredAt", testAppendOccurredAt},
		{"PayloadRoundTrip", testAppendPayloadRoundTrip},
	}
}

func appendIfCases() []testCase {
	return []testCase{
		{"SucceedsOnMatchingVersion", testAppendIfSucceeds},
		{"ConflictReportsVersions", testAppendIfConflict},
		{"ConflictAppendsNothing", testAppendIfConflictAppendsNothing},
		{"ContextUsesFilters", testAppendIfContextFilters},
	}
}

func testAppendConsecutive(t *testing.T, s contract.EventStore) {
	sizes := []int{1, 3, 2, 1, 5}
	next := uint64(1)
	var all []contract.NewEvent
	for i, n := range sizes {
		batch := make([]contract.NewEvent, n)
		for j := range batch {
			batch[j] = ev(fmt.Sprintf("T%d", j%2), fmt.Sprintf(`{"batch":%d,"i":%d}`, i, j))
		}
		res := mustAppend(t, s, batch...)
		want := contract.AppendResult{FirstSequenceNumber: next, LastSequenceNumber: next + uint64(n) - 1, CommittedCount: uint64(n)}
		if res != want {
			t.Fatalf("Append of batch %d (%d events) returned %+v, want %+v (numbers start at 1 and continue across batches without gaps)", i+1, n, res, want)
		}
		next += uint64(n)
		all = append(all, batch...)
	}
	total := uint64(len(all))
	res := checkQuery(t, s, contract.EventQuery{}, span(1, total), total)
	checkRecords(t, "Query of all events", res.Events, 1, all)
}

func testAppendEmpty(t *testing.T, s contract.EventStore) {
	mustAppend(t, s, ev("A", `{}`))
	for _, c := range []struct {
		name   string
		events []contract.NewEvent
	}{{"a nil slice", nil}, {"an empty slice", []contract.NewEvent{}}} {
		res, err := doAppend(s, c.events)
		if !errors.Is(err, contract.ErrEmptyAppend) {
			t.Errorf("Append of %s returned %+v, error %v; want an error matching contract.ErrEmptyAppend", c.name, res, err)
		}
	}
	res := mustAppend(t, s, ev("A", `{}`))
	if res.FirstSequenceNumber != 2 {
		t.Errorf("Append after rejected empty batches got First %d, want 2 (an empty batch consumes no number)", res.FirstSequenceNumber)
	}
	checkQuery(t, s, contract.EventQuery{}, span(1, 2), 2)
}

func testAppendIfEmpty(t *testing.T, s contract.EventStore) {
	mustAppend(t, s, ev("A", `{}`))
	contexts := []contract.EventQuery{{}, typeQ("A"), typeQ("Z")}
	for _, q := range contexts {
		for _, expected := range []uint64{0, 1, 7} {
			for _, events := range [][]contract.NewEvent{nil, {}} {
				res, err := doAppendIf(s, events, q, expected)
				if !errors.Is(err, contract.ErrEmptyAppend) {
					var ce *contract.ConflictError
					hint := ""
					if errors.As(err, &ce) {
						hint = " (validation must come before the version check)"
					}
					t.Errorf("AppendIf of an empty batch (nil=%v) on context %s, expected version %d: got %+v, error %v; want contract.ErrEmptyAppend%s",
						events == nil, fmtQuery(q), expected, res, err, hint)
				}
			}
		}
	}
	res := mustAppend(t, s, ev("A", `{}`))
	if res.FirstSequenceNumber != 2 {
		t.Errorf("Append after rejected empty AppendIf batches got First %d, want 2", res.FirstSequenceNumber)
	}
}

func testAppendInvalid(t *testing.T, s contract.EventStore) {
	mustAppend(t, s, ev("A", `{"ok":0}`))
	cases := []struct {
		name string
		bad  contract.NewEvent
	}{
		{"payload is not JSON", ev("A", `not json`)},
		{"payload is truncated JSON", ev("A", `{"a":`)},
		{"payload has trailing data", ev("A", `{"a":1}}`)},
		{"payload is empty", contract.NewEvent{Type: "A"}},
		{"type is empty", ev("", `{"a":1}`)},
	}
	for _, c := range cases {
		batch := evs(ev("A", `{"ok":1}`), c.bad, ev("A", `{"ok":2}`))
		res, err := doAppend(s, batch)
		if !errors.Is(err, contract.ErrInvalidEvent) {
			t.Errorf("Append of a batch whose 2nd event is invalid (%s): got %+v, error %v; want an error matching contract.ErrInvalidEvent", c.name, res, err)
		}
		res, err = doAppendIf(s, batch, contract.EventQuery{}, 1)
		if !errors.Is(err, contract.ErrInvalidEvent) {
			t.Errorf("AppendIf (with the right expected version) of a batch whose 2nd event is invalid (%s): got %+v, error %v; want an error matching contract.ErrInvalidEvent", c.name, res, err)
		}
	}
	// Nothing of the rejected batches may be visible, and no number consumed.
	checkQuery(t, s, contract.EventQuery{}, []uint64{1}, 1)
	res := mustAppend(t, s, ev("A", `{"ok":3}`))
	if res.FirstSequenceNumber != 2 {
		t.Errorf("Append after rejected invalid batches got First %d, want 2 (a rejected batch consumes no number)", res.FirstSequenceNumber)
	}
}

func testAppendNullPayload(t *testing.T, s contract.EventStore) {
	res := mustAppend(t, s, ev("A", `null`))
	if res.FirstSequenceNumber != 1 {
		t.Fatalf("Append of a null payload got First %d, want 1", res.FirstSequenceNumber)
	}
	q := mustQuery(t, s, contract.EventQuery{})
	if len(q.Events) != 1 {
		t.Fatalf("Query found %d events, want 1", len(q.Events))
	}
	v, err := contract.DecodeJSON(q.Events[0].Payload)
	if err != nil || v != nil {
		t.Errorf("payload of the appended null event came back as %q (decoded %v, error %v), want JSON null", q.Events[0].Payload, v, err)
	}
}

func testAppendOccurredAt(t *testing.T, s contract.EventStore) {
	before := time.Now()
	mustAppend(t, s, ev("A", `{"i":1}`), ev("B", `{"i":2}`), ev("A", `{"i":3}`))
	mustAppend(t, s, ev("A", `{"i":4}`), ev("B", `{"i":5}`))
	after := time.Now()
	res := mustQuery(t, s, contract.EventQuery{})
	if len(res.Events) != 5 {
		t.Fatalf("Query found %d events, want 5", len(res.Events))
	}
	for _, r := range res.Events {
		if r.OccurredAt.IsZero() {
			t.Errorf("event %d has a zero OccurredAt; the store must set it when the batch commits", r.SequenceNumber)
			continue
		}
		if r.OccurredAt.Before(before.Add(-time.Hour)) || r.OccurredAt.After(after.Add(time.Hour)) {
			t.Errorf("event %d OccurredAt %v is more than an hour away from the time of the append (%v..%v)", r.SequenceNumber, r.OccurredAt, before, after)
		}
	}
	for _, b := range [][2]int{{0, 3}, {3, 5}} {
		first := res.Events[b[0]].OccurredAt
		for _, r := range res.Events[b[0]+1 : b[1]] {
			if !r.OccurredAt.Equal(first) {
				t.Errorf("events of one batch have different OccurredAt: event %d has %v, event %d has %v; a batch commits at one instant",
					res.Events[b[0]].SequenceNumber, first, r.SequenceNumber, r.OccurredAt)
			}
		}
	}
}

func testAppendPayloadRoundTrip(t *testing.T, s contract.EventStore) {
	batch := evs(
		ev("Order Placed/v2 é", `{"s":"text","n":42,"f":-1.5,"b":true,"z":null,"a":[1,"two",{"three":3}],"o":{"nested":{"deep":[[]]}}}`),
		ev("A", `[1,2,3]`),
		ev("A", `"a string with \"quotes\", \\ backslash, unicode é and \u00e9, emoji 😀, newline \n"`),
		ev("A", `12345678901234567890123`),
		ev("A", `-0.000123`),
		ev("A", `true`),
		ev("A", `{}`),
		ev("A", `[]`),
		ev("A", "  { \"spaced\" :  [ 1 , 2 ] ,\n \"k\": \"v\" }  "),
		ev("A", `{"big":123456789012345678901234567890,"small":1e-30}`),
	)
	mustAppend(t, s, batch...)
	res := mustQuery(t, s, contract.EventQuery{})
	checkRecords(t, "Query after appending payloads of every JSON kind", res.Events, 1, batch)
}

func testAppendIfSucceeds(t *testing.T, s contract.EventStore) {
	res := mustAppendIf(t, s, typeQ("A"), 0, ev("A", `{"i":1}`))
	if res.FirstSequenceNumber != 1 {
		t.Fatalf("AppendIf with expected 0 on an empty context got First %d, want 1", res.FirstSequenceNumber)
	}
	res = mustAppendIf(t, s, typeQ("A"), 1, ev("A", `{"i":2}`), ev("B", `{"i":3}`))
	if want := (contract.AppendResult{FirstSequenceNumber: 2, LastSequenceNumber: 3, CommittedCount: 2}); res != want {
		t.Fatalf("AppendIf with the current version got %+v, want %+v", res, want)
	}
	// A context of every event; its version is 3.
	res = mustAppendIf(t, s, contract.EventQuery{}, 3, ev("C", `{"i":4}`))
	if res.FirstSequenceNumber != 4 {
		t.Fatalf("AppendIf on the all-events context with expected 3 got First %d, want 4", res.FirstSequenceNumber)
	}
	// A context that still has no match: expected 0 succeeds.
	res = mustAppendIf(t, s, typeQ("Z"), 0, ev("Z", `{"i":5}`))
	if res.FirstSequenceNumber != 5 {
		t.Fatalf("AppendIf with expected 0 on a context without matches got First %d, want 5", res.FirstSequenceNumber)
	}
	checkQuery(t, s, contract.EventQuery{}, span(1, 5), 5)
}

func expectConflict(t testing.TB, s contract.EventStore, q contract.EventQuery, expected, actual uint64) {
	t.Helper()
	res, err := doAppendIf(s, evs(ev("A", `{"conflict":true}`)), q, expected)
	var ce *contract.ConflictError
	if !errors.As(err, &ce) {
		t.Fatalf("AppendIf on context %s with expected %d (actual %d): got %+v, error %v; want a *contract.ConflictError", fmtQuery(q), expected, actual, res, err)
	}
	if ce.Expected != expected || ce.Actual != actual {
		t.Errorf("AppendIf on context %s: ConflictError{Expected: %d, Actual: %d}, want {Expected: %d, Actual: %d}", fmtQuery(q), ce.Expected, ce.Actual, expected, actual)
	}
}

func testAppendIfConflict(t *testing.T, s contract.EventStore) {
	mustAppend(t, s, ev("A", `{"i":1}`))
	mustAppend(t, s, ev("B", `{"i":2}`))
	expectConflict(t, s, typeQ("A"), 0, 1)            // context moved
	expectConflict(t, s, typeQ("A"), 5, 1)            // expected ahead of actual
	expectConflict(t, s, typeQ("C"), 3, 0)            // empty context, non-zero expected
	expectConflict(t, s, contract.EventQuery{}, 1, 2) // all events
}

func testAppendIfConflictAppendsNothing(t *testing.T, s contract.EventStore) {
	mustAppend(t, s, ev("A", `{"i":1}`), ev("B", `{"i":2}`))
	for i := 0; i < 3; i++ {
		expectConflict(t, s, typeQ("A"), 0, 1)
	}
	checkQuery(t, s, contract.EventQuery{}, span(1, 2), 2)
	res := mustAppend(t, s, ev("B", `{"i":3}`))
	if res.FirstSequenceNumber != 3 {
		t.Errorf("Append after failed AppendIf calls got First %d, want 3 (a failed AppendIf consumes no number)", res.FirstSequenceNumber)
	}
}

func testAppendIfContextFilters(t *testing.T, s contract.EventStore) {
	mustAppend(t, s, ev("A", `{"k":"x"}`)) // 1
	mustAppend(t, s, ev("B", `{"k":"x"}`)) // 2
	mustAppend(t, s, ev("B", `{"k":"y"}`)) // 3
	// The context on type A is still at 1: appends of B do not move it.
	res := mustAppendIf(t, s, typeQ("A"), 1, ev("A", `{"k":"y"}`)) // 4
	if res.FirstSequenceNumber != 4 {
		t.Fatalf("AppendIf got First %d, want 4", res.FirstSequenceNumber)
	}
	// A context with a predicate: {"k":"x"} on type A is still at 1.
	ctxAX := query(filter(types("A"), `{"k":"x"}`))
	res = mustAppendIf(t, s, ctxAX, 1, ev("C", `{}`)) // 5
	if res.FirstSequenceNumber != 5 {
		t.Fatalf("AppendIf got First %d, want 5", res.FirstSequenceNumber)
	}
	expectConflict(t, s, typeQ("A"), 1, 4)
	// MinSequenceNumber does not narrow the context version.
	res = mustAppendIf(t, s, withMin(typeQ("A"), 100), 4, ev("A", `{}`)) // 6
	if res.FirstSequenceNumber != 6 {
		t.Fatalf("AppendIf got First %d, want 6", res.FirstSequenceNumber)
	}
	expectConflict(t, s, withMin(typeQ("A"), 100), 0, 6)
	// OR across filters: A or (B with k=y) -> 6.
	expectConflict(t, s, query(filter(types("A")), filter(types("B"), `{"k":"y"}`)), 3, 6)
}
