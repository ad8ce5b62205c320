package conformance

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/factstr/factstr-go/contract"
)

// parkCases check the failure policies of durable names: stop (the
// default) and retry N then park, with the parked list's management.
//
// A store that cannot park (the suite's own reference store) refuses
// contract.RetryThenPark with errors.ErrUnsupported; these cases skip it.
// Every FACTSTR store parks.
func parkCases() []testCase {
	return []testCase{
		{"StopIsTheDefault", testParkStopDefault},
		{"RetriesThenParksAndMovesOn", testParkRetriesThenParks},
		{"RedeliveryFailingParksAgainThenClears", testParkRedeliver},
		{"DropUpToAndAll", testParkDrop},
		{"DeleteForgetsParked", testParkDelete},
		{"PolicyKeptForExistingName", testParkPolicyKept},
		{"InvalidPolicyRefused", testParkInvalid},
		{"UnsubscribeDuringRetriesParksNothing", testParkUnsubscribeDuringRetries},
	}
}

// Backoffs short enough for a test, long enough to be seen.
const (
	parkBackoff    = 40 * time.Millisecond
	parkBackoffMax = 80 * time.Millisecond
)

// parkDelivery is one handler call seen by a parkHandler.
type parkDelivery struct {
	seqs     []uint64
	info     contract.Delivery
	hasInfo  bool
	at       time.Time
	returned error
}

// parkHandler fails every batch holding an event of type "Bad" while
// failing is set, and records every call.
type parkHandler struct {
	failing atomic.Bool

	mu      sync.Mutex
	calls   []parkDelivery
	changed chan struct{}
}

func newParkHandler() *parkHandler {
	h := &parkHandler{changed: make(chan struct{})}
	h.failing.Store(true)
	return h
}

func (h *parkHandler) handle(ctx context.Context, batch []contract.EventRecord) error {
	var err error
	if h.failing.Load() && slices.ContainsFunc(batch, func(e contract.EventRecord) bool { return e.Type == "Bad" }) {
		err = fmt.Errorf("cannot handle bad event %d", batch[0].SequenceNumber)
	}
	info, ok := contract.DeliveryInfo(ctx)
	h.mu.Lock()
	h.calls = append(h.calls, parkDelivery{seqs: seqsOf(batch), info: info, hasInfo: ok, at: time.Now(), returned: err})
	close(h.changed)
	h.changed = make(chan struct{})
	h.mu.Unlock()
	return err
}

// waitCalls waits until at least n calls were made and returns them all.
func (h *parkHandler) waitCalls(t testing.TB, n int, what string) []parkDelivery {
	t.Helper()
	deadline := time.After(WaitTimeout)
	for {
		h.mu.Lock()
		calls, ch := slices.Clone(h.calls), h.changed
		h.mu.Unlock()
		if len(calls) >= n {
			return calls
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("%s: waited %v for %d handler calls, got %d: %v", what, WaitTimeout, n, len(calls), fmtCalls(calls))
		}
	}
}

func fmtCalls(calls []parkDelivery) string {
	parts := make([]string, len(calls))
	for i, c := range calls {
		parts[i] = fmt.Sprintf("%v attempt %d redelivery %v", c.seqs, c.info.Attempt, c.info.Redelivery)
	}
	return "[" + strings.Join(parts, "; ") + "]"
}

// subscribePark subscribes h to name (every event) with opts, skipping
// the test on a store that cannot park.
func subscribePark(t *testing.T, s contract.EventStore, name string, h *parkHandler, opts ...contract.DurableOption) contract.Subscription {
	t.Helper()
	sub, err := s.StreamAllDurable(t.Context(), name, h.handle, opts...)
	if errors.Is(err, errors.ErrUnsupported) {
		t.Skipf("%T does not park: %v", s, err)
	}
	return keep(t, sub, err, fmt.Sprintf("StreamAllDurable %q with a failure policy", name))
}

func retryThenPark(n int) contract.DurableOption {
	return contract.RetryThenPark(n, parkBackoff, parkBackoffMax)
}

func listParked(t *testing.T, a contract.DurableAdmin, name string, after uint64, limit int) []contract.ParkedEvent {
	t.Helper()
	ctx, cancel := opCtx()
	defer cancel()
	ps, err := a.ListParked(ctx, name, after, limit)
	if err != nil {
		t.Fatalf("ListParked %q: %v", name, err)
	}
	return ps
}

func parkedSeqs(ps []contract.ParkedEvent) []uint64 {
	out := make([]uint64, len(ps))
	for i, p := range ps {
		out[i] = p.Event.SequenceNumber
	}
	return out
}

// waitParked polls name's parked list until cond holds.
func waitParked(t *testing.T, a contract.DurableAdmin, name, what string, cond func([]contract.ParkedEvent) bool) []contract.ParkedEvent {
	t.Helper()
	deadline := time.Now().Add(WaitTimeout)
	for {
		ps := listParked(t, a, name, 0, 0)
		if cond(ps) {
			return ps
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s; the parked list of %q is %+v", WaitTimeout, what, name, ps)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// checkAttempts checks calls are the deliveries of seqs numbered 1..n,
// flagged redelivery or not, with pauses of at least the policy's backoff.
func checkAttempts(t *testing.T, calls []parkDelivery, seqs []uint64, n int, redelivery bool, what string) {
	t.Helper()
	if len(calls) != n {
		t.Fatalf("%s: %d deliveries, want %d: %s", what, len(calls), n, fmtCalls(calls))
	}
	for i, c := range calls {
		if !slices.Equal(c.seqs, seqs) || !c.hasInfo || c.info.Attempt != i+1 || c.info.Redelivery != redelivery {
			t.Fatalf("%s: delivery %d was %v (DeliveryInfo %+v, present %v), want %v attempt %d redelivery %v; all: %s",
				what, i+1, c.seqs, c.info, c.hasInfo, seqs, i+1, redelivery, fmtCalls(calls))
		}
		if i > 0 {
			// Loosely: timers may fire late, never (much) early.
			want := parkBackoff << (i - 1)
			want = min(want, parkBackoffMax) * 9 / 10
			if gap := c.at.Sub(calls[i-1].at); gap < want {
				t.Errorf("%s: delivery %d came %v after the failed one, want at least about %v (backoff)", what, i+1, gap, want)
			}
		}
	}
}

func testParkStopDefault(t *testing.T, s contract.EventStore) {
	a := admin(t, s)
	mustAppend(t, s, ev("Good", `{}`)) // 1
	h := newParkHandler()
	subscribePark(t, s, "d", h)
	calls := h.waitCalls(t, 1, "a stop stream's first delivery")
	if !calls[0].hasInfo || calls[0].info != (contract.Delivery{Attempt: 1}) {
		t.Errorf("DeliveryInfo of a first delivery is %+v (present %v), want attempt 1, not a redelivery", calls[0].info, calls[0].hasInfo)
	}
	info := mustGet(t, a, "d")
	if info.Failure.Parks() || info.Failure.String() != "stop" || info.Parked != 0 {
		t.Errorf("a name created without a policy: Failure %v, Parked %d; want stop and 0", info.Failure, info.Parked)
	}
	mustAppend(t, s, ev("Bad", `{}`)) // 2: the stream ends on it
	waitInfo(t, a, "d", "the stop stream to end and free its name, cursor at 1", func(i contract.DurableInfo) bool {
		return i.Holder == "" && i.Cursor == 1
	})
	calls = h.waitCalls(t, 2, "the failing batch")
	if len(calls) != 2 {
		t.Errorf("a stop policy retried: %s", fmtCalls(calls))
	}
	if ps := listParked(t, a, "d", 0, 0); len(ps) != 0 {
		t.Errorf("a stop policy parked %v", parkedSeqs(ps))
	}
}

// parkOne subscribes h to "d" with retry 3 then park, where event 1 is bad
// and 2 good, and waits until 1 was parked and 2 handled.
func parkOne(t *testing.T, s contract.EventStore, h *parkHandler) contract.Subscription {
	t.Helper()
	mustAppend(t, s, ev("Bad", `{"n":1}`))  // 1
	mustAppend(t, s, ev("Good", `{"n":2}`)) // 2
	sub := subscribePark(t, s, "d", h, retryThenPark(3))
	calls := h.waitCalls(t, 4, "three deliveries of the bad batch, then the good one")
	checkAttempts(t, calls[:3], []uint64{1}, 3, false, "retry 3 then park, bad batch")
	if c := calls[3]; !slices.Equal(c.seqs, []uint64{2}) || c.info.Attempt != 1 || c.info.Redelivery {
		t.Fatalf("after parking, the next delivery was %v (%+v), want [2] attempt 1: %s", c.seqs, c.info, fmtCalls(calls))
	}
	return sub
}

func testParkRetriesThenParks(t *testing.T, s contract.EventStore) {
	a := admin(t, s)
	h := newParkHandler()
	sub := parkOne(t, s, h)
	info := waitInfo(t, a, "d", "the cursor past the parked and the handled batch", func(i contract.DurableInfo) bool { return i.Cursor == 2 })
	if info.Parked != 1 || info.Failure.MaxDeliveries != 3 || info.Failure.InitialBackoff != parkBackoff || info.Failure.MaxBackoff != parkBackoffMax {
		t.Errorf("GetDurable: Parked %d, Failure %+v; want 1 and retry 3 then park (backoff %v..%v)", info.Parked, info.Failure, parkBackoff, parkBackoffMax)
	}
	ps := listParked(t, a, "d", 0, 0)
	if len(ps) != 1 {
		t.Fatalf("parked list %+v, want event 1", ps)
	}
	p := ps[0]
	if p.Event.SequenceNumber != 1 || p.Event.Type != "Bad" || p.Attempts != 3 || !strings.Contains(p.LastError, "cannot handle bad event 1") || p.Redeliver || p.ParkedAt.IsZero() {
		t.Errorf("parked event %+v: want event 1 (Bad), 3 attempts, the handler's error, a time, no redelivery asked", p)
	}
	select {
	case <-sub.Done():
		t.Fatalf("the stream ended after parking (Err %v); it must go on", sub.Err())
	default:
	}
	mustAppend(t, s, ev("Good", `{"n":3}`)) // 3
	calls := h.waitCalls(t, 5, "a live batch after parking")
	if c := calls[4]; !slices.Equal(c.seqs, []uint64{3}) || c.info.Attempt != 1 {
		t.Errorf("live delivery after parking was %v (%+v), want [3] attempt 1", c.seqs, c.info)
	}
	if got := listParked(t, a, "d", 1, 0); len(got) != 0 {
		t.Errorf("ListParked after 1: %v, want none", parkedSeqs(got))
	}
}

func testParkRedeliver(t *testing.T, s contract.EventStore) {
	a := admin(t, s)
	h := newParkHandler()
	parkOne(t, s, h)
	ctx, cancel := opCtx()
	defer cancel()
	// Still failing: three redeliveries, then parked again.
	n, err := a.RedeliverParked(ctx, "d", 0)
	if err != nil || n != 1 {
		t.Fatalf("RedeliverParked: %d, %v; want 1 event", n, err)
	}
	calls := h.waitCalls(t, 7, "three redeliveries of the parked event")
	checkAttempts(t, calls[4:7], []uint64{1}, 3, true, "redelivery of a parked event, still failing")
	ps := waitParked(t, a, "d", "the failed redelivery parked again", func(ps []contract.ParkedEvent) bool {
		return len(ps) == 1 && ps[0].Attempts == 6 && !ps[0].Redeliver
	})
	if ps[0].Event.SequenceNumber != 1 {
		t.Fatalf("parked again: %+v, want event 1", ps)
	}
	// Fixed: one redelivery, then the list is empty.
	h.failing.Store(false)
	if n, err := a.RedeliverParked(ctx, "d", 1); err != nil || n != 1 {
		t.Fatalf("RedeliverParked up to 1: %d, %v; want 1 event", n, err)
	}
	calls = h.waitCalls(t, 8, "the redelivery once the handler is fixed")
	if c := calls[7]; !slices.Equal(c.seqs, []uint64{1}) || c.info != (contract.Delivery{Attempt: 1, Redelivery: true}) {
		t.Fatalf("redelivery was %v (%+v), want [1] attempt 1 redelivery", c.seqs, c.info)
	}
	waitParked(t, a, "d", "the handled redelivery to leave the parked list", func(ps []contract.ParkedEvent) bool { return len(ps) == 0 })
	waitInfo(t, a, "d", "Parked 0", func(i contract.DurableInfo) bool { return i.Parked == 0 && i.Cursor == 2 })
	if n, err := a.RedeliverParked(ctx, "d", 0); err != nil || n != 0 {
		t.Errorf("RedeliverParked of an empty list: %d, %v; want 0, nil", n, err)
	}
	if _, err := a.RedeliverParked(ctx, "nope", 0); !errors.Is(err, contract.ErrDurableNotFound) {
		t.Errorf("RedeliverParked of an unknown name: %v, want ErrDurableNotFound", err)
	}
}

func testParkDrop(t *testing.T, s contract.EventStore) {
	a := admin(t, s)
	h := newParkHandler()
	parkOne(t, s, h)
	mustAppend(t, s, ev("Bad", `{"n":3}`), ev("Good", `{"n":4}`)) // 3, 4: one batch
	h.waitCalls(t, 7, "the second bad batch's deliveries")
	ps := waitParked(t, a, "d", "events 1, 3 and 4 parked", func(ps []contract.ParkedEvent) bool { return len(ps) == 3 })
	if got := parkedSeqs(ps); !slices.Equal(got, []uint64{1, 3, 4}) {
		t.Fatalf("parked %v, want [1 3 4] (a batch is parked whole)", got)
	}
	if got := parkedSeqs(listParked(t, a, "d", 1, 1)); !slices.Equal(got, []uint64{3}) {
		t.Errorf("ListParked after 1, limit 1: %v, want [3]", got)
	}
	ctx, cancel := opCtx()
	defer cancel()
	if n, err := a.DropParked(ctx, "d", 3); err != nil || n != 2 {
		t.Fatalf("DropParked up to 3: %d, %v; want 2", n, err)
	}
	if got := parkedSeqs(listParked(t, a, "d", 0, 0)); !slices.Equal(got, []uint64{4}) {
		t.Errorf("after DropParked up to 3: %v, want [4]", got)
	}
	if n, err := a.DropParked(ctx, "d", 0); err != nil || n != 1 {
		t.Fatalf("DropParked all: %d, %v; want 1", n, err)
	}
	if info := mustGet(t, a, "d"); info.Parked != 0 || info.Cursor != 4 {
		t.Errorf("after dropping all: Parked %d, Cursor %d; want 0 and 4", info.Parked, info.Cursor)
	}
	if _, err := a.DropParked(ctx, "nope", 0); !errors.Is(err, contract.ErrDurableNotFound) {
		t.Errorf("DropParked of an unknown name: %v, want ErrDurableNotFound", err)
	}
}

func testParkDelete(t *testing.T, s contract.EventStore) {
	a := admin(t, s)
	h := newParkHandler()
	sub := parkOne(t, s, h)
	unsubscribe(t, sub)
	waitInfo(t, a, "d", "the name free", func(i contract.DurableInfo) bool { return i.Holder == "" })
	if err := deleteName(a, "d", false); err != nil {
		t.Fatalf("DeleteDurable: %v", err)
	}
	ctx, cancel := opCtx()
	defer cancel()
	if _, err := a.ListParked(ctx, "d", 0, 0); !errors.Is(err, contract.ErrDurableNotFound) {
		t.Errorf("ListParked of a deleted name: %v, want ErrDurableNotFound", err)
	}
	h2 := newParkHandler()
	h2.failing.Store(false)
	subscribePark(t, s, "d", h2, retryThenPark(2), contract.StartAtEnd())
	if ps := listParked(t, a, "d", 0, 0); len(ps) != 0 {
		t.Errorf("a name created again after a delete has parked events %v", parkedSeqs(ps))
	}
	if info := mustGet(t, a, "d"); info.Parked != 0 || info.Failure.MaxDeliveries != 2 {
		t.Errorf("the new name: Parked %d, Failure %v; want 0 and retry 2 then park", info.Parked, info.Failure)
	}
}

func testParkPolicyKept(t *testing.T, s contract.EventStore) {
	a := admin(t, s)
	h := newParkHandler()
	h.failing.Store(false)
	sub := subscribePark(t, s, "p", h, retryThenPark(2))
	unsubscribe(t, sub)
	for _, opts := range [][]contract.DurableOption{nil, {retryThenPark(5)}, {contract.Stop()}} {
		sub := durableRetry(t, "subscribe again with another policy", func() (contract.Subscription, error) {
			return s.StreamAllDurable(t.Context(), "p", h.handle, opts...)
		})
		if info := mustGet(t, a, "p"); info.Failure.MaxDeliveries != 2 {
			t.Errorf("an existing name's policy changed to %v; it keeps retry 2 then park", info.Failure)
		}
		unsubscribe(t, sub)
	}
	// And a stop name stays stop.
	sub = durableRetry(t, "a stop name", func() (contract.Subscription, error) {
		return s.StreamAllDurable(t.Context(), "s", h.handle)
	})
	unsubscribe(t, sub)
	sub = durableRetry(t, "a stop name asked to park", func() (contract.Subscription, error) {
		return s.StreamAllDurable(t.Context(), "s", h.handle, retryThenPark(4))
	})
	if info := mustGet(t, a, "s"); info.Failure.Parks() {
		t.Errorf("an existing stop name took the policy %v", info.Failure)
	}
	unsubscribe(t, sub)
}

func testParkInvalid(t *testing.T, s contract.EventStore) {
	a := admin(t, s)
	h := newParkHandler()
	for _, p := range []contract.FailurePolicy{
		{MaxDeliveries: -1},
		{MaxDeliveries: contract.MaxFailureDeliveries + 1},
		{MaxDeliveries: 2, InitialBackoff: time.Second, MaxBackoff: time.Millisecond},
	} {
		sub, err := s.StreamAllDurable(t.Context(), "bad", h.handle, contract.WithFailurePolicy(p))
		if errors.Is(err, errors.ErrUnsupported) {
			t.Skipf("%T does not park", s)
		}
		if err == nil {
			sub.Unsubscribe()
			t.Fatalf("the failure policy %+v was accepted", p)
		}
		if !errors.Is(err, contract.ErrInvalidQuery) {
			t.Errorf("the failure policy %+v: %v, want ErrInvalidQuery", p, err)
		}
	}
	ctx, cancel := opCtx()
	defer cancel()
	if _, err := a.GetDurable(ctx, "bad"); !errors.Is(err, contract.ErrDurableNotFound) {
		t.Errorf("a refused policy created the name: GetDurable %v", err)
	}
}

func testParkUnsubscribeDuringRetries(t *testing.T, s contract.EventStore) {
	a := admin(t, s)
	h := newParkHandler()
	// A long backoff: the stream is between deliveries when it is ended.
	// (Live: a replay's retries happen before the Stream call returns.)
	sub := subscribePark(t, s, "d", h, contract.RetryThenPark(3, 30*time.Second, 30*time.Second))
	mustAppend(t, s, ev("Bad", `{}`)) // 1
	h.waitCalls(t, 1, "the first, failing delivery")
	unsubscribe(t, sub)
	info := waitInfo(t, a, "d", "the name free", func(i contract.DurableInfo) bool { return i.Holder == "" })
	if info.Parked != 0 || info.Cursor != 0 {
		t.Fatalf("after Unsubscribe during the retries: Parked %d, Cursor %d; want 0 and 0 (the batch is neither parked nor passed)", info.Parked, info.Cursor)
	}
	h2 := newParkHandler()
	h2.failing.Store(false)
	durableRetry(t, "subscribe again", func() (contract.Subscription, error) {
		return s.StreamAllDurable(t.Context(), "d", h2.handle)
	})
	if calls := h2.waitCalls(t, 1, "the batch again"); !slices.Equal(calls[0].seqs, []uint64{1}) || calls[0].info.Attempt != 1 {
		t.Fatalf("the next subscription got %s, want [1] attempt 1", fmtCalls(calls))
	}
}
