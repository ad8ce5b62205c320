package streams

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/factstr/factstr-go/contract"
)

// errPoll is waitHead's "no commit within ParkedPoll": look for parked
// events due, then wait again.
var errPoll = errors.New("poll for parked events")

// replay delivers the batches after s.pos through until. Unlike run, an
// until of 0 (an empty log) means nothing to replay, not "run live".
func (s *subscription) replay(until uint64) error {
	if until <= s.pos {
		return nil
	}
	return s.run(until)
}

// run delivers batches after s.pos. With until > 0 it returns once pos
// reaches until (replay); with until == 0 it runs until stopped.
func (s *subscription) run(until uint64) error {
	defer s.ahead.reset()
	for {
		if s.isStopped() {
			return errStopped
		}
		// A cancelled ctx ends the stream even when the hub or the source
		// would still answer (a batch committed right after the cancel
		// must not be delivered).
		if err := s.ctxErr(); err != nil {
			return err
		}
		if until != 0 && s.pos >= until {
			return nil
		}
		upTo := until
		if until == 0 {
			if s.parking != nil {
				if err := s.parking.redeliverDue(s.ctx, s); err != nil {
					return err
				}
			}
			if s.durable && s.pos > s.cur.ackedPos() {
				recorded, err := s.recordWhenIdle()
				if err != nil {
					return err
				}
				if recorded {
					continue
				}
			}
			head, err := s.waitHead()
			if errors.Is(err, errPoll) {
				continue
			}
			if err != nil {
				if cerr := s.ctxErr(); cerr != nil {
					return cerr
				}
				return err
			}
			upTo = head
		}
		grant, err := s.e.budget.acquire(s.ctx, s.e.cfg.SubscriberBytes)
		if err != nil {
			return err
		}
		batches, scanned, err := s.read(upTo, grant)
		if err != nil {
			s.e.budget.add(-grant)
			if cerr := s.ctxErr(); cerr != nil {
				return cerr
			}
			if errors.Is(err, contract.ErrClosed) {
				return err
			}
			s.e.cfg.Logger.Warn("stream read failed, retrying", "subscription", s.id, "error", err)
			select {
			case <-time.After(s.e.cfg.RetryBackoff):
				continue
			case <-s.ctx.Done():
				return s.ctxErr()
			}
		}
		if s.filter != nil {
			batches = filterBatches(batches, s.filter)
		}
		s.ahead.hold(batches, grant)
		last, reclaimed, err := s.deliverAhead()
		if err != nil {
			return err
		}
		if reclaimed {
			// The batches after last were dropped unread: read again after
			// it. The rest of last's committed batch holds no match (a
			// delivery is every match of one committed batch).
			s.pos = max(s.pos, last)
			continue
		}
		if scanned > s.pos {
			s.pos = scanned
		}
		s.progress.Store(s.pos)
	}
}

// read returns the batches after s.pos through upTo: from the hub's
// recent batches when it keeps them all (a caught-up subscription), else
// from the store.
func (s *subscription) read(upTo uint64, grant int64) ([][]contract.EventRecord, uint64, error) {
	if batches, scanned, ok := s.e.cfg.Hub.Recent(s.pos, upTo, s.matcher, s.e.cfg.MaxBatchesPerRead, grant); ok {
		return batches, scanned, nil
	}
	return s.e.cfg.Source.ReadBatches(s.ctx, s.pos, upTo, s.matcher, s.e.cfg.MaxBatchesPerRead, grant)
}

// recordWhenIdle waits up to IdleRecord for a commit after pos. If none
// comes, it records pos as the cursor (nothing up to it matched after the
// last delivery) and reports true.
func (s *subscription) recordWhenIdle() (bool, error) {
	ctx, cancel := context.WithTimeout(s.ctx, s.e.cfg.IdleRecord)
	defer cancel()
	_, err := s.e.cfg.Hub.Wait(ctx, s.pos)
	if err == nil || s.ctx.Err() != nil || !errors.Is(err, context.DeadlineExceeded) {
		return false, nil // a commit came (or the stream ends): the main wait sees it
	}
	s.cur.ack(s.pos)
	return true, nil
}

// waitHead waits for a commit after s.pos; a subscription that parks waits
// at most ParkedPoll, then reports errPoll.
func (s *subscription) waitHead() (uint64, error) {
	if s.parking == nil {
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

// ctxErr is the reason s.ctx ended (ErrSubscriberTooSlow after a stall), or
// nil while it runs.
func (s *subscription) ctxErr() error {
	if s.ctx.Err() == nil {
		return nil
	}
	return context.Cause(s.ctx)
}

// deliverAhead delivers the held batches in order. last is the last
// sequence number delivered; reclaimed says a stall dropped the rest.
func (s *subscription) deliverAhead() (last uint64, reclaimed bool, err error) {
	for {
		b, ok, dropped := s.ahead.take()
		if !ok {
			return last, dropped, nil
		}
		err := s.deliverOne(b)
		s.ahead.delivered(b)
		if err != nil {
			return last, false, err
		}
		last = b[len(b)-1].SequenceNumber
	}
}

// deliverOne delivers one batch under the subscription's failure policy:
// a live stream goes on after a handler failure, a durable one stops, or
// retries and parks. A durable batch handled (or parked) is acknowledged.
func (s *subscription) deliverOne(b []contract.EventRecord) error {
	if s.isStopped() {
		return errStopped
	}
	if err := s.ctxErr(); err != nil {
		return err
	}
	if s.parking != nil {
		parked, err := s.parking.deliver(s.ctx, s, b, false)
		if err == nil && !parked {
			s.cur.ack(b[len(b)-1].SequenceNumber)
		}
		return err
	}
	herr := s.deliverTimed(b, contract.Delivery{Attempt: 1})
	if errors.Is(herr, errStopped) {
		return herr
	}
	if herr != nil {
		if s.durable {
			return fmt.Errorf("%w on the batch ending at %d: %w", contract.ErrHandlerFailed, b[len(b)-1].SequenceNumber, herr)
		}
		if err := s.ctxErr(); err != nil {
			return err
		}
		s.e.cfg.Logger.Debug("live stream handler failed; stream goes on", "subscription", s.id, "error", herr)
		return nil
	}
	if s.durable {
		s.cur.ack(b[len(b)-1].SequenceNumber)
	}
	return nil
}

// stalled runs when a handler held one delivery past StallTimeout: the
// read-ahead is dropped, so a subscriber that does not take its deliveries
// holds at most the batch in its handler; a live subscription also ends.
func (s *subscription) stalled() {
	dropped := s.ahead.drop()
	if s.durable {
		if dropped > 0 {
			s.e.cfg.Logger.Info("durable stream handler is slow; dropped its read-ahead", "subscription", s.id, "durable", s.name, "bytes", dropped)
		}
		return
	}
	s.e.cfg.Logger.Warn("live stream ended: its handler held a delivery too long", "subscription", s.id, "stall_timeout", s.e.cfg.StallTimeout)
	s.cancel(ErrSubscriberTooSlow)
}

// deliverTimed delivers batch once, under the stall timer.
func (s *subscription) deliverTimed(batch []contract.EventRecord, d contract.Delivery) error {
	var stall *time.Timer
	if s.e.cfg.StallTimeout > 0 {
		stall = time.AfterFunc(s.e.cfg.StallTimeout, s.stalled)
	}
	herr := s.deliver(batch, d)
	if stall != nil {
		stall.Stop()
	}
	return herr
}

// deliver calls the handler, unless the subscription was stopped: the
// check and inHandler are set under one lock, so an Unsubscribe either
// waits for the stream to end or knows a handler call is running.
func (s *subscription) deliver(batch []contract.EventRecord, d contract.Delivery) (err error) {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return errStopped
	}
	s.inHandler = true
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.inHandler = false
		s.mu.Unlock()
		if r := recover(); r != nil {
			err = fmt.Errorf("handler panicked: %v", r)
		}
	}()
	return s.handler(contract.WithDelivery(s.ctx, d), batch)
}
