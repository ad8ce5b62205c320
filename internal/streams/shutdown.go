package streams

import (
	"context"
	"time"

	"github.com/factstr/factstr-go/contract"
)

// Shutdown ends every subscription and refuses new ones, like Close, and
// then waits, until ctx ends, for each one to finish: its running handler
// call returned, its acknowledged cursor stored and its durable name
// released. A node calls it while it still accepts proposals, so a
// graceful shutdown does not lose the acknowledgements the coalesced
// cursor writes have not stored yet (the next subscriber would get those
// batches again). The subscriptions are stopped together, so the final
// cursor writes go out concurrently, not one round trip after another. A
// handler that never returns (or one that calls Shutdown itself) is waited
// for only until ctx ends. It reports whether every subscription finished.
func (e *Engine) Shutdown(ctx context.Context) bool {
	subs := e.closeSubs()
	for _, s := range subs {
		s.halt(contract.ErrClosed)
	}
	for _, s := range subs {
		if !s.waitEnded(ctx) {
			return false
		}
	}
	return true
}

// halt stops s for cause without waiting for it to end.
func (s *subscription) halt(cause error) {
	s.mu.Lock()
	if !s.stopped {
		s.stopped, s.stopCause = true, cause
	}
	s.mu.Unlock()
	s.cancel(nil)
}

// waitEnded waits for s to end, or ctx to. A subscription still in its
// first replay (inside Engine.Durable or Live) has no done channel to wait
// on yet: it stores its cursor and releases its name before it leaves the
// engine's set, so that is waited for, by polling (it is rare and short).
func (s *subscription) waitEnded(ctx context.Context) bool {
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		s.mu.Lock()
		started := s.started
		s.mu.Unlock()
		if started {
			select {
			case <-s.done:
				return true
			case <-ctx.Done():
				return false
			}
		}
		if !s.e.has(s) {
			return true
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return false
		}
	}
}

func (e *Engine) has(s *subscription) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	_, ok := e.subs[s.id]
	return ok
}
