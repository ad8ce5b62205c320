package conformance

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/factstr/factstr-go/contract"
)

// errHandler is what failing test handlers return.
var errHandler = errors.New("handler failure requested by the conformance test")

// ---- events and queries ----

func ev(typ, payload string) contract.NewEvent {
	var p json.RawMessage
	if payload != "" {
		p = json.RawMessage(payload)
	}
	return contract.NewEvent{Type: typ, Payload: p}
}

func evs(events ...contract.NewEvent) []contract.NewEvent { return events }

// filter builds one filter; types nil means any type, no preds means any payload.
func filter(types []string, preds ...string) contract.EventFilter {
	f := contract.EventFilter{EventTypes: types}
	if len(preds) > 0 {
		f.PayloadPredicates = make([]json.RawMessage, len(preds))
		for i, p := range preds {
			f.PayloadPredicates[i] = json.RawMessage(p)
		}
	}
	return f
}

func types(ts ...string) []string { return ts }

func query(filters ...contract.EventFilter) contract.EventQuery {
	return contract.EventQuery{Filters: filters}
}

// typeQ matches events of any of the given types.
func typeQ(ts ...string) contract.EventQuery { return query(filter(ts)) }

// predQ is one filter of any type with the given predicates.
func predQ(preds ...string) contract.EventQuery { return query(filter(nil, preds...)) }

func withMin(q contract.EventQuery, min uint64) contract.EventQuery {
	q.MinSequenceNumber = min
	return q
}

func fmtQuery(q contract.EventQuery) string {
	var sb strings.Builder
	if q.Filters == nil {
		sb.WriteString("filters=nil")
	} else {
		sb.WriteString("filters=[")
		for i, f := range q.Filters {
			if i > 0 {
				sb.WriteString(", ")
			}
			sb.WriteString("{types=")
			if f.EventTypes == nil {
				sb.WriteString("nil")
			} else {
				fmt.Fprintf(&sb, "%q", f.EventTypes)
			}
			sb.WriteString(" preds=")
			if f.PayloadPredicates == nil {
				sb.WriteString("nil")
			} else {
				sb.WriteByte('[')
				for j, p := range f.PayloadPredicates {
					if j > 0 {
						sb.WriteByte(' ')
					}
					sb.Write(p)
				}
				sb.WriteByte(']')
			}
			sb.WriteByte('}')
		}
		sb.WriteByte(']')
	}
	if q.MinSequenceNumber != 0 {
		fmt.Fprintf(&sb, " min=%d", q.MinSequenceNumber)
	}
	return sb.String()
}

// ---- sequence numbers ----

func seqsOf(recs []contract.EventRecord) []uint64 {
	out := make([]uint64, len(recs))
	for i, r := range recs {
		out[i] = r.SequenceNumber
	}
	return out
}

func batchSeqs(batches [][]contract.EventRecord) [][]uint64 {
	out := make([][]uint64, len(batches))
	for i, b := range batches {
		out[i] = seqsOf(b)
	}
	return out
}

// span returns a..b inclusive (empty if b < a).
func span(a, b uint64) []uint64 {
	var out []uint64
	for i := a; i <= b; i++ {
		out = append(out, i)
	}
	return out
}

func equalBatches(a, b [][]uint64) bool {
	return slices.EqualFunc(a, b, func(x, y []uint64) bool { return slices.Equal(x, y) })
}

func fmtSeqBatches(b [][]uint64) string {
	if len(b) == 0 {
		return "[]"
	}
	return fmt.Sprint(b)
}

// ---- JSON ----

// jsonEqual compares decoded JSON values (from contract.DecodeJSON), numbers
// by value.
func jsonEqual(a, b any) bool {
	switch x := a.(type) {
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, v := range x {
			w, ok := y[k]
			if !ok || !jsonEqual(v, w) {
				return false
			}
		}
		return true
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !jsonEqual(x[i], y[i]) {
				return false
			}
		}
		return true
	case json.Number:
		y, ok := b.(json.Number)
		return ok && contract.NumbersEqual(x, y)
	case string, bool, nil:
		return a == b
	default:
		return false
	}
}

// samePayload reports whether two payloads are the same JSON value
// (whitespace, key order and number spelling may differ).
func samePayload(a, b json.RawMessage) bool {
	va, errA := contract.DecodeJSON(a)
	vb, errB := contract.DecodeJSON(b)
	if errA != nil || errB != nil {
		return bytes.Equal(a, b)
	}
	return jsonEqual(va, vb)
}

// ---- bounded calls ----

func opCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), WaitTimeout)
}

func doAppend(s contract.EventStore, events []contract.NewEvent) (contract.AppendResult, error) {
	ctx, cancel := opCtx()
	defer cancel()
	return s.Append(ctx, events)
}

func doAppendIf(s contract.EventStore, events []contract.NewEvent, q contract.EventQuery, expected uint64) (contract.AppendResult, error) {
	ctx, cancel := opCtx()
	defer cancel()
	return s.AppendIf(ctx, events, q, expected)
}

func doQuery(s contract.EventStore, q contract.EventQuery) (contract.QueryResult, error) {
	ctx, cancel := opCtx()
	defer cancel()
	return s.Query(ctx, q)
}

// checkResult checks an AppendResult is a consistent range for n events.
func checkResult(t testing.TB, what string, res contract.AppendResult, n int) {
	t.Helper()
	if res.CommittedCount != uint64(n) || res.FirstSequenceNumber == 0 ||
		res.LastSequenceNumber != res.FirstSequenceNumber+uint64(n)-1 {
		t.Fatalf("%s of %d events returned %+v; want CommittedCount %d and a range First..Last of %d numbers starting at 1 or later",
			what, n, res, n, n)
	}
}

func mustAppend(t testing.TB, s contract.EventStore, events ...contract.NewEvent) contract.AppendResult {
	t.Helper()
	res, err := doAppend(s, events)
	if err != nil {
		t.Fatalf("Append of %d events failed: %v", len(events), err)
	}
	checkResult(t, "Append", res, len(events))
	return res
}

func mustAppendIf(t testing.TB, s contract.EventStore, q contract.EventQuery, expected uint64, events ...contract.NewEvent) contract.AppendResult {
	t.Helper()
	res, err := doAppendIf(s, events, q, expected)
	if err != nil {
		t.Fatalf("AppendIf of %d events on context %s with expected version %d failed: %v", len(events), fmtQuery(q), expected, err)
	}
	checkResult(t, "AppendIf", res, len(events))
	return res
}

func mustQuery(t testing.TB, s contract.EventStore, q contract.EventQuery) contract.QueryResult {
	t.Helper()
	res, err := doQuery(s, q)
	if err != nil {
		t.Fatalf("Query %s failed: %v", fmtQuery(q), err)
	}
	return res
}

// checkQuery runs q and checks the returned sequence numbers, the
// LastReturnedSequenceNumber and the CurrentContextVersion.
func checkQuery(t testing.TB, s contract.EventStore, q contract.EventQuery, wantSeqs []uint64, wantVersion uint64) contract.QueryResult {
	t.Helper()
	res := mustQuery(t, s, q)
	got := seqsOf(res.Events)
	if len(got) == 0 {
		got = nil
	}
	if len(wantSeqs) == 0 {
		wantSeqs = nil
	}
	var wantLast uint64
	if len(wantSeqs) > 0 {
		wantLast = wantSeqs[len(wantSeqs)-1]
	}
	if !slices.Equal(got, wantSeqs) || res.LastReturnedSequenceNumber != wantLast || res.CurrentContextVersion != wantVersion {
		t.Errorf("Query %s:\n  got  events %v, LastReturnedSequenceNumber %d, CurrentContextVersion %d\n  want events %v, LastReturnedSequenceNumber %d, CurrentContextVersion %d",
			fmtQuery(q), got, res.LastReturnedSequenceNumber, res.CurrentContextVersion, wantSeqs, wantLast, wantVersion)
	}
	return res
}

// checkRecords checks recs carry the given events at first, first+1, ...
func checkRecords(t testing.TB, what string, recs []contract.EventRecord, first uint64, events []contract.NewEvent) {
	t.Helper()
	if len(recs) != len(events) {
		t.Fatalf("%s: got %d events %v, want %d starting at %d", what, len(recs), seqsOf(recs), len(events), first)
	}
	for i, r := range recs {
		want := events[i]
		if r.SequenceNumber != first+uint64(i) || r.Type != want.Type || !samePayload(r.Payload, want.Payload) {
			t.Errorf("%s: event %d is {seq %d, type %q, payload %s}; want {seq %d, type %q, payload %s}",
				what, i, r.SequenceNumber, r.Type, r.Payload, first+uint64(i), want.Type, want.Payload)
		}
	}
}

// ---- streams ----

func within(t testing.TB, what string, fn func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	select {
	case <-done:
	case <-time.After(WaitTimeout):
		t.Fatalf("%s did not return within %v", what, WaitTimeout)
	}
}

// unsubscribe stops sub and waits until it has ended: Unsubscribe does not
// wait for a handler call that is (still) running, Done does.
func unsubscribe(t testing.TB, sub contract.Subscription) {
	t.Helper()
	within(t, "Unsubscribe and Done", func() {
		sub.Unsubscribe()
		<-sub.Done()
	})
}

func keep(t testing.TB, sub contract.Subscription, err error, what string) contract.Subscription {
	t.Helper()
	if err != nil {
		t.Fatalf("%s failed: %v", what, err)
	}
	if sub == nil {
		t.Fatalf("%s returned a nil Subscription and no error", what)
	}
	t.Cleanup(sub.Unsubscribe)
	return sub
}

func streamAll(t testing.TB, s contract.EventStore, rec *Recorder) contract.Subscription {
	t.Helper()
	sub, err := s.StreamAll(t.Context(), rec.Handle)
	return keep(t, sub, err, "StreamAll")
}

func streamTo(t testing.TB, s contract.EventStore, q contract.EventQuery, rec *Recorder) contract.Subscription {
	t.Helper()
	sub, err := s.StreamTo(t.Context(), q, rec.Handle)
	return keep(t, sub, err, "StreamTo "+fmtQuery(q))
}

func streamAllDurable(t testing.TB, s contract.EventStore, name string, rec *Recorder) contract.Subscription {
	t.Helper()
	sub, err := s.StreamAllDurable(t.Context(), name, rec.Handle)
	return keep(t, sub, err, fmt.Sprintf("StreamAllDurable %q", name))
}

func streamToDurable(t testing.TB, s contract.EventStore, name string, q contract.EventQuery, rec *Recorder) contract.Subscription {
	t.Helper()
	sub, err := s.StreamToDurable(t.Context(), name, q, rec.Handle)
	return keep(t, sub, err, fmt.Sprintf("StreamToDurable %q %s", name, fmtQuery(q)))
}

// durableRetry subscribes with subscribe, retrying while the name is still
// held (freeing a name may be asynchronous), for up to WaitTimeout.
func durableRetry(t testing.TB, what string, subscribe func() (contract.Subscription, error)) contract.Subscription {
	t.Helper()
	deadline := time.Now().Add(WaitTimeout)
	delay := 5 * time.Millisecond
	for {
		sub, err := subscribe()
		if err == nil {
			return keep(t, sub, nil, what)
		}
		if !errors.Is(err, contract.ErrDurableNameInUse) {
			t.Fatalf("%s failed: %v", what, err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: the durable name was still held after %v (last error: %v); the previous subscription should have freed it", what, WaitTimeout, err)
		}
		time.Sleep(delay)
		delay = min(2*delay, 100*time.Millisecond)
	}
}

// expectBatch waits for the next delivery on rec and checks its sequence
// numbers.
func expectBatch(t testing.TB, rec *Recorder, what string, want ...uint64) []contract.EventRecord {
	t.Helper()
	b := rec.Next(t)
	if !slices.Equal(seqsOf(b), want) {
		t.Fatalf("%s: next delivery was %v, want %v (all deliveries so far: %s)", what, seqsOf(b), want, FormatBatches(rec.Batches()))
	}
	return b
}

// expectBatches checks, without waiting, that rec has received exactly want
// so far, and marks those batches consumed.
func expectBatches(t testing.TB, rec *Recorder, what string, want [][]uint64) {
	t.Helper()
	rec.Skip()
	got := batchSeqs(rec.Batches())
	if !equalBatches(got, want) {
		t.Fatalf("%s: deliveries were %s, want %s (each inner list is one handler call)", what, fmtSeqBatches(got), fmtSeqBatches(want))
	}
}

// waitDone waits up to WaitTimeout for ctx to be done.
func waitDone(t testing.TB, ctx context.Context, what string) {
	t.Helper()
	if ctx == nil {
		t.Fatalf("%s: no handler ctx was captured", what)
	}
	select {
	case <-ctx.Done():
	case <-time.After(WaitTimeout):
		t.Fatalf("%s: the handler ctx was not done within %v", what, WaitTimeout)
	}
}

// waitChan waits up to WaitTimeout for ch to be closed or to yield.
func waitChan(t testing.TB, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(WaitTimeout):
		t.Fatalf("waited %v for %s", WaitTimeout, what)
	}
}
