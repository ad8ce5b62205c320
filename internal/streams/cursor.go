package streams

import (
	"context"
	"log/slog"
	"sync"
)

// durableCursor is a durable subscription's cursor on its way to the
// store: what delivery has acknowledged, what the store has confirmed,
// and the flusher goroutine between them.
//
// Delivery does not wait for the cursor to be stored: a batch whose handler
// returned nil is acknowledged (ack), and the flusher stores the highest
// acknowledged position with one advance, while delivery goes on. Every
// batch acknowledged while an advance is in flight is covered by the next
// one, so a stream that delivers many small batches costs one store write
// (in a cluster, one Raft entry) per round trip, not one per batch, and
// never waits for one between batches. This coalescing is the whole of the
// type's job, which is why it is separate from delivery: it has its own
// goroutine, lock and failure, and delivery only acks.
//
// The subscription stores what was acknowledged before it releases its name
// (finish), so the contract holds as before: when Unsubscribe returns, or a
// replay or handler failure ends the stream, the cursor is after the last
// batch handled. Only a crash can lose acknowledgements, which the next
// subscriber then receives again (durable delivery is at least once).
type durableCursor struct {
	lease *durableLease
	// fail ends the stream when the cursor cannot move (its cause is the
	// stream's Err).
	fail   context.CancelCauseFunc
	logger *slog.Logger

	mu     sync.Mutex
	acked  uint64 // highest position acknowledged (or passed without a match)
	stored uint64 // highest position the store has confirmed
	failed error  // the advance that ended the stream

	signal chan struct{} // capacity 1: something new was acknowledged
	stop   chan struct{} // closed by finish
	done   chan struct{} // closed when the flusher returned
}

// startCursor returns the cursor of lease's name, stored at stored, with
// its flusher running. A write that fails calls fail with its error.
func startCursor(lease *durableLease, stored uint64, fail context.CancelCauseFunc, logger *slog.Logger) *durableCursor {
	c := &durableCursor{
		lease:  lease,
		fail:   fail,
		logger: logger,
		acked:  stored,
		stored: stored,
		signal: make(chan struct{}, 1),
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
	}
	go c.flushLoop()
	return c
}

// ack records that everything through pos was handled (or passed without
// a match) and wakes the flusher; it does not wait for the store.
func (c *durableCursor) ack(pos uint64) {
	c.mu.Lock()
	c.acked = max(c.acked, pos)
	c.mu.Unlock()
	select {
	case c.signal <- struct{}{}:
	default:
	}
}

// ackedPos is the highest position acknowledged so far.
func (c *durableCursor) ackedPos() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.acked
}

// storedAt records that the store's cursor is at pos through a write of
// its own (a park moves the cursor in the same change): the flusher has
// nothing to write for it.
func (c *durableCursor) storedAt(pos uint64) {
	c.mu.Lock()
	c.acked = max(c.acked, pos)
	c.stored = max(c.stored, pos)
	c.mu.Unlock()
}

func (c *durableCursor) flushLoop() {
	defer close(c.done)
	for {
		select {
		case <-c.signal:
		case <-c.stop:
			return
		}
		if err := c.flushOnce(); err != nil {
			// The cursor cannot move (the lease was lost, the store is
			// unavailable past CursorTimeout): the stream ends, with this
			// as its reason, before it delivers more than it could record.
			c.fail(err)
			return
		}
	}
}

// flushOnce stores the highest acknowledged position, if it is ahead of
// the stored one.
func (c *durableCursor) flushOnce() error {
	c.mu.Lock()
	target, stored, failed := c.acked, c.stored, c.failed
	c.mu.Unlock()
	if failed != nil {
		return failed
	}
	if target <= stored {
		return nil
	}
	if err := c.lease.advance(target); err != nil {
		c.mu.Lock()
		c.failed = err
		c.mu.Unlock()
		return err
	}
	c.mu.Lock()
	c.stored = max(c.stored, target)
	c.mu.Unlock()
	return nil
}

// finish stops the flusher and stores what is still acknowledged but not
// stored. It returns the stored cursor. Called once, by the goroutine that
// ends the subscription, before the name is released.
func (c *durableCursor) finish() uint64 {
	close(c.stop)
	<-c.done
	if err := c.flushOnce(); err != nil {
		c.logger.Warn("durable stream could not store its last cursor; the batches after the stored one will be delivered again",
			"name", c.lease.name, "error", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stored
}
