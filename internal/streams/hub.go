package streams

import (
	"context"
	"sync"
)

// Hub broadcasts the committed head sequence number to waiting subscriptions.
type Hub struct {
	mu      sync.Mutex
	head    uint64
	changed chan struct{} // closed and replaced on every Publish
	closed  bool
}

// NewHub returns a hub whose committed head is head.
func NewHub(head uint64) *Hub {
	return &Hub{head: head, changed: make(chan struct{})}
}

// Publish records a new committed head and wakes every waiter. A head lower
// than the current one is ignored: heads only move forward (a restore that
// rewinds state must use Reset).
func (h *Hub) Publish(head uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if head <= h.head || h.closed {
		return
	}
	h.head = head
	close(h.changed)
	h.changed = make(chan struct{})
}

// Reset sets the head unconditionally (used after a snapshot restore) and
// wakes every waiter.
func (h *Hub) Reset(head uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return
	}
	h.head = head
	close(h.changed)
	h.changed = make(chan struct{})
}

// Close wakes every waiter for good.
func (h *Hub) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.closed {
		h.closed = true
		close(h.changed)
	}
}

// Head returns the committed head.
func (h *Hub) Head() uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.head
}

// Wait blocks until the head is greater than after, the hub closes or ctx is
// done. It returns the head it saw.
func (h *Hub) Wait(ctx context.Context, after uint64) (uint64, error) {
	for {
		h.mu.Lock()
		head, ch, closed := h.head, h.changed, h.closed
		h.mu.Unlock()
		if head > after {
			return head, nil
		}
		if closed {
			return head, errHubClosed
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return head, ctx.Err()
		}
	}
}

// WaitAtLeast blocks until the head is at least target.
func (h *Hub) WaitAtLeast(ctx context.Context, target uint64) (uint64, error) {
	if target == 0 {
		return h.Head(), nil
	}
	return h.Wait(ctx, target-1)
}
