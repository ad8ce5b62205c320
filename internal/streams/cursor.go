package streams

import (
	"sync"
)

// cursorState is a durable subscription's cursor on its way to the store.
//
// Delivery does not wait for the cursor to be stored: a batch whose handler
// returned nil is acknowledged (ack), and a flusher goroutine stores the
// highest acknowledged position with one Durables.Advance, while delivery
// goes on. Every batch acknowledged while an advance is in flight is
// covered by the next one, so a stream that delivers many small batches
// costs one store write (in a cluster, one Raft entry) per round trip, not
// one per batch, and never waits for one between batches.
//
// The subscription stores what was acknowledged before it releases its name
// (finishCursor), so the contract holds as before: when Unsubscribe returns,
// or a replay or handler failure ends the stream, the cursor is after the
// last batch handled. Only a crash can lose acknowledgements, which the
// next subscriber then receives again (durable delivery is at least once).
type cursorState struct {
	mu      sync.Mutex
	acked   uint64 // highest position acknowledged (or passed without a match)
	stored  uint64 // highest position the store has confirmed
	failed  error  // the advance that ended the stream
	started bool

	signal chan struct{} // capacity 1: something new was acknowledged
	stop   chan struct{} // closed by finishCursor
	done   chan struct{} // closed when the flusher returned
}

// startCursor starts the flusher, the stored cursor being cursor.
func (s *subscription) startCursor(cursor uint64) {
	c := &s.cur
	c.mu.Lock()
	c.acked, c.stored, c.started = cursor, cursor, true
	c.signal = make(chan struct{}, 1)
	c.stop = make(chan struct{})
	c.done = make(chan struct{})
	c.mu.Unlock()
	go s.flushLoop()
}

// ack records that everything through pos was handled (or passed without
// a match) and wakes the flusher; it does not wait for the store.
func (s *subscription) ack(pos uint64) {
	c := &s.cur
	c.mu.Lock()
	c.acked = max(c.acked, pos)
	c.mu.Unlock()
	select {
	case c.signal <- struct{}{}:
	default:
	}
}

// ackedCursor is the highest position acknowledged so far.
func (s *subscription) ackedCursor() uint64 {
	s.cur.mu.Lock()
	defer s.cur.mu.Unlock()
	return s.cur.acked
}

func (s *subscription) flushLoop() {
	c := &s.cur
	defer close(c.done)
	for {
		select {
		case <-c.signal:
		case <-c.stop:
			return
		}
		if err := s.flushOnce(); err != nil {
			// The cursor cannot move (the lease was lost, the store is
			// unavailable past CursorTimeout): the stream ends, with this
			// as its reason, before it delivers more than it could record.
			s.cancel(err)
			return
		}
	}
}

// flushOnce stores the highest acknowledged position, if it is ahead of
// the stored one.
func (s *subscription) flushOnce() error {
	c := &s.cur
	c.mu.Lock()
	target, stored, failed := c.acked, c.stored, c.failed
	c.mu.Unlock()
	if failed != nil {
		return failed
	}
	if target <= stored {
		return nil
	}
	if err := s.advance(target); err != nil {
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

// finishCursor stops the flusher and stores what is still acknowledged
// but not stored. It returns the stored cursor. Called once, by the
// goroutine that ends the subscription, before the name is released.
func (s *subscription) finishCursor() uint64 {
	c := &s.cur
	c.mu.Lock()
	started := c.started
	c.mu.Unlock()
	if !started {
		return 0
	}
	close(c.stop)
	<-c.done
	if err := s.flushOnce(); err != nil {
		s.e.cfg.Logger.Warn("durable stream could not store its last cursor; the batches after the stored one will be delivered again",
			"name", s.name, "error", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stored
}
