package conformance

import (
	"context"
	"errors"
	"testing"

	"github.com/factstr/factstr-go/contract"
)

// endingCases check Subscription.Done and Subscription.Err: every way a
// stream ends closes Done, and Err says why.
func endingCases() []testCase {
	return []testCase{
		{"UnsubscribeLeavesErrNil", testEndUnsubscribe},
		{"UnsubscribeInsideHandlerLeavesErrNil", testEndUnsubscribeInside},
		{"ContextCancelIsErr", testEndCtxCancel},
		{"DurableHandlerErrorIsErr", testEndHandlerError},
		{"DurableHandlerPanicIsErr", testEndHandlerPanic},
		{"LiveHandlerErrorDoesNotEnd", testEndLiveHandlerError},
		{"CloseIsErrClosed", testEndClose},
	}
}

// kinds of subscriptions every ending case covers.
type subscribeFunc func(ctx context.Context, s contract.EventStore, rec *Recorder) (contract.Subscription, error)

var subscriptionKinds = []struct {
	name      string
	subscribe subscribeFunc
}{
	{"StreamAll", func(ctx context.Context, s contract.EventStore, rec *Recorder) (contract.Subscription, error) {
		return s.StreamAll(ctx, rec.Handle)
	}},
	{"StreamTo", func(ctx context.Context, s contract.EventStore, rec *Recorder) (contract.Subscription, error) {
		return s.StreamTo(ctx, typeQ("A"), rec.Handle)
	}},
	{"StreamAllDurable", func(ctx context.Context, s contract.EventStore, rec *Recorder) (contract.Subscription, error) {
		return s.StreamAllDurable(ctx, "d", rec.Handle)
	}},
	{"StreamToDurable", func(ctx context.Context, s contract.EventStore, rec *Recorder) (contract.Subscription, error) {
		return s.StreamToDurable(ctx, "e", typeQ("A"), rec.Handle)
	}},
}

// expectRunning checks that sub has not ended.
func expectRunning(t testing.TB, sub contract.Subscription, what string) {
	t.Helper()
	select {
	case <-sub.Done():
		t.Errorf("%s: Done is closed while the stream should run (Err: %v)", what, sub.Err())
	default:
	}
	if err := sub.Err(); err != nil {
		t.Errorf("%s: Err is %v while the stream runs, want nil", what, err)
	}
}

func testEndUnsubscribe(t *testing.T, s contract.EventStore) {
	subs := make([]contract.Subscription, len(subscriptionKinds))
	recs := make([]*Recorder, len(subscriptionKinds))
	for i, k := range subscriptionKinds {
		recs[i] = NewRecorder(nil)
		sub, err := k.subscribe(t.Context(), s, recs[i])
		subs[i] = keep(t, sub, err, k.name)
	}
	mustAppend(t, s, ev("A", `{}`))
	for i, k := range subscriptionKinds {
		expectBatch(t, recs[i], k.name, 1)
		recs[i].Settle(t)
		expectRunning(t, subs[i], k.name)
	}
	for i, k := range subscriptionKinds {
		unsubscribe(t, subs[i])
		waitChan(t, subs[i].Done(), k.name+": Done after Unsubscribe")
		if err := subs[i].Err(); err != nil {
			t.Errorf("%s: Err after Unsubscribe is %v, want nil", k.name, err)
		}
		unsubscribe(t, subs[i]) // idempotent, and Done stays closed
		waitChan(t, subs[i].Done(), k.name+": Done after a second Unsubscribe")
	}
}

func testEndUnsubscribeInside(t *testing.T, s contract.EventStore) {
	subs := make([]contract.Subscription, len(subscriptionKinds))
	for i, k := range subscriptionKinds {
		subCh := make(chan contract.Subscription, 1)
		rec := NewRecorder(func(ctx context.Context, n int, batch []contract.EventRecord) error {
			(<-subCh).Unsubscribe()
			return nil
		})
		sub, err := k.subscribe(t.Context(), s, rec)
		subs[i] = keep(t, sub, err, k.name)
		subCh <- sub
	}
	mustAppend(t, s, ev("A", `{}`))
	for i, k := range subscriptionKinds {
		waitChan(t, subs[i].Done(), k.name+": Done after Unsubscribe inside the handler")
		if err := subs[i].Err(); err != nil {
			t.Errorf("%s: Err after Unsubscribe inside the handler is %v, want nil", k.name, err)
		}
	}
}

func testEndCtxCancel(t *testing.T, s contract.EventStore) {
	for _, k := range subscriptionKinds {
		ctx, cancel := context.WithCancel(t.Context())
		rec := NewRecorder(nil)
		sub, err := k.subscribe(ctx, s, rec)
		keep(t, sub, err, k.name)
		expectRunning(t, sub, k.name)
		cancel()
		waitChan(t, sub.Done(), k.name+": Done after the ctx of the call was cancelled")
		if err := sub.Err(); !errors.Is(err, context.Canceled) {
			t.Errorf("%s: Err after the call's ctx was cancelled is %v, want context.Canceled", k.name, err)
		}
	}
}

func testEndHandlerError(t *testing.T, s contract.EventStore) {
	testEndHandlerFails(t, s, func() error { return errHandler }, true)
}

func testEndHandlerPanic(t *testing.T, s contract.EventStore) {
	testEndHandlerFails(t, s, func() error { panic("handler panic requested by the conformance test") }, false)
}

func testEndHandlerFails(t *testing.T, s contract.EventStore, fail func() error, wrapsOwn bool) {
	kinds := subscriptionKinds[2:] // durable streams end when their handler fails
	subs := make([]contract.Subscription, len(kinds))
	for i, k := range kinds {
		rec := NewRecorder(func(ctx context.Context, n int, batch []contract.EventRecord) error { return fail() })
		sub, err := k.subscribe(t.Context(), s, rec)
		subs[i] = keep(t, sub, err, k.name)
	}
	mustAppend(t, s, ev("A", `{}`))
	for i, k := range kinds {
		waitChan(t, subs[i].Done(), k.name+": Done after the handler failed")
		err := subs[i].Err()
		if !errors.Is(err, contract.ErrHandlerFailed) {
			t.Errorf("%s: Err after the handler failed is %v, want contract.ErrHandlerFailed", k.name, err)
		}
		if wrapsOwn && !errors.Is(err, errHandler) {
			t.Errorf("%s: Err after the handler failed is %v, want it to wrap the handler's own error (%v)", k.name, err, errHandler)
		}
	}
}

func testEndLiveHandlerError(t *testing.T, s contract.EventStore) {
	for _, k := range subscriptionKinds[:2] {
		rec := NewRecorder(func(ctx context.Context, n int, batch []contract.EventRecord) error { return errHandler })
		sub, err := k.subscribe(t.Context(), s, rec)
		keep(t, sub, err, k.name)
		mustAppend(t, s, ev("A", `{}`))
		rec.Next(t)
		rec.Settle(t)
		mustAppend(t, s, ev("A", `{}`))
		rec.Next(t)
		rec.Settle(t)
		expectRunning(t, sub, k.name+" after its handler failed (a live stream goes on)")
		unsubscribe(t, sub)
	}
}

func testEndClose(t *testing.T, s contract.EventStore) {
	var subs []contract.Subscription
	for _, k := range subscriptionKinds {
		rec := NewRecorder(nil)
		sub, err := k.subscribe(t.Context(), s, rec)
		subs = append(subs, keep(t, sub, err, k.name))
	}
	closeStore(t, s)
	for i, sub := range subs {
		name := subscriptionKinds[i].name
		waitChan(t, sub.Done(), name+": Done after Close")
		if err := sub.Err(); !errors.Is(err, contract.ErrClosed) {
			t.Errorf("%s: Err after Close is %v, want contract.ErrClosed", name, err)
		}
	}
}
