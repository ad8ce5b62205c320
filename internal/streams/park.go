package streams

import (
	"context"
	"errors"
	"fmt"
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

// errPoll is waitHead's "no commit within ParkedPoll": look for parked
// events due, then wait again.
var errPoll = errors.New("poll for parked events")

// parkedPage bounds one redelivery of parked events.
const parkedPage = 128

// parks reports whether s is a durable subscription whose policy parks.
func (s *subscription) parks() bool { return s.durable && s.failure.Parks() }

// logPolicyKept says when an existing name keeps a failure policy other
// than the one asked for, as Durable does for the start position.
func (e *Engine) logPolicyKept(name string, acq AcquireResult, asked contract.FailurePolicy) {
	if acq.Created || acq.Failure.Normalized() == asked.Normalized() {
		return
	}
	e.cfg.Logger.Info("durable stream exists: it keeps its failure policy; a policy applies only when a name is created",
		"name", name, "policy", acq.Failure.String(), "policy_asked", asked.String())
}

// waitHead waits for a commit after s.pos; a subscription that parks waits
// at most ParkedPoll, then reports errPoll.
func (s *subscription) waitHead() (uint64, error) {
	if !s.parks() {
		return s.e.cfg.Hub.Wait(s.ctx, s.pos)
	}
	ctx, cancel := context.WithTimeout(s.ctx, s.e.cfg.ParkedPoll)
	defer cancel()
	head, err := s.e.cfg.Hub.Wait(ctx, s.pos)
	if err != nil && s.ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
		return head, errPoll
	}
	return head, err
}

// deliverRetrying delivers b under the "retry N then park" policy: a failed
// delivery is retried after the policy's backoff, up to MaxDeliveries in
// all, then b is parked. parked reports that b was parked (for a first
// delivery the cursor has then moved past it); err is set only when the
// stream ends (stopped, ctx ended, or the park could not be recorded), and
// b is then not recorded as handled.
func (s *subscription) deliverRetrying(b []contract.EventRecord, redelivery bool) (parked bool, err error) {
	for attempt := 1; ; attempt++ {
		herr := s.deliverTimed(b, contract.Delivery{Attempt: attempt, Redelivery: redelivery})
		if herr == nil {
			return false, nil
		}
		if s.isStopped() {
			return false, errStopped
		}
		if err := s.ctxErr(); err != nil {
			return false, err
		}
		if attempt >= s.failure.MaxDeliveries {
			return true, s.park(b, attempt, herr, redelivery)
		}
		wait := s.failure.Backoff(attempt)
		s.e.cfg.Logger.Debug("durable stream handler failed; delivering the batch again",
			"name", s.name, "last_sequence_number", b[len(b)-1].SequenceNumber, "attempt", attempt, "backoff", wait, "error", herr)
		select {
		case <-time.After(wait):
		case <-s.ctx.Done():
			return false, s.ctxErr()
		}
		if s.e.cfg.OnRedelivery != nil {
			s.e.cfg.OnRedelivery(s.name)
		}
	}
}

// park records b's events as parked after attempts failed deliveries. A
// first delivery's park moves the cursor past b in the same change; a
// redelivery's leaves the cursor where it is.
func (s *subscription) park(b []contract.EventRecord, attempts int, herr error, redelivery bool) error {
	last := b[len(b)-1].SequenceNumber
	p := Parking{Seqs: make([]uint64, len(b)), Attempts: attempts, Error: truncateUTF8(herr.Error(), contract.MaxParkedErrorBytes)}
	for i, ev := range b {
		p.Seqs[i] = ev.SequenceNumber
	}
	if !redelivery {
		p.Cursor = last
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(s.ctx), s.e.cfg.CursorTimeout)
	defer cancel()
	if err := s.e.cfg.Durables.Park(ctx, s.name, s.holder, p); err != nil {
		return fmt.Errorf("park the batch ending at %d after %d deliveries: %w", last, attempts, err)
	}
	if !redelivery {
		s.parkedThrough(last)
	}
	s.e.cfg.Logger.Warn("durable stream parked a batch its handler failed on",
		"name", s.name, "first_sequence_number", b[0].SequenceNumber, "last_sequence_number", last,
		"events", len(b), "attempts", attempts, "redelivery", redelivery, "error", herr)
	if s.e.cfg.OnParked != nil {
		s.e.cfg.OnParked(s.name, len(b))
	}
	return nil
}

// parkedThrough records that the store's cursor is at pos: the park moved
// it, so the flusher has nothing to write for it.
func (s *subscription) parkedThrough(pos uint64) {
	c := &s.cur
	c.mu.Lock()
	c.acked = max(c.acked, pos)
	c.stored = max(c.stored, pos)
	c.mu.Unlock()
}

// redeliverParked delivers the parked events whose redelivery was asked
// for, a page at a time, each page as one batch flagged as a redelivery;
// handled, they leave the parked list, failed on every delivery, they are
// parked again (and no longer due).
func (s *subscription) redeliverParked() error {
	// Looking reads the parked list: at most once per ParkedPoll, however
	// fast the stream delivers.
	if now := time.Now(); now.Sub(s.parkedPolled) >= s.e.cfg.ParkedPoll {
		s.parkedPolled = now
	} else {
		return nil
	}
	for {
		if s.isStopped() {
			return errStopped
		}
		if err := s.ctxErr(); err != nil {
			return err
		}
		due, err := s.e.cfg.Durables.DueParked(s.ctx, s.name, parkedPage)
		if err != nil {
			if cerr := s.ctxErr(); cerr != nil {
				return cerr
			}
			if errors.Is(err, contract.ErrClosed) {
				return err
			}
			// A name deleted under its holder, or a failed read: the next
			// poll looks again.
			s.e.cfg.Logger.Debug("read parked events due", "name", s.name, "error", err)
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
		parked, err := s.deliverRetrying(batch, true)
		if err != nil {
			return err
		}
		if parked {
			continue
		}
		ctx, cancel := context.WithTimeout(context.WithoutCancel(s.ctx), s.e.cfg.CursorTimeout)
		err = s.e.cfg.Durables.Unpark(ctx, s.name, s.holder, seqs)
		cancel()
		if err != nil {
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
