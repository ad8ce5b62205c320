package conformance

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/factstr/factstr-go/contract"
)

// Recorder is a contract.StreamHandler that records every batch it is given,
// so a test can wait for deliveries with bounded waits. Pass r.Handle to a
// Stream* call. It is safe for concurrent use and also notices overlapping
// handler calls (which the contract forbids on one subscription).
type Recorder struct {
	hook func(ctx context.Context, n int, batch []contract.EventRecord) error

	inflight atomic.Int32
	overlaps atomic.Int32

	mu       sync.Mutex
	changed  chan struct{} // closed and replaced on every change
	batches  [][]contract.EventRecord
	ctx      context.Context // handler ctx of the first call
	returned int             // handler calls that have returned (or panicked)
	read     int             // batches consumed by Next, Skip, ExpectNone
}

// NewRecorder returns a Recorder. hook, if not nil, is called for every batch
// after it was recorded, with n the 1-based number of the call; its result
// (or panic) is the handler's.
func NewRecorder(hook func(ctx context.Context, n int, batch []contract.EventRecord) error) *Recorder {
	return &Recorder{hook: hook, changed: make(chan struct{})}
}

// Handle is the contract.StreamHandler.
func (r *Recorder) Handle(ctx context.Context, batch []contract.EventRecord) error {
	if r.inflight.Add(1) > 1 {
		r.overlaps.Add(1)
	}
	cp := slices.Clone(batch)
	r.mu.Lock()
	r.batches = append(r.batches, cp)
	n := len(r.batches)
	if r.ctx == nil {
		r.ctx = ctx
	}
	r.wakeLocked()
	r.mu.Unlock()
	defer func() {
		r.inflight.Add(-1)
		r.mu.Lock()
		r.returned++
		r.wakeLocked()
		r.mu.Unlock()
	}()
	if r.hook != nil {
		return r.hook(ctx, n, cp)
	}
	return nil
}

func (r *Recorder) wakeLocked() {
	close(r.changed)
	r.changed = make(chan struct{})
}

// waitUntil waits up to d for cond (evaluated under r.mu) to hold.
func (r *Recorder) waitUntil(d time.Duration, cond func() bool) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		r.mu.Lock()
		ok := cond()
		ch := r.changed
		r.mu.Unlock()
		if ok {
			return true
		}
		select {
		case <-ch:
		case <-timer.C:
			r.mu.Lock()
			ok := cond()
			r.mu.Unlock()
			return ok
		}
	}
}

// Next waits up to WaitTimeout for the next batch not yet consumed and
// returns it; it fails the test if none arrives.
func (r *Recorder) Next(t testing.TB) []contract.EventRecord {
	t.Helper()
	if !r.waitUntil(WaitTimeout, func() bool { return r.read < len(r.batches) }) {
		r.mu.Lock()
		n, all := r.read, FormatBatches(r.batches)
		r.mu.Unlock()
		t.Fatalf("waited %v for delivery #%d, none arrived (delivered so far: %s)", WaitTimeout, n+1, all)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	b := r.batches[r.read]
	r.read++
	return b
}

// ExpectNone waits QuietWindow and fails the test if any batch not yet
// consumed was delivered; what says why none is expected.
func (r *Recorder) ExpectNone(t testing.TB, what string) {
	t.Helper()
	r.waitUntil(QuietWindow, func() bool { return r.read < len(r.batches) })
	r.mu.Lock()
	extra := slices.Clone(r.batches[r.read:])
	r.read = len(r.batches)
	r.mu.Unlock()
	if len(extra) > 0 {
		t.Errorf("%s: expected no delivery, got %d batch(es): %s", what, len(extra), FormatBatches(extra))
	}
}

// Skip marks every batch delivered so far as consumed and returns the ones
// that were not consumed before.
func (r *Recorder) Skip() [][]contract.EventRecord {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := slices.Clone(r.batches[r.read:])
	r.read = len(r.batches)
	return s
}

// Batches returns every batch delivered so far, consumed or not.
func (r *Recorder) Batches() [][]contract.EventRecord {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.batches)
}

// Ctx returns the ctx given to the first handler call (nil before any call).
func (r *Recorder) Ctx() context.Context {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ctx
}

// Settle waits up to WaitTimeout until every handler call so far has
// returned.
func (r *Recorder) Settle(t testing.TB) {
	t.Helper()
	if !r.waitUntil(WaitTimeout, func() bool { return r.returned == len(r.batches) }) {
		t.Fatalf("waited %v for the handler calls to return; some are still running", WaitTimeout)
	}
}

// WaitEvents waits up to WaitTimeout until at least n events (over all
// batches) were delivered.
func (r *Recorder) WaitEvents(t testing.TB, n int) {
	t.Helper()
	count := func() int {
		c := 0
		for _, b := range r.batches {
			c += len(b)
		}
		return c
	}
	if !r.waitUntil(WaitTimeout, func() bool { return count() >= n }) {
		r.mu.Lock()
		got, all := count(), FormatBatches(r.batches)
		r.mu.Unlock()
		t.Fatalf("waited %v for %d delivered events, got %d: %s", WaitTimeout, n, got, all)
	}
}

// Overlaps reports how many handler calls began while another call of this
// Recorder was still running.
func (r *Recorder) Overlaps() int { return int(r.overlaps.Load()) }

// FormatBatches renders batches as their sequence numbers, e.g. "[[1 2] [3]]".
func FormatBatches(batches [][]contract.EventRecord) string {
	var sb strings.Builder
	sb.WriteByte('[')
	for i, b := range batches {
		if i > 0 {
			sb.WriteByte(' ')
		}
		fmt.Fprint(&sb, seqsOf(b))
	}
	sb.WriteByte(']')
	return sb.String()
}
