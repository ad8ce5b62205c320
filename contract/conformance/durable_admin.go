package conformance

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/factstr/factstr-go/contract"
)

// adminCases check contract.DurableAdmin, which every store implements.
func adminCases() []testCase {
	return []testCase{
		{"ListEmpty", testAdminListEmpty},
		{"ListAndGet", testAdminListAndGet},
		{"GetUnknown", testAdminGetUnknown},
		{"CaughtUpFilteredHasNoLag", testAdminFilteredLag},
		{"LagTime", testAdminLagTime},
		{"ResetRefusedWhileHeld", testAdminResetHeld},
		{"ResetMovesCursor", testAdminReset},
		{"ResetForcedTakesTheName", testAdminResetForced},
		{"DeleteRefusedWhileHeld", testAdminDeleteHeld},
		{"DeleteAllowsANewQuery", testAdminDelete},
		{"DeleteForced", testAdminDeleteForced},
	}
}

func admin(t *testing.T, s contract.EventStore) contract.DurableAdmin {
	t.Helper()
	a, ok := s.(contract.DurableAdmin)
	if !ok {
		t.Fatalf("%T does not implement contract.DurableAdmin; every store manages its durable names", s)
	}
	return a
}

func mustGet(t *testing.T, a contract.DurableAdmin, name string) contract.DurableInfo {
	t.Helper()
	ctx, cancel := opCtx()
	defer cancel()
	info, err := a.GetDurable(ctx, name)
	if err != nil {
		t.Fatalf("GetDurable %q: %v", name, err)
	}
	return info
}

// waitInfo polls name until cond holds, for up to WaitTimeout.
func waitInfo(t *testing.T, a contract.DurableAdmin, name, what string, cond func(contract.DurableInfo) bool) contract.DurableInfo {
	t.Helper()
	deadline := time.Now().Add(WaitTimeout)
	for {
		info := mustGet(t, a, name)
		if cond(info) {
			return info
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s; GetDurable %q is %+v", WaitTimeout, what, name, info)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func resetTo(t *testing.T, a contract.DurableAdmin, name string, to contract.StartPosition, force bool) (contract.DurableInfo, error) {
	ctx, cancel := opCtx()
	defer cancel()
	return a.ResetDurable(ctx, name, to, force)
}

func deleteName(a contract.DurableAdmin, name string, force bool) error {
	ctx, cancel := opCtx()
	defer cancel()
	return a.DeleteDurable(ctx, name, force)
}

func after(seq uint64) contract.StartPosition {
	return contract.StartPosition{Kind: contract.StartAfterSequence, After: seq}
}

func testAdminListEmpty(t *testing.T, s contract.EventStore) {
	ctx, cancel := opCtx()
	defer cancel()
	infos, err := admin(t, s).ListDurable(ctx)
	if err != nil || len(infos) != 0 {
		t.Fatalf("ListDurable on a fresh store: %+v, %v; want no names", infos, err)
	}
}

func testAdminListAndGet(t *testing.T, s contract.EventStore) {
	a := admin(t, s)
	start := time.Now().Add(-time.Minute)
	threeBatches(t, s) // 1..6
	recE := NewRecorder(nil)
	subE := durableWith(t, s, "e", typeQ("A"), recE, contract.StartAfter(3))
	expectBatches(t, recE, "e, after 3, type A", [][]uint64{{5}})
	recD := NewRecorder(nil)
	subD := durableWith(t, s, "d", contract.EventQuery{}, recD, contract.StartAtEnd())
	recD.ExpectNone(t, "d, at the end")
	// A running subscription stores its cursor after its deliveries.
	waitInfo(t, a, "e", "e's cursor to pass its delivery", func(i contract.DurableInfo) bool { return i.Cursor >= 5 })

	ctx, cancel := opCtx()
	defer cancel()
	infos, err := a.ListDurable(ctx)
	if err != nil {
		t.Fatalf("ListDurable: %v", err)
	}
	if len(infos) != 2 || infos[0].Name != "d" || infos[1].Name != "e" {
		t.Fatalf("ListDurable: %+v, want d and e in name order", infos)
	}
	d, e := infos[0], infos[1]
	check := func(what string, ok bool) {
		t.Helper()
		if !ok {
			t.Errorf("%s; d: %+v, e: %+v", what, d, e)
		}
	}
	check("d holds the filters it was created with (none)", len(d.Query.Filters) == 0)
	check("e holds the filters it was created with (type A)", len(e.Query.Filters) == 1 && fmt.Sprint(e.Query.Filters[0].EventTypes) == "[A]")
	check("the start each was created with is recorded", d.Start.Kind == contract.StartEnd && e.Start == after(3))
	check("d's cursor is the end of the log when it was created (6)", d.Cursor == 6)
	check("e's cursor is after its last delivery (5 or, having passed 6, 6)", e.Cursor == 5 || e.Cursor == 6)
	check("the head is 6", d.Head == 6 && e.Head == 6)
	check("the lag is head - cursor", d.Lag == d.Head-d.Cursor && e.Lag == e.Head-e.Cursor)
	check("both are held", d.Holder != "" && e.Holder != "")
	check("e's cursor moved after its creation, d's never", !e.LastAck.IsZero() && !e.LastAck.Before(start) && (d.LastAck.IsZero() || d.Cursor != 6))

	mustAppend(t, s, ev("A", `{}`)) // 7
	expectBatch(t, recD, "d, live", 7)
	expectBatch(t, recE, "e, live", 7)
	recD.Settle(t)
	recE.Settle(t)
	waitInfo(t, a, "d", "d's cursor to reach 7", func(i contract.DurableInfo) bool { return i.Cursor == 7 && i.Lag == 0 && !i.LastAck.IsZero() })
	unsubscribe(t, subD)
	unsubscribe(t, subE)
	waitInfo(t, a, "e", "e to be free after Unsubscribe", func(i contract.DurableInfo) bool { return i.Holder == "" && i.Cursor == 7 })
}

func testAdminGetUnknown(t *testing.T, s contract.EventStore) {
	ctx, cancel := opCtx()
	defer cancel()
	if _, err := admin(t, s).GetDurable(ctx, "nope"); !errors.Is(err, contract.ErrDurableNotFound) {
		t.Fatalf("GetDurable of an unknown name: %v, want contract.ErrDurableNotFound", err)
	}
	if _, err := resetTo(t, admin(t, s), "nope", contract.StartPosition{}, false); !errors.Is(err, contract.ErrDurableNotFound) {
		t.Fatalf("ResetDurable of an unknown name: %v, want contract.ErrDurableNotFound", err)
	}
	if err := deleteName(admin(t, s), "nope", true); !errors.Is(err, contract.ErrDurableNotFound) {
		t.Fatalf("DeleteDurable of an unknown name: %v, want contract.ErrDurableNotFound", err)
	}
}

// A filtered stream that is caught up reports no lag, although the events
// after its last match did not match.
func testAdminFilteredLag(t *testing.T, s contract.EventStore) {
	a := admin(t, s)
	rec := NewRecorder(nil)
	streamToDurable(t, s, "e", typeQ("A"), rec)
	mustAppend(t, s, ev("A", `{}`)) // 1
	expectBatch(t, rec, "live", 1)
	for range 3 {
		mustAppend(t, s, ev("B", `{}`)) // 2..4
	}
	waitInfo(t, a, "e", "the caught-up filtered stream to report lag 0", func(i contract.DurableInfo) bool {
		return i.Head == 4 && i.Lag == 0
	})
}

func testAdminResetHeld(t *testing.T, s contract.EventStore) {
	a := admin(t, s)
	threeBatches(t, s)
	rec := NewRecorder(nil)
	streamAllDurable(t, s, "d", rec)
	rec.Settle(t)
	// A running subscription stores its cursor after its deliveries.
	before := waitInfo(t, a, "d", "the cursor of the replayed name to reach 6", func(i contract.DurableInfo) bool { return i.Cursor == 6 })
	if _, err := resetTo(t, a, "d", contract.StartPosition{}, false); !errors.Is(err, contract.ErrDurableNameInUse) {
		t.Fatalf("ResetDurable of a held name without force: %v, want contract.ErrDurableNameInUse", err)
	}
	if after := mustGet(t, a, "d"); after.Cursor != before.Cursor || after.Holder == "" {
		t.Fatalf("a refused reset changed the name: before %+v, after %+v", before, after)
	}
}

func testAdminReset(t *testing.T, s contract.EventStore) {
	a := admin(t, s)
	threeBatches(t, s) // 1..6
	rec := NewRecorder(nil)
	sub := streamAllDurable(t, s, "d", rec)
	rec.Settle(t)
	unsubscribe(t, sub)
	cases := []struct {
		to     contract.StartPosition
		cursor uint64
		replay [][]uint64
	}{
		{after(2), 2, [][]uint64{{3}, {4, 5, 6}}},
		{contract.StartPosition{}, 0, [][]uint64{{1, 2}, {3}, {4, 5, 6}}},
		{contract.StartPosition{Kind: contract.StartEnd}, 6, nil},
		{after(5), 5, [][]uint64{{6}}},
	}
	for _, c := range cases {
		info, err := resetTo(t, a, "d", c.to, false)
		if err != nil || info.Cursor != c.cursor || info.Lag != 6-c.cursor {
			t.Fatalf("ResetDurable to %s: %+v, %v; want cursor %d", c.to, info, err, c.cursor)
		}
		again := NewRecorder(nil)
		sub := durableRetry(t, "StreamAllDurable after a reset", allDurable(s, "d", again))
		expectBatches(t, again, fmt.Sprintf("resubscribed after a reset to %s", c.to), c.replay)
		again.Settle(t)
		unsubscribe(t, sub)
	}
	if _, err := resetTo(t, a, "d", after(7), false); !errors.Is(err, contract.ErrPositionAhead) {
		t.Fatalf("ResetDurable after 7 with the log at 6: %v, want contract.ErrPositionAhead", err)
	}
}

func testAdminResetForced(t *testing.T, s contract.EventStore) {
	a := admin(t, s)
	threeBatches(t, s)
	rec := NewRecorder(nil)
	sub := streamAllDurable(t, s, "d", rec)
	rec.Settle(t)
	info, err := resetTo(t, a, "d", after(3), true)
	if err != nil || info.Cursor != 3 {
		t.Fatalf("forced ResetDurable of a held name: %+v, %v; want cursor 3", info, err)
	}
	// The former holder cannot move the cursor any more; once it is gone
	// the name resumes from the reset position.
	unsubscribe(t, sub)
	again := NewRecorder(nil)
	durableRetry(t, "StreamAllDurable after a forced reset", allDurable(s, "d", again))
	expectBatches(t, again, "resubscribed after a forced reset to after 3", [][]uint64{{4, 5, 6}})
}

func testAdminDeleteHeld(t *testing.T, s contract.EventStore) {
	a := admin(t, s)
	rec := NewRecorder(nil)
	streamAllDurable(t, s, "d", rec)
	if err := deleteName(a, "d", false); !errors.Is(err, contract.ErrDurableNameInUse) {
		t.Fatalf("DeleteDurable of a held name without force: %v, want contract.ErrDurableNameInUse", err)
	}
	mustGet(t, a, "d")
}

func testAdminDelete(t *testing.T, s contract.EventStore) {
	a := admin(t, s)
	threeBatches(t, s)
	rec := NewRecorder(nil)
	sub := streamToDurable(t, s, "d", typeQ("A"), rec)
	rec.Settle(t)
	unsubscribe(t, sub)
	if err := deleteName(a, "d", false); err != nil {
		t.Fatalf("DeleteDurable of a free name: %v", err)
	}
	ctx, cancel := opCtx()
	defer cancel()
	if _, err := a.GetDurable(ctx, "d"); !errors.Is(err, contract.ErrDurableNotFound) {
		t.Fatalf("GetDurable after DeleteDurable: %v, want contract.ErrDurableNotFound", err)
	}
	// The name is created anew, with another query.
	again := NewRecorder(nil)
	durableWith(t, s, "d", typeQ("B"), again)
	expectBatches(t, again, "a deleted name subscribed with another query", [][]uint64{{2}, {4, 6}})
}

func testAdminDeleteForced(t *testing.T, s contract.EventStore) {
	a := admin(t, s)
	mustAppend(t, s, ev("A", `{}`))
	rec := NewRecorder(nil)
	sub := streamAllDurable(t, s, "d", rec)
	rec.Settle(t)
	if err := deleteName(a, "d", true); err != nil {
		t.Fatalf("forced DeleteDurable of a held name: %v", err)
	}
	unsubscribe(t, sub)
	again := NewRecorder(nil)
	durableRetry(t, "StreamAllDurable after a forced delete", allDurable(s, "d", again))
	expectBatches(t, again, "the name created anew after a forced delete", [][]uint64{{1}})
}
