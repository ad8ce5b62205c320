package boltstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"time"

	"go.etcd.io/bbolt"

	"github.com/factstr/factstr-go/contract"
	"github.com/factstr/factstr-go/fsm/command"
	"github.com/factstr/factstr-go/internal/streams"
)

// The parked events of durable names whose failure policy is "retry N then
// park": one record per event, under parkedKey(name, seq), changed only by
// the command.{Park,Unpark,RedeliverParked,DropParked} commands (and
// forgotten with the name by command.DeleteDurable). The name's record
// counts them, so a listing of names reads no parked record.

// decodeFailure reads the fields encode appends after the start position:
// the failure policy and the parked count.
func (d *durableRecord) decodeFailure(rest []byte) error {
	var vals [4]uint64
	for i := range vals {
		var n int
		if i == 1 || i == 2 {
			var v int64
			if v, n = binary.Varint(rest); n > 0 {
				vals[i] = uint64(v)
			}
		} else {
			vals[i], n = binary.Uvarint(rest)
		}
		if n <= 0 {
			return errCorrupt
		}
		rest = rest[n:]
	}
	d.failure = contract.FailurePolicy{MaxDeliveries: int(vals[0]), InitialBackoff: time.Duration(int64(vals[1])), MaxBackoff: time.Duration(int64(vals[2]))}
	d.parked = vals[3]
	return nil
}

// parkedPrefix is the key prefix of name's parked events: the name's
// length and the name, so no name's prefix is another's.
func parkedPrefix(name string) []byte {
	b := binary.AppendUvarint(make([]byte, 0, len(name)+10+8), uint64(len(name)))
	return append(b, name...)
}

func parkedKey(name string, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(parkedPrefix(name), seq)
}

// parkedRecord is the stored state of one parked event.
type parkedRecord struct {
	attempts  uint64
	parkedAt  int64 // unix nanos
	redeliver bool  // a redelivery was asked for and not yet handled
	lastError string
}

func (p parkedRecord) encode() []byte {
	b := make([]byte, 0, 24+len(p.lastError))
	b = append(b, recordVersion)
	b = binary.AppendUvarint(b, p.attempts)
	b = binary.AppendVarint(b, p.parkedAt)
	flags := byte(0)
	if p.redeliver {
		flags |= 1
	}
	b = append(b, flags)
	return putUvarintBytes(b, []byte(p.lastError))
}

func decodeParked(v []byte) (parkedRecord, error) {
	var p parkedRecord
	if len(v) < 1 || v[0] != recordVersion {
		return p, errCorrupt
	}
	rest := v[1:]
	var n int
	if p.attempts, n = binary.Uvarint(rest); n <= 0 {
		return p, errCorrupt
	}
	rest = rest[n:]
	if p.parkedAt, n = binary.Varint(rest); n <= 0 || len(rest) < n+1 {
		return p, errCorrupt
	}
	p.redeliver = rest[n]&1 != 0
	msg, _, err := readUvarintBytes(rest[n+1:])
	if err != nil {
		return p, err
	}
	p.lastError = string(msg)
	return p, nil
}

// parkedApplier applies the parked-list commands (Park, Unpark,
// RedeliverParked and DropParked) and owns the parked bucket: the events a
// durable with a park failure policy set aside. It is separate from applier, as etcd keeps
// an applier per request family; it reaches the durable records it counts
// parked events in through the applier it wraps.
type parkedApplier struct{ *applier }

func (a parkedApplier) parkedBucket() (*bbolt.Bucket, error) {
	// A file restored from a snapshot of an earlier version has no parked
	// bucket until it is first needed.
	return a.tx.CreateBucketIfNotExists(bucketParked)
}

// target is the common start of the parked-list commands: name's record,
// and the parked bucket. Park and Unpark act only for the name's holder
// (held), like Advance; RedeliverParked and DropParked are an operator's,
// on any name that exists. refused is the command's own outcome, err a
// storage failure.
func (a parkedApplier) target(name, holder string, held bool) (d durableRecord, b *bbolt.Bucket, refused, err error) {
	if err := checkName("durable stream name", name); err != nil {
		return d, nil, err, nil
	}
	d, ok, err := a.loadDurable(name)
	if err != nil {
		return d, nil, nil, err
	}
	if held {
		if !ok || d.holder == "" || d.holder != holder {
			return d, nil, fmt.Errorf("%w: durable stream %q, holder %q", command.ErrNotHeld, name, holder), nil
		}
	} else if !ok {
		return d, nil, fmt.Errorf("%w: %q", contract.ErrDurableNotFound, name), nil
	}
	b, err = a.parkedBucket()
	return d, b, nil, err
}

// park applies Park: its Result's Cursor is the number of events parked.
func (a parkedApplier) park(c *command.Park) (command.Result, error) {
	d, b, refused, err := a.target(c.Name, c.Holder, true)
	if err != nil || refused != nil {
		return command.Result{Err: refused}, err
	}
	if rerr := a.checkParkable(c, d); rerr != nil {
		return command.Result{Err: rerr}, nil
	}
	n, err := a.parkEvents(b, c, &d)
	if err != nil {
		return command.Result{}, err
	}
	return command.Result{Cursor: uint64(n)}, a.storeDurable(c.Name, d)
}

// unpark applies Unpark: its Result's Cursor is the number of events
// removed.
func (a parkedApplier) unpark(c *command.Unpark) (command.Result, error) {
	d, b, refused, err := a.target(c.Name, c.Holder, true)
	if err != nil || refused != nil {
		return command.Result{Err: refused}, err
	}
	n := 0
	for _, seq := range c.Seqs {
		k := parkedKey(c.Name, seq)
		if b.Get(k) == nil {
			continue
		}
		if err := b.Delete(k); err != nil {
			return command.Result{}, err
		}
		n++
	}
	d.parked -= min(d.parked, uint64(n))
	return command.Result{Cursor: uint64(n)}, a.storeDurable(c.Name, d)
}

// redeliver applies RedeliverParked: its Result's Cursor is the number of
// events marked.
func (a parkedApplier) redeliver(c *command.RedeliverParked) (command.Result, error) {
	d, b, refused, err := a.target(c.Name, "", false)
	if err != nil || refused != nil {
		return command.Result{Err: refused}, err
	}
	n, err := a.markRedeliver(b, c.Name, c.UpTo)
	if err != nil {
		return command.Result{}, err
	}
	return command.Result{Cursor: uint64(n)}, a.storeDurable(c.Name, d)
}

// drop applies DropParked: its Result's Cursor is the number of events
// forgotten.
func (a parkedApplier) drop(c *command.DropParked) (command.Result, error) {
	_, _, refused, err := a.target(c.Name, "", false)
	if err != nil || refused != nil {
		return command.Result{Err: refused}, err
	}
	n, err := a.dropParked(c.Name, c.UpTo)
	if err != nil {
		return command.Result{}, err
	}
	// dropParked stored the count; reload so it is not overwritten.
	d, _, err := a.loadDurable(c.Name)
	if err != nil {
		return command.Result{}, err
	}
	return command.Result{Cursor: uint64(n)}, a.storeDurable(c.Name, d)
}

// checkParkable is Park's own check, the same on every replica.
func (a parkedApplier) checkParkable(c *command.Park, d durableRecord) error {
	if !d.failure.Parks() {
		return fmt.Errorf("%w: durable stream %q has the failure policy stop: it parks nothing", contract.ErrInvalidQuery, c.Name)
	}
	if len(c.Seqs) == 0 {
		return fmt.Errorf("%w: a park names no event", contract.ErrInvalidQuery)
	}
	for _, seq := range c.Seqs {
		if seq == 0 || seq > a.r.head {
			return fmt.Errorf("%w: parked event %d is not in the log (it ends at %d)", contract.ErrInvalidQuery, seq, a.r.head)
		}
	}
	if c.Cursor > a.r.head {
		return fmt.Errorf("%w: a park moves the cursor to %d, the log ends at %d", contract.ErrPositionAhead, c.Cursor, a.r.head)
	}
	return nil
}

func (a parkedApplier) parkEvents(b *bbolt.Bucket, c *command.Park, d *durableRecord) (int, error) {
	msg := c.Error
	if len(msg) > contract.MaxParkedErrorBytes {
		msg = msg[:contract.MaxParkedErrorBytes]
	}
	at := int64(0)
	if !c.OccurredAt.IsZero() {
		at = unixNanos(c.OccurredAt)
	}
	for _, seq := range c.Seqs {
		k := parkedKey(c.Name, seq)
		p := parkedRecord{attempts: uint64(c.Attempts), parkedAt: at, lastError: msg}
		if v := b.Get(k); v != nil {
			old, err := decodeParked(v)
			if err != nil {
				return 0, fmt.Errorf("parked event %d of %q: %w", seq, c.Name, err)
			}
			p.attempts += old.attempts
		} else {
			d.parked++
		}
		if err := b.Put(k, p.encode()); err != nil {
			return 0, err
		}
	}
	if c.Cursor > d.cursor {
		d.cursor = c.Cursor
		if at != 0 {
			d.lastAck = at
		}
	}
	return len(c.Seqs), nil
}

// parkedUpTo collects the keys of name's parked events up to upTo (0:
// all); collected first, as deleting under a moving cursor can skip keys.
func parkedUpTo(b *bbolt.Bucket, name string, upTo uint64) (keys, vals [][]byte) {
	prefix := parkedPrefix(name)
	cur := b.Cursor()
	for k, v := cur.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix) && len(k) == len(prefix)+8; k, v = cur.Next() {
		if upTo != 0 && binary.BigEndian.Uint64(k[len(prefix):]) > upTo {
			break
		}
		keys, vals = append(keys, bytes.Clone(k)), append(vals, bytes.Clone(v))
	}
	return keys, vals
}

func (a parkedApplier) markRedeliver(b *bbolt.Bucket, name string, upTo uint64) (int, error) {
	keys, vals := parkedUpTo(b, name, upTo)
	for i, k := range keys {
		p, err := decodeParked(vals[i])
		if err != nil {
			return 0, fmt.Errorf("parked event of %q: %w", name, err)
		}
		p.redeliver = true
		if err := b.Put(k, p.encode()); err != nil {
			return 0, err
		}
	}
	return len(keys), nil
}

// dropParked forgets name's parked events up to upTo (0: all) and stores
// the name's count, if the name exists.
func (a parkedApplier) dropParked(name string, upTo uint64) (int, error) {
	b, err := a.parkedBucket()
	if err != nil {
		return 0, err
	}
	keys, _ := parkedUpTo(b, name, upTo)
	for _, k := range keys {
		if err := b.Delete(k); err != nil {
			return 0, err
		}
	}
	if len(keys) == 0 {
		return 0, nil
	}
	d, ok, err := a.loadDurable(name)
	if err != nil || !ok {
		return len(keys), err
	}
	d.parked -= min(d.parked, uint64(len(keys)))
	return len(keys), a.storeDurable(name, d)
}

// ParkedEvents reads up to limit parked events of name after sequence
// number after, with their events; only those due for redelivery if due.
// An unknown name is contract.ErrDurableNotFound.
func (s *Replica) ParkedEvents(name string, after uint64, limit int, due bool) ([]contract.ParkedEvent, error) {
	if s.closing.Load() {
		return nil, contract.ErrClosed
	}
	out := []contract.ParkedEvent{}
	err := s.be.view(func(tx *bbolt.Tx) error {
		if tx.Bucket(bucketDurables).Get([]byte(name)) == nil {
			return fmt.Errorf("%w: %q", contract.ErrDurableNotFound, name)
		}
		b := tx.Bucket(bucketParked)
		if b == nil {
			return nil
		}
		r, err := newReader(tx)
		if err != nil {
			return err
		}
		prefix := parkedPrefix(name)
		cur := b.Cursor()
		for k, v := cur.Seek(parkedKey(name, after+1)); k != nil && bytes.HasPrefix(k, prefix) && len(out) < limit; k, v = cur.Next() {
			if len(k) != len(prefix)+8 {
				continue
			}
			seq := binary.BigEndian.Uint64(k[len(prefix):])
			p, err := decodeParked(v)
			if err != nil {
				return fmt.Errorf("parked event %d of %q: %w", seq, name, err)
			}
			if due && !p.redeliver {
				continue
			}
			raw, err := r.event(seq)
			if err != nil {
				return err
			}
			ev, err := eventRecord(seq, raw)
			if err != nil {
				return err
			}
			pe := contract.ParkedEvent{Event: ev, Attempts: int(p.attempts), LastError: p.lastError, Redeliver: p.redeliver}
			if p.parkedAt != 0 {
				pe.ParkedAt = time.Unix(0, p.parkedAt).UTC()
			}
			out = append(out, pe)
		}
		return nil
	})
	return out, err
}

// ParkedPageLimit is limit as ListParked takes it: 0 is the default page,
// and no page is larger than contract.MaxParkedPage.
func ParkedPageLimit(limit int) int {
	if limit <= 0 {
		return contract.DefaultParkedPage
	}
	return min(limit, contract.MaxParkedPage)
}

// ListParked returns a page of name's parked events (contract.ParkedAdmin).
func (s *Store) ListParked(ctx context.Context, name string, after uint64, limit int) ([]contract.ParkedEvent, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := contract.ValidateDurableName(name); err != nil {
		return nil, err
	}
	return s.Replica().ParkedEvents(name, after, ParkedPageLimit(limit), false)
}

// RedeliverParked marks name's parked events up to upTo (0: all) for
// redelivery (contract.ParkedAdmin).
func (s *Store) RedeliverParked(ctx context.Context, name string, upTo uint64) (int, error) {
	return s.gc.parkedAdmin(ctx, name, command.RedeliverParked{Name: name, UpTo: upTo})
}

// DropParked forgets name's parked events up to upTo (0: all)
// (contract.ParkedAdmin).
func (s *Store) DropParked(ctx context.Context, name string, upTo uint64) (int, error) {
	return s.gc.parkedAdmin(ctx, name, command.DropParked{Name: name, UpTo: upTo})
}

func (gc *committer) parkedAdmin(ctx context.Context, name string, c command.Command) (int, error) {
	if err := gc.adminWrite(ctx, name); err != nil {
		return 0, err
	}
	res, err := gc.submit(c)
	if err == nil {
		err = res.Err
	}
	if err != nil {
		return 0, err
	}
	return int(res.Cursor), nil
}

// Failure returns the failure policy recorded with name (stop for an
// unknown name): stores read it after an acquire applied.
func (s *Replica) Failure(name string) (contract.FailurePolicy, error) {
	d, _, err := s.storedDurable(name)
	return d.failure, err
}

func (d *durables) Park(_ context.Context, name, holder string, p streams.Parking) error {
	res, err := d.gc.submit(command.ParkOf(name, holder, p, d.opts.now().UTC()))
	if err != nil {
		return err
	}
	return res.Err
}

func (d *durables) DueParked(_ context.Context, name string, limit int) ([]contract.ParkedEvent, error) {
	return (*Replica)(d).ParkedEvents(name, 0, limit, true)
}

func (d *durables) Unpark(_ context.Context, name, holder string, seqs []uint64) error {
	res, err := d.gc.submit(command.Unpark{Name: name, Holder: holder, Seqs: seqs})
	if err != nil {
		return err
	}
	return res.Err
}
