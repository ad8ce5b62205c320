package streams

import (
	"context"
	"sync"
)

// Watermark broadcasts a value that only grows (a committed head, an
// applied Raft index, a term) to goroutines waiting for it to pass a mark.
type Watermark struct {
	mu      sync.Mutex
	v       uint64
	changed chan struct{} // closed and replaced on every change
	closed  bool
}

// NewWatermark returns a watermark at v.
func NewWatermark(v uint64) *Watermark {
	return &Watermark{v: v, changed: make(chan struct{})}
}

// Publish raises the watermark to v and wakes every waiter; a lower v is
// ignored.
func (w *Watermark) Publish(v uint64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if v <= w.v || w.closed {
		return
	}
	w.v = v
	close(w.changed)
	w.changed = make(chan struct{})
}

// Reset sets the watermark unconditionally (a restore that rewinds state)
// and wakes every waiter.
func (w *Watermark) Reset(v uint64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return
	}
	w.v = v
	close(w.changed)
	w.changed = make(chan struct{})
}

// Close wakes every waiter for good.
func (w *Watermark) Close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.closed {
		w.closed = true
		close(w.changed)
	}
}

// Value returns the watermark.
func (w *Watermark) Value() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.v
}

// Wait blocks until the watermark is greater than after, the watermark
// closes or ctx is done. It returns the value it saw.
func (w *Watermark) Wait(ctx context.Context, after uint64) (uint64, error) {
	for {
		w.mu.Lock()
		v, ch, closed := w.v, w.changed, w.closed
		w.mu.Unlock()
		if v > after {
			return v, nil
		}
		if closed {
			return v, errHubClosed
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return v, ctx.Err()
		}
	}
}

// WaitAtLeast blocks until the watermark is at least target.
func (w *Watermark) WaitAtLeast(ctx context.Context, target uint64) (uint64, error) {
	if target == 0 {
		return w.Value(), nil
	}
	return w.Wait(ctx, target-1)
}
