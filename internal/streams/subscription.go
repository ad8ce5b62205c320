package streams

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"

	"github.com/factstr/factstr-go/contract"
)

// subscription is one stream of an engine: live, catch-up, durable, or a
// consumer group's partition. It owns its position and its lifecycle (stop,
// Unsubscribe, the end reason); the delivery loop is in delivery.go. A
// durable subscription's name, cursor and failure policy are parts of their
// own (lease, cur, parking), each with its own reason to be separate.
type subscription struct {
	e       *Engine
	id      uint64
	parent  context.Context // the Stream* call's: its end is the stream's Err
	ctx     context.Context
	cancel  context.CancelCauseFunc
	handler contract.StreamHandler
	matcher *contract.Matcher
	filter  func(contract.EventRecord) bool // a group partition's share of the matches; nil: all

	// A durable subscription's: durable, name and lease are set when it is
	// registered, cur and parking before it delivers; none changes after.
	durable bool
	name    string         // the durable name
	lease   *durableLease  // its hold on the name
	cur     *durableCursor // its cursor on the way to the store
	parking *retryPark     // its "retry N then park" policy; nil: a failure stops it

	start    uint64        // position when the subscription went live; immutable after
	pos      uint64        // scanned through; owned by the delivering goroutine
	progress atomic.Uint64 // pos once everything read up to it was delivered
	ahead    readAhead     // read and not yet delivered

	mu        sync.Mutex
	stopped   bool
	stopCause error // why stopped was set: nil for Unsubscribe, ErrClosed for Close
	err       error // why the stream ended; set before done is closed
	// inHandler is set while the handler runs: an Unsubscribe then does
	// not wait, since it may come from that very handler.
	inHandler bool
	done      chan struct{}
	started   bool
}

func (s *subscription) ID() uint64 { return s.id }

// Done is closed when the subscription has ended, whether by Unsubscribe,
// its ctx, Close, a durable handler failure or a lost durable lease. A
// server relaying the stream ends its RPC on it.
func (s *subscription) Done() <-chan struct{} { return s.done }

// Err tells why the subscription ended: nil while it runs and after
// Unsubscribe; otherwise the ctx's cause, contract.ErrClosed,
// ErrSubscriberTooSlow, contract.ErrDurableLeaseLost, or a durable
// handler's failure (contract.ErrHandlerFailed).
func (s *subscription) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// StartPosition is the sequence number through which the log was delivered
// (or skipped) when the subscription went live: a client that loses its
// connection before any delivery resumes after it.
func (s *subscription) StartPosition() uint64 { return s.start }

// Unsubscribe stops future deliveries. While no handler call is running it
// waits until the stream has ended (a durable name is released); while one
// is, it returns at once, since it may be called from inside that handler,
// and Done is closed once the call has returned (its nil still moves a
// durable cursor) and the name is released.
func (s *subscription) Unsubscribe() { s.stop(nil) }

// stop ends the subscription for cause (nil: Unsubscribe) and, unless a
// handler call is running, waits until it has ended. The first stop
// decides the cause.
func (s *subscription) stop(cause error) {
	s.halt(cause)
	s.mu.Lock()
	started, busy := s.started, s.inHandler
	s.mu.Unlock()
	if !started || busy {
		return
	}
	<-s.done
}

// end stops s and waits until it has ended, a handler call in flight
// included. Only for the engine's own goroutines (a consumer group's
// balancing), which never run a handler: an Unsubscribe from inside a
// member's handler must still find the partitions' cursors stored once
// the member is done.
func (s *subscription) end(cause error) {
	s.halt(cause)
	s.waitEnded(context.Background())
}

func (s *subscription) isStopped() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopped
}

// goLive starts the live loop. started is set before the goroutine runs,
// so an Unsubscribe right after Live or Durable returned waits for the loop
// to end (and a durable name to be released) instead of returning at once.
func (s *subscription) goLive() {
	s.mu.Lock()
	s.started = true
	s.mu.Unlock()
	go s.live()
}

func (s *subscription) live() {
	defer close(s.done)
	defer s.e.remove(s)
	defer s.cancel(nil)
	err := s.run(0)
	if s.durable {
		s.cur.finish()
		s.lease.release()
	}
	if err != nil && !errors.Is(err, errStopped) && !errors.Is(err, context.Canceled) && !errors.Is(err, errHubClosed) && !errors.Is(err, ErrSubscriberTooSlow) {
		s.e.cfg.Logger.Warn("stream ended", "subscription", s.id, "durable", s.name, "error", err)
	}
	reason := s.endReason(err)
	s.mu.Lock()
	s.err = reason
	s.mu.Unlock()
}

// endReason maps how run ended to what Err reports.
func (s *subscription) endReason(runErr error) error {
	s.mu.Lock()
	stopped, cause := s.stopped, s.stopCause
	s.mu.Unlock()
	switch {
	case stopped:
		return cause
	case runErr == nil:
		return nil
	case errors.Is(runErr, ErrSubscriberTooSlow):
		return ErrSubscriberTooSlow
	case s.parent.Err() != nil:
		return context.Cause(s.parent)
	case errors.Is(runErr, errHubClosed), errors.Is(runErr, contract.ErrClosed):
		return contract.ErrClosed
	}
	return runErr
}
