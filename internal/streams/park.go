package streams

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/factstr/factstr-go/contract"
)

// Parker is the part of Durables behind the "retry N then park" failure
// policy. In a cluster the changes go through the Raft log.
type Parker interface {
	// Park records p.Seqs in name's parked list with p.Attempts and
	// p.Error, and moves the cursor forward to p.Cursor (0: it stays), as
	// one change, if holder holds name. Events already parked (a failed
	// redelivery) add p.Attempts to their count and are no longer due.
	Park(ctx context.Context, name, holder string, p Parking) error
	// DueParked returns up to limit parked events of name whose
	// redelivery was asked for, in sequence order (a local read).
	DueParked(ctx context.Context, name string, limit int) ([]contract.ParkedEvent, error)
	// Unpark removes seqs from name's parked list (a redelivery was
	// handled), if holder holds name.
	Unpark(ctx context.Context, name, holder string, seqs []uint64) error
}

// Parking is one Parker.Park.
type Parking struct {
	Cursor   uint64   // the cursor after the parked batch; 0: unchanged
	Seqs     []uint64 // the parked events' sequence numbers
	Attempts int      // the failed deliveries
	Error    string   // the handler's last error, at most contract.MaxParkedErrorBytes
}

// parkedPage bounds one redelivery of parked events.
const parkedPage = 128

// logPolicyKept says when an existing name keeps a failure policy other
// than the one asked for, as Durable does for the start position.
func (e *Engine) logPolicyKept(name string, acq AcquireResult, asked contract.FailurePolicy) {
	if acq.Created || acq.Failure.Normalized() == asked.Normalized() {
		return
	}
	e.cfg.Logger.Info("durable stream exists: it keeps its failure policy; a policy applies only when a name is created",
		"name", name, "policy", acq.Failure.String(), "policy_asked", asked.String())
}

// retryPark runs the "retry N then park" failure policy of one durable
// subscription: it delivers a batch until its handler takes it or the
// policy's deliveries are used up, parks it then, and redelivers the
// parked events an operator asked for.
//
// It is separate from the subscription because it is a policy on top of
// delivery, not part of it: a subscription whose policy is stop has none
// (its handler's failure ends the stream), and the policy needs of the
// subscription only one delivery at a time (attempter), so it can be
// tested on its own.
type retryPark struct {
	policy contract.FailurePolicy // normalized, Parks() true
	lease  *durableLease          // parks, unparks and reads the parked list
	cursor *durableCursor         // a first delivery's park moves the stored cursor
	poll   time.Duration          // Config.ParkedPoll
	// polled is when redeliverDue last read the parked list; owned by the
	// delivering goroutine.
	polled time.Time
	logger *slog.Logger
	// onRedelivery and onParked are Config.OnRedelivery and
	// Config.OnParked (metrics); either may be nil.
	onRedelivery func(name string)
	onParked     func(name string, events int)
}

// attempter is what retryPark needs of a subscription: one delivery of a
// batch under its stall timer, and whether the stream is over.
type attempter interface {
	deliverTimed(batch []contract.EventRecord, d contract.Delivery) error
	isStopped() bool
	ctxErr() error
}

// newRetryPark returns the parking policy of a durable subscription, or
// nil when its policy stops instead.
func (e *Engine) newRetryPark(policy contract.FailurePolicy, lease *durableLease, cursor *durableCursor) *retryPark {
	policy = policy.Normalized()
	if !policy.Parks() {
		return nil
	}
	return &retryPark{
		policy:       policy,
		lease:        lease,
		cursor:       cursor,
		poll:         e.cfg.ParkedPoll,
		logger:       e.cfg.Logger,
		onRedelivery: e.cfg.OnRedelivery,
		onParked:     e.cfg.OnParked,
	}
}

// deliver delivers b through a under the policy: a failed delivery is
// retried after the policy's backoff, up to MaxDeliveries in all, then b
// is parked. parked reports that b was parked (for a first delivery the
// cursor has then moved past it); err is set only when the stream ends
// (stopped, ctx ended, or the park could not be recorded), and b is then
// not recorded as handled. ctx is the stream's: the backoff ends with it.
func (r *retryPark) deliver(ctx context.Context, a attempter, b []contract.EventRecord, redelivery bool) (parked bool, err error) {
	for attempt := 1; ; attempt++ {
		herr := a.deliverTimed(b, contract.Delivery{Attempt: attempt, Redelivery: redelivery})
		if herr == nil {
			return false, nil
		}
		if a.isStopped() {
			return false, errStopped
		}
		if err := a.ctxErr(); err != nil {
			return false, err
		}
		if attempt >= r.policy.MaxDeliveries {
			return true, r.park(b, attempt, herr, redelivery)
		}
		wait := r.policy.Backoff(attempt)
		r.logger.Debug("durable stream handler failed; delivering the batch again",
			"name", r.lease.name, "last_sequence_number", b[len(b)-1].SequenceNumber, "attempt", attempt, "backoff", wait, "error", herr)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return false, a.ctxErr()
		}
		if r.onRedelivery != nil {
			r.onRedelivery(r.lease.name)
		}
	}
}

// park records b's events as parked after attempts failed deliveries. A
// first delivery's park moves the cursor past b in the same change; a
// redelivery's leaves the cursor where it is.
func (r *retryPark) park(b []contract.EventRecord, attempts int, herr error, redelivery bool) error {
	last := b[len(b)-1].SequenceNumber
	p := Parking{Seqs: make([]uint64, len(b)), Attempts: attempts, Error: truncateUTF8(herr.Error(), contract.MaxParkedErrorBytes)}
	for i, ev := range b {
		p.Seqs[i] = ev.SequenceNumber
	}
	if !redelivery {
		p.Cursor = last
	}
	if err := r.lease.park(p); err != nil {
		return fmt.Errorf("park the batch ending at %d after %d deliveries: %w", last, attempts, err)
	}
	if !redelivery {
		r.cursor.storedAt(last)
	}
	r.logger.Warn("durable stream parked a batch its handler failed on",
		"name", r.lease.name, "first_sequence_number", b[0].SequenceNumber, "last_sequence_number", last,
		"events", len(b), "attempts", attempts, "redelivery", redelivery, "error", herr)
	if r.onParked != nil {
		r.onParked(r.lease.name, len(b))
	}
	return nil
}

// redeliverDue delivers through a the parked events whose redelivery was
// asked for, a page at a time, each page as one batch flagged as a
// redelivery; handled, they leave the parked list, failed on every
// delivery, they are parked again (and no longer due).
func (r *retryPark) redeliverDue(ctx context.Context, a attempter) error {
	// Looking reads the parked list: at most once per poll, however fast
	// the stream delivers.
	if now := time.Now(); now.Sub(r.polled) >= r.poll {
		r.polled = now
	} else {
		return nil
	}
	for {
		if a.isStopped() {
			return errStopped
		}
		if err := a.ctxErr(); err != nil {
			return err
		}
		due, err := r.lease.dueParked(ctx, parkedPage)
		if err != nil {
			if cerr := a.ctxErr(); cerr != nil {
				return cerr
			}
			if errors.Is(err, contract.ErrClosed) {
				return err
			}
			// A name deleted under its holder, or a failed read: the next
			// poll looks again.
			r.logger.Debug("read parked events due", "name", r.lease.name, "error", err)
			return nil
		}
		if len(due) == 0 {
			return nil
		}
		batch := make([]contract.EventRecord, len(due))
		seqs := make([]uint64, len(due))
		for i, p := range due {
			batch[i], seqs[i] = p.Event, p.Event.SequenceNumber
		}
		parked, err := r.deliver(ctx, a, batch, true)
		if err != nil {
			return err
		}
		if parked {
			continue
		}
		if err := r.lease.unpark(seqs); err != nil {
			return fmt.Errorf("remove %d redelivered events from the parked list: %w", len(seqs), err)
		}
	}
}

// truncateUTF8 cuts s to at most n bytes without splitting a character.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}
