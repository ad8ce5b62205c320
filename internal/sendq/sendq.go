// Package sendq is an unbounded queue with one consumer, for answers that
// a producer must hand over without waiting for the network: the leader's
// proposer answering forwarded batches, a node answering a client's Writes.
// Its size is bounded by its producers (the requests they have in flight).
package sendq

import (
	"context"
	"runtime"
	"sync"
)

// Queue holds items until Drain sends them.
type Queue[T any] struct {
	mu     sync.Mutex
	items  []T
	closed bool
	wake   chan struct{}
}

// New returns an empty queue.
func New[T any]() *Queue[T] { return &Queue[T]{wake: make(chan struct{}, 1)} }

// Push adds v; it never blocks.
func (q *Queue[T]) Push(v T) {
	q.mu.Lock()
	q.items = append(q.items, v)
	q.mu.Unlock()
	q.signal()
}

// Close makes Drain return once everything pushed so far is sent.
func (q *Queue[T]) Close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.signal()
}

func (q *Queue[T]) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// Drain sends items in the order they were pushed until the queue is closed
// and empty, send fails (its error is returned) or ctx ends.
func (q *Queue[T]) Drain(ctx context.Context, send func(T) error) error {
	return q.DrainBatches(ctx, func(items []T) error {
		for _, v := range items {
			if err := send(v); err != nil {
				return err
			}
		}
		return nil
	})
}

// DrainBatches is Drain handing send everything queued at once, in order:
// for a sender that packs several items into one message.
func (q *Queue[T]) DrainBatches(ctx context.Context, send func([]T) error) error {
	for {
		q.mu.Lock()
		items, closed := q.items, q.closed
		q.items = nil
		q.mu.Unlock()
		if len(items) > 0 {
			if err := send(items); err != nil {
				return err
			}
		}
		if closed {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-q.wake:
			// Producers woken together (the callers of one Raft entry)
			// push one after another: let them, so send gets them at once.
			runtime.Gosched()
		}
	}
}
