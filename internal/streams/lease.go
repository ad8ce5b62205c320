package streams

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/factstr/factstr-go/contract"
)

// durableLease is one holder's hold on one durable name: every call the
// engine makes to Durables about that name and holder goes through it.
//
// It is a type of its own, not part of the subscription, for two reasons.
// A consumer group member holds names with no subscription behind them
// (its member slot), and releases them the same way. And the calls share
// rules that have nothing to do with delivery: a write must outlive the
// subscription's ctx (an Unsubscribe from inside the handler still stores
// that handler's nil) yet not wait forever (CursorTimeout), and a release
// that cannot commit is retried until it does or the engine closes.
type durableLease struct {
	durables     Durables
	name, holder string
	// ctx gives the writes their values; they run under
	// context.WithoutCancel(ctx), so its end does not cancel them.
	ctx     context.Context
	timeout time.Duration // bounds one write (Config.CursorTimeout)
	logger  *slog.Logger
	closed  <-chan struct{} // the engine's done: ends a background release
}

// newLease returns holder's lease on name; ctx carries the values of its
// writes.
func (e *Engine) newLease(ctx context.Context, name, holder string) *durableLease {
	return &durableLease{
		durables: e.cfg.Durables,
		name:     name,
		holder:   holder,
		ctx:      ctx,
		timeout:  e.cfg.CursorTimeout,
		logger:   e.cfg.Logger,
		closed:   e.done,
	}
}

// acquire takes the name (Durables.Acquire) under the caller's ctx: the
// caller gives up when it wants to.
func (l *durableLease) acquire(ctx context.Context, query contract.EventQuery, opts contract.DurableOptions) (AcquireResult, error) {
	return l.durables.Acquire(ctx, l.name, query, l.holder, opts)
}

// writeCtx bounds one write by the lease's timeout and nothing else: the
// subscription's ctx may already be cancelled (Unsubscribe from inside the
// handler), yet that handler's nil must still move the cursor.
func (l *durableLease) writeCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(l.ctx), l.timeout)
}

// advance moves the name's cursor forward to cursor.
func (l *durableLease) advance(cursor uint64) error {
	ctx, cancel := l.writeCtx()
	defer cancel()
	if err := l.durables.Advance(ctx, l.name, l.holder, cursor); err != nil {
		return fmt.Errorf("advance cursor to %d: %w", cursor, err)
	}
	return nil
}

// park records a Parking for the name (Parker.Park).
func (l *durableLease) park(p Parking) error {
	ctx, cancel := l.writeCtx()
	defer cancel()
	return l.durables.Park(ctx, l.name, l.holder, p)
}

// unpark removes seqs from the name's parked list (Parker.Unpark).
func (l *durableLease) unpark(seqs []uint64) error {
	ctx, cancel := l.writeCtx()
	defer cancel()
	return l.durables.Unpark(ctx, l.name, l.holder, seqs)
}

// dueParked reads, under the caller's ctx, up to limit parked events of
// the name whose redelivery was asked for.
func (l *durableLease) dueParked(ctx context.Context, limit int) ([]contract.ParkedEvent, error) {
	return l.durables.DueParked(ctx, l.name, limit)
}

// release frees the name for the next subscriber. A release that cannot
// commit now (no leader for a while, say) is retried in the background
// until it does or the engine closes: the name would otherwise stay held
// by a subscription that no longer exists (found by the fault suite: a
// node that restarted into an election held a name for minutes).
// Releasing is idempotent and only ever frees this holder's lease.
func (l *durableLease) release() {
	if l.tryRelease() {
		return
	}
	go func() {
		backoff := 500 * time.Millisecond
		for {
			select {
			case <-l.closed:
				return
			case <-time.After(backoff):
			}
			if l.tryRelease() {
				l.logger.Info("durable stream released after retrying", "name", l.name)
				return
			}
			backoff = min(2*backoff, 5*time.Second)
		}
	}()
}

// tryRelease releases the name once; a store that is closed counts as
// released (its leases are gone with it).
func (l *durableLease) tryRelease() bool {
	ctx, cancel := l.writeCtx()
	defer cancel()
	err := l.durables.Release(ctx, l.name, l.holder)
	if err == nil || errors.Is(err, contract.ErrClosed) {
		return true
	}
	l.logger.Warn("durable stream release failed; retrying", "name", l.name, "error", err)
	return false
}
