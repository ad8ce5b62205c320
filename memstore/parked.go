package memstore

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/factstr/factstr-go/contract"
	"github.com/factstr/factstr-go/internal/streams"
)

// parkedEvent is one event of a durable name's parked list.
type parkedEvent struct {
	attempts  int
	lastError string
	parkedAt  time.Time
	redeliver bool
}

func (d *durables) Park(_ context.Context, name, holder string, p streams.Parking) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	cur, err := (*Store)(d).heldByLocked(name, holder)
	if err != nil {
		return err
	}
	if !cur.failure.Parks() {
		return fmt.Errorf("%w: durable stream %q has the failure policy stop: it parks nothing", contract.ErrInvalidQuery, name)
	}
	if cur.parked == nil {
		cur.parked = make(map[uint64]*parkedEvent)
	}
	now := d.now().UTC()
	for _, seq := range p.Seqs {
		if seq == 0 || seq > uint64(len(d.events)) {
			return fmt.Errorf("%w: parked event %d is not in the log", contract.ErrInvalidQuery, seq)
		}
	}
	for _, seq := range p.Seqs {
		pe := cur.parked[seq]
		if pe == nil {
			pe = &parkedEvent{}
			cur.parked[seq] = pe
		}
		pe.attempts += p.Attempts
		pe.lastError = p.Error
		pe.parkedAt = now
		pe.redeliver = false
	}
	if p.Cursor > cur.cursor {
		cur.cursor, cur.lastAck = p.Cursor, now
	}
	return nil
}

func (d *durables) DueParked(_ context.Context, name string, limit int) ([]contract.ParkedEvent, error) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return (*Store)(d).parkedLocked(name, 0, limit, true)
}

func (d *durables) Unpark(_ context.Context, name, holder string, seqs []uint64) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	cur, err := (*Store)(d).heldByLocked(name, holder)
	if err != nil {
		return err
	}
	for _, seq := range seqs {
		delete(cur.parked, seq)
	}
	return nil
}

func (s *Store) heldByLocked(name, holder string) (*durable, error) {
	if s.closed {
		return nil, contract.ErrClosed
	}
	cur, ok := s.durables[name]
	if !ok || cur.holder != holder {
		return nil, fmt.Errorf("%w: durable stream %q is not held by %s", contract.ErrDurableLeaseLost, name, holder)
	}
	return cur, nil
}

// parkedLocked returns up to limit parked events of name after after, in
// sequence order; only those due for redelivery if due.
func (s *Store) parkedLocked(name string, after uint64, limit int, due bool) ([]contract.ParkedEvent, error) {
	if s.closed {
		return nil, contract.ErrClosed
	}
	d, ok := s.durables[name]
	if !ok {
		return nil, fmt.Errorf("%w: %q", contract.ErrDurableNotFound, name)
	}
	out := []contract.ParkedEvent{}
	for _, seq := range slices.Sorted(maps.Keys(d.parked)) {
		if len(out) >= limit {
			break
		}
		p := d.parked[seq]
		if seq <= after || (due && !p.redeliver) {
			continue
		}
		out = append(out, contract.ParkedEvent{Event: cloneRecord(s.events[seq-1]), Attempts: p.attempts,
			LastError: p.lastError, ParkedAt: p.parkedAt, Redeliver: p.redeliver})
	}
	return out, nil
}

// ListParked returns a page of name's parked events (contract.ParkedAdmin).
func (s *Store) ListParked(ctx context.Context, name string, after uint64, limit int) ([]contract.ParkedEvent, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := contract.ValidateDurableName(name); err != nil {
		return nil, err
	}
	if limit <= 0 {
		limit = contract.DefaultParkedPage
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.parkedLocked(name, after, min(limit, contract.MaxParkedPage), false)
}

// RedeliverParked marks name's parked events up to upTo (0: all) for
// redelivery to its subscriber (contract.ParkedAdmin).
func (s *Store) RedeliverParked(ctx context.Context, name string, upTo uint64) (int, error) {
	return s.eachParked(ctx, name, upTo, func(d *durable, seq uint64) { d.parked[seq].redeliver = true })
}

// DropParked forgets name's parked events up to upTo (0: all)
// (contract.ParkedAdmin).
func (s *Store) DropParked(ctx context.Context, name string, upTo uint64) (int, error) {
	return s.eachParked(ctx, name, upTo, func(d *durable, seq uint64) { delete(d.parked, seq) })
}

func (s *Store) eachParked(ctx context.Context, name string, upTo uint64, fn func(*durable, uint64)) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if err := contract.ValidateDurableName(name); err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, contract.ErrClosed
	}
	d, ok := s.durables[name]
	if !ok {
		return 0, fmt.Errorf("%w: %q", contract.ErrDurableNotFound, name)
	}
	n := 0
	for _, seq := range slices.Sorted(maps.Keys(d.parked)) {
		if upTo != 0 && seq > upTo {
			break
		}
		fn(d, seq)
		n++
	}
	return n, nil
}
