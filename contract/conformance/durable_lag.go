package conformance

import (
	"testing"
	"time"

	"github.com/factstr/factstr-go/contract"
)

// DurableInfo.LagTime is how long the first event a name has still to
// handle has waited: 0 for a caught-up name (filtered or not, whatever
// follows its cursor without a match), else now minus that event's
// OccurredAt, not an older or newer event's.
func testAdminLagTime(t *testing.T, s contract.EventStore) {
	a := admin(t, s)
	rec := NewRecorder(nil)
	sub := streamToDurable(t, s, "c", typeQ("C"), rec)
	mustAppend(t, s, ev("C", `{}`)) // 1
	expectBatch(t, rec, "live", 1)
	mustAppend(t, s, ev("B", `{}`)) // 2: no match
	waitInfo(t, a, "c", "the caught-up filtered name to have no lag time", func(i contract.DurableInfo) bool {
		return i.Cursor >= 1 && i.Head == 2 && i.LagTime == 0
	})
	sub.Unsubscribe()
	<-sub.Done()

	mustAppend(t, s, ev("C", `{}`)) // 3: the first event "c" has not handled
	ctx, cancel := opCtx()
	defer cancel()
	res, err := s.Query(ctx, contract.EventQuery{Filters: typeQ("C").Filters, MinSequenceNumber: 2})
	if err != nil || len(res.Events) != 1 {
		t.Fatalf("query the pending event: %+v, %v", res, err)
	}
	pending := res.Events[0].OccurredAt
	// The stores' clocks are this process's clock (or, over gRPC, the
	// same machine's): the lag lies between the pending event's age
	// before and after the read. Wire encodings may round to a
	// microsecond.
	const slack = time.Millisecond
	before := time.Since(pending)
	info := mustGet(t, a, "c")
	after := time.Since(pending)
	if (info.Cursor != 1 && info.Cursor != 2) || info.LagTime < before-slack || info.LagTime > after+slack || info.LagTime <= 0 {
		t.Fatalf("GetDurable: cursor %d, lag time %v; want cursor 1 or 2 and a lag time in [%v, %v] (the age of event 3)",
			info.Cursor, info.LagTime, before, after)
	}
	infos, err := a.ListDurable(ctx)
	if err != nil || len(infos) != 1 || infos[0].LagTime < before-slack {
		t.Fatalf("ListDurable: %+v, %v; want one name with a lag time of at least %v", infos, err, before)
	}
}
