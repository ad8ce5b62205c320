package boltstore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"go.etcd.io/bbolt"

	"github.com/factstr/factstr-go/contract"
	"github.com/factstr/factstr-go/internal/streams"
)

// ctxCheckEvery bounds how many events a long read examines between two
// looks at its context.
const ctxCheckEvery = 1024

// reader reads the event log and its indexes inside one bbolt transaction,
// read-only for queries or the write transaction of Apply (which then sees
// its own uncommitted appends, as AppendIf must).
type reader struct {
	events, batches, types, postings *bbolt.Bucket
	head                             uint64
	key                              [8]byte
}

func newReader(tx *bbolt.Tx) (*reader, error) {
	r := &reader{
		events:   tx.Bucket(bucketEvents),
		batches:  tx.Bucket(bucketBatches),
		types:    tx.Bucket(bucketTypes),
		postings: tx.Bucket(bucketPostings),
	}
	meta := tx.Bucket(bucketMeta)
	if r.events == nil || r.batches == nil || r.types == nil || r.postings == nil || meta == nil {
		return nil, fmt.Errorf("%w: missing bucket", errCorrupt)
	}
	r.head = uint64FromBytes(meta.Get(metaHead))
	return r, nil
}

// event returns the stored record of seq, valid for the transaction.
func (r *reader) event(seq uint64) ([]byte, error) {
	binary.BigEndian.PutUint64(r.key[:], seq)
	v := r.events.Get(r.key[:])
	if v == nil {
		return nil, fmt.Errorf("%w: event %d is indexed but missing", errCorrupt, seq)
	}
	return v, nil
}

func matchRecord(m *contract.Matcher, seq uint64, v []byte) (bool, error) {
	_, typ, payload, err := decodeEvent(v)
	if err != nil {
		return false, fmt.Errorf("event %d: %w", seq, err)
	}
	return m.Match(string(typ), payload), nil
}

// plan is a query's candidate set: every matching event is a candidate,
// and each candidate is verified with the matcher.
type plan struct {
	none bool   // nothing can match
	scan bool   // no index narrows the query: every event is a candidate
	set  seqSet // otherwise
}

// plan narrows q with the indexes. A filter contributes, per predicate,
// the intersection of the posting lists of the predicate's scalar leaves
// and of the union of the filter's type lists; filters and predicates
// union. A branch the indexes cannot narrow (no types and a predicate
// without scalar leaves, or no predicates) makes the whole query a scan.
// m is q compiled: its predicates are already decoded.
func (r *reader) plan(q contract.EventQuery, m *contract.Matcher) (plan, error) {
	if len(q.Filters) == 0 {
		return plan{scan: true}, nil
	}
	lists := make(map[string]seqSet) // shared so a repeated list is probed once per target
	list := func(b *bbolt.Bucket, prefix []byte) seqSet {
		id := string(prefix)
		if b == r.types {
			id = "t" + id
		} else {
			id = "p" + id
		}
		if s, ok := lists[id]; ok {
			return s
		}
		s := &memo{s: newPostingList(b, prefix)}
		lists[id] = s
		return s
	}
	var branches []seqSet
	for i, f := range q.Filters {
		if (f.EventTypes != nil && len(f.EventTypes) == 0) || (f.PayloadPredicates != nil && len(f.PayloadPredicates) == 0) {
			continue
		}
		var typeSet seqSet
		if f.EventTypes != nil {
			var u union
			seen := make(map[string]bool, len(f.EventTypes))
			for _, t := range f.EventTypes {
				if !seen[t] {
					seen[t] = true
					u = append(u, list(r.types, typePrefix(t)))
				}
			}
			typeSet = u[0]
			if len(u) > 1 {
				typeSet = &memo{s: u}
			}
		}
		if f.PayloadPredicates == nil {
			if typeSet == nil {
				return plan{scan: true}, nil
			}
			branches = append(branches, typeSet)
			continue
		}
		for _, v := range m.Predicates(i) {
			var parts intersection
			for _, lp := range leafPrefixes(v) {
				parts = append(parts, list(r.postings, lp))
			}
			if typeSet != nil {
				parts = append(parts, typeSet)
			}
			switch len(parts) {
			case 0:
				return plan{scan: true}, nil
			case 1:
				branches = append(branches, parts[0])
			default:
				branches = append(branches, &memo{s: parts})
			}
		}
	}
	switch len(branches) {
	case 0:
		return plan{none: true}, nil
	case 1:
		return plan{set: branches[0]}, nil
	default:
		return plan{set: union(branches)}, nil
	}
}

// ascend calls fn for every matching event in (after, upTo], ascending,
// until fn returns false.
func (r *reader) ascend(ctx context.Context, p plan, m *contract.Matcher, after, upTo uint64, fn func(seq uint64, v []byte) (bool, error)) error {
	upTo = min(upTo, r.head)
	if p.none || after >= upTo {
		return nil
	}
	n := 0
	check := func() error {
		if n++; n%ctxCheckEvery == 0 {
			return ctx.Err()
		}
		return nil
	}
	if p.scan {
		c := r.events.Cursor()
		for k, v := c.Seek(seqKey(after + 1)); k != nil; k, v = c.Next() {
			seq := binary.BigEndian.Uint64(k)
			if seq > upTo {
				return nil
			}
			if err := check(); err != nil {
				return err
			}
			ok, err := matchRecord(m, seq, v)
			if err != nil {
				return err
			}
			if ok {
				if more, err := fn(seq, v); err != nil || !more {
					return err
				}
			}
		}
		return nil
	}
	for t := after + 1; t <= upTo; {
		seq, ok := p.set.geq(t)
		if !ok || seq > upTo {
			return nil
		}
		if err := check(); err != nil {
			return err
		}
		v, err := r.event(seq)
		if err != nil {
			return err
		}
		if ok, err := matchRecord(m, seq, v); err != nil {
			return err
		} else if ok {
			if more, err := fn(seq, v); err != nil || !more {
				return err
			}
		}
		t = seq + 1
	}
	return nil
}

// lastMatch returns the highest matching sequence number <= from, or 0. A
// scan spends budget (nil: unbounded) on every event it examines.
func (r *reader) lastMatch(ctx context.Context, p plan, m *contract.Matcher, from uint64, budget *scanBudget) (uint64, error) {
	from = min(from, r.head)
	if p.none || from == 0 {
		return 0, nil
	}
	n := 0
	check := func() error {
		if n++; n%ctxCheckEvery == 0 {
			return ctx.Err()
		}
		return nil
	}
	if p.scan {
		c := r.events.Cursor()
		k, v := c.Seek(seqKey(from))
		if k == nil {
			k, v = c.Last()
		} else if binary.BigEndian.Uint64(k) > from {
			k, v = c.Prev()
		}
		for ; k != nil; k, v = c.Prev() {
			if err := check(); err != nil {
				return 0, err
			}
			if err := budget.spend(len(v)); err != nil {
				return 0, err
			}
			seq := binary.BigEndian.Uint64(k)
			if ok, err := matchRecord(m, seq, v); err != nil || ok {
				return seq, err
			}
		}
		return 0, nil
	}
	for t := from; t > 0; {
		seq, ok := p.set.leq(t)
		if !ok || seq == 0 {
			return 0, nil
		}
		if err := check(); err != nil {
			return 0, err
		}
		v, err := r.event(seq)
		if err != nil {
			return 0, err
		}
		if ok, err := matchRecord(m, seq, v); err != nil || ok {
			return seq, err
		}
		t = seq - 1
	}
	return 0, nil
}

// Apply's bound on a context the indexes cannot narrow. Such a context is
// refused before it is proposed (contract.ValidateContext); one that got into
// the log anyway (an older node, a direct caller of Apply) must not scan the
// whole log inside Apply, where every write on every replica waits for it.
// The bound is a constant of the log's contents, never of time, so every
// replica decides the same outcome.
const (
	applyScanEvents = 10_000
	applyScanBytes  = 16 << 20
)

// scanBudget counts what a scan examined; a nil budget is unbounded.
type scanBudget struct{ events, bytes int }

func (b *scanBudget) spend(recordBytes int) error {
	if b == nil {
		return nil
	}
	b.events++
	b.bytes += recordBytes
	if b.events > applyScanEvents || b.bytes > applyScanBytes {
		return fmt.Errorf("%w: the AppendIf context matched nothing in the newest %d events (%d bytes) and no index narrows it; "+
			"add an event type to each filter or a scalar value to each payload predicate", contract.ErrInvalidQuery, b.events-1, b.bytes-recordBytes)
	}
	return nil
}

// contextVersion is the current version of an AppendIf context inside
// Apply: its highest matching sequence number, found within the scan
// budget.
func (r *reader) contextVersion(ctx context.Context, q contract.EventQuery, m *contract.Matcher) (uint64, error) {
	p, err := r.plan(q, m)
	if err != nil {
		return 0, err
	}
	return r.lastMatch(ctx, p, m, r.head, &scanBudget{})
}

// query collects the result, and stops reading once the next event would
// take it over maxBytes (0: no bound): it then returns that first page with
// contract.ErrResultTooLarge.
func (r *reader) query(ctx context.Context, q contract.EventQuery, m *contract.Matcher, maxBytes int) (contract.QueryResult, error) {
	p, err := r.plan(q, m)
	if err != nil {
		return contract.QueryResult{}, err
	}
	var (
		res    contract.QueryResult
		size   int
		tooBig bool
	)
	err = r.ascend(ctx, p, m, q.MinSequenceNumber, r.head, func(seq uint64, v []byte) (bool, error) {
		rec, err := eventRecord(seq, v)
		if err != nil {
			return false, err
		}
		if size += contract.ResultBytes(rec.Type, rec.Payload); maxBytes > 0 && size > maxBytes {
			tooBig = true
			return false, nil
		}
		res.Events = append(res.Events, rec)
		return true, nil
	})
	if err != nil {
		return contract.QueryResult{}, err
	}
	if n := len(res.Events); n > 0 {
		res.LastReturnedSequenceNumber = res.Events[n-1].SequenceNumber
	}
	if tooBig {
		// The page ends early, so the newest match is further on.
		res.CurrentContextVersion, err = r.lastMatch(ctx, p, m, r.head, nil)
		if err != nil {
			return contract.QueryResult{}, err
		}
		return res, contract.ResultTooLarge(maxBytes, q, res.LastReturnedSequenceNumber)
	}
	if res.LastReturnedSequenceNumber > 0 {
		// Everything after MinSequenceNumber was examined, so the last
		// returned event is also the newest match.
		res.CurrentContextVersion = res.LastReturnedSequenceNumber
		return res, nil
	}
	res.CurrentContextVersion, err = r.lastMatch(ctx, p, m, q.MinSequenceNumber, nil)
	if err != nil {
		return contract.QueryResult{}, err
	}
	return res, nil
}

// Query returns the matching events after query.MinSequenceNumber and the
// context's current version, from one consistent read transaction. An
// embedded store bounds the result with its Limits.MaxQueryBytes; a
// replicated one leaves the bound to the node that serves the read
// (QueryLimited).
func (s *Store) Query(ctx context.Context, query contract.EventQuery) (contract.QueryResult, error) {
	if s.closing.Load() {
		return contract.QueryResult{}, contract.ErrClosed
	}
	maxBytes := 0
	if !s.opts.replicated {
		// A replica's reads are checked by the node that serves them,
		// with the limits it was configured with.
		if err := contract.ValidateQueryLimits(query, s.opts.limits); err != nil {
			return contract.QueryResult{}, err
		}
		maxBytes = s.opts.limits.MaxQueryBytes
	}
	return s.Replica().QueryLimited(ctx, query, maxBytes)
}

// QueryLimited is Query with a result bound of maxBytes (0: none) and no
// other limit checks: the caller has validated the query. Over the bound it
// returns the first page with contract.ErrResultTooLarge.
func (s *Replica) QueryLimited(ctx context.Context, query contract.EventQuery, maxBytes int) (contract.QueryResult, error) {
	if s.closing.Load() {
		return contract.QueryResult{}, contract.ErrClosed
	}
	m, err := contract.NewMatcher(query)
	if err != nil {
		return contract.QueryResult{}, err
	}
	if err := ctx.Err(); err != nil {
		return contract.QueryResult{}, err
	}
	var res contract.QueryResult
	err = s.be.view(func(tx *bbolt.Tx) error {
		r, err := newReader(tx)
		if err != nil {
			return err
		}
		res, err = r.query(ctx, query, m, maxBytes)
		return err
	})
	if errors.Is(err, contract.ErrResultTooLarge) {
		return res, err
	}
	if err != nil {
		return contract.QueryResult{}, fmt.Errorf("query: %w", err)
	}
	return res, nil
}

// ReadBatches implements streams.Source: the committed batches with events
// in (after, upTo], filtered by m and grouped as committed.
//
// A selective query (a durable stream replaying a long log for one
// context) is narrowed with the same indexes as Query; a query the indexes
// cannot narrow scans the range.
func (s *Store) ReadBatches(ctx context.Context, after, upTo uint64, m *contract.Matcher, maxBatches int, maxBytes int64) ([][]contract.EventRecord, uint64, error) {
	if s.closing.Load() {
		return nil, after, contract.ErrClosed
	}
	if maxBatches <= 0 {
		maxBatches = 1
	}
	var out [][]contract.EventRecord
	scanned := after
	err := s.be.view(func(tx *bbolt.Tx) error {
		r, err := newReader(tx)
		if err != nil {
			return err
		}
		out, scanned, err = r.readBatches(ctx, after, upTo, m, batchLimit{batches: maxBatches, bytes: maxBytes})
		return err
	})
	if err != nil {
		return nil, after, fmt.Errorf("read batches after %d: %w", after, err)
	}
	return out, scanned, nil
}

func (r *reader) readBatches(ctx context.Context, after, upTo uint64, m *contract.Matcher, lim batchLimit) ([][]contract.EventRecord, uint64, error) {
	upTo = min(upTo, r.head)
	if upTo <= after {
		return nil, after, nil
	}
	if m != nil && !m.MatchesEverything() {
		p, err := r.plan(m.Query(), m)
		if err != nil {
			return nil, after, err
		}
		if !p.scan {
			return r.readBatchesIndexed(ctx, p, after, upTo, m, lim)
		}
	}
	var (
		out    [][]contract.EventRecord
		cur    []contract.EventRecord
		curEnd uint64 // last sequence number of the committed batch being read
		n      int
		acc    batchAcc
	)
	ec, bc := r.events.Cursor(), r.batches.Cursor()
	for k, v := ec.Seek(seqKey(after + 1)); k != nil; k, v = ec.Next() {
		seq := binary.BigEndian.Uint64(k)
		if seq > upTo {
			break
		}
		if n++; n%ctxCheckEvery == 0 {
			if err := ctx.Err(); err != nil {
				return nil, after, err
			}
		}
		if seq > curEnd {
			if len(cur) > 0 {
				if !acc.fits(lim, cur) {
					return out, acc.pushedEnd, nil
				}
				out, cur = append(out, cur), nil
				if acc.push(lim, out, curEnd) {
					return out, curEnd, nil
				}
			}
			bk, _ := bc.Seek(k)
			if bk == nil {
				return nil, after, fmt.Errorf("%w: event %d has no committed batch", errCorrupt, seq)
			}
			curEnd = binary.BigEndian.Uint64(bk)
		}
		ok, err := matchRecord(m, seq, v)
		if err != nil {
			return nil, after, err
		}
		if ok {
			rec, err := eventRecord(seq, v)
			if err != nil {
				return nil, after, err
			}
			cur = append(cur, rec)
		}
	}
	if len(cur) > 0 {
		if !acc.fits(lim, cur) {
			return out, acc.pushedEnd, nil
		}
		out = append(out, cur)
	}
	return out, upTo, nil
}

// batchLimit bounds one readBatches: returned batches, and their
// streams.BatchBytes (0: no bound).
type batchLimit struct {
	batches int
	bytes   int64
}

// batchAcc counts what a readBatches has returned so far.
type batchAcc struct {
	n         int
	bytes     int64
	pending   int64  // BatchBytes of the batch fits last measured
	pushedEnd uint64 // end of the committed batch of the last returned batch
}

// fits reports whether cur may join the result: the first batch always
// does (a committed batch is never split), a later one only within the
// byte bound.
func (a *batchAcc) fits(lim batchLimit, cur []contract.EventRecord) bool {
	a.pending = streams.BatchBytes(cur)
	return a.n == 0 || lim.bytes <= 0 || a.bytes+a.pending <= lim.bytes
}

// push records the batch fits measured, ending at end; it reports that
// the result is full.
func (a *batchAcc) push(lim batchLimit, out [][]contract.EventRecord, end uint64) bool {
	a.n++
	a.bytes += a.pending
	a.pushedEnd = end
	return len(out) >= lim.batches || (lim.bytes > 0 && a.bytes >= lim.bytes)
}

// readBatchesIndexed is readBatches over the plan's candidates: the same
// batches, the same resume position.
func (r *reader) readBatchesIndexed(ctx context.Context, p plan, after, upTo uint64, m *contract.Matcher, lim batchLimit) ([][]contract.EventRecord, uint64, error) {
	var (
		out    [][]contract.EventRecord
		cur    []contract.EventRecord
		curEnd uint64
		acc    batchAcc
		full   bool
	)
	bc := r.batches.Cursor()
	err := r.ascend(ctx, p, m, after, upTo, func(seq uint64, v []byte) (bool, error) {
		if seq > curEnd {
			if len(cur) > 0 {
				if !acc.fits(lim, cur) {
					full = true
					return false, nil
				}
				out, cur = append(out, cur), nil
				if acc.push(lim, out, curEnd) {
					full = true
					return false, nil
				}
			}
			bk, _ := bc.Seek(seqKey(seq))
			if bk == nil {
				return false, fmt.Errorf("%w: event %d has no committed batch", errCorrupt, seq)
			}
			curEnd = binary.BigEndian.Uint64(bk)
		}
		rec, err := eventRecord(seq, v)
		if err != nil {
			return false, err
		}
		cur = append(cur, rec)
		return true, nil
	})
	if err != nil {
		return nil, after, err
	}
	if full {
		// Stopped at the first event of a batch beyond the limit: resume
		// after the last batch returned, as the scan does.
		return out, acc.pushedEnd, nil
	}
	if len(cur) > 0 {
		if !acc.fits(lim, cur) {
			return out, acc.pushedEnd, nil
		}
		out = append(out, cur)
	}
	return out, upTo, nil
}

// Durable returns a durable stream's stored cursor and current holder ("" when
// free); ok is false for an unknown name.
func (s *Replica) Durable(name string) (cursor uint64, holder string, ok bool, err error) {
	if s.closing.Load() {
		return 0, "", false, contract.ErrClosed
	}
	d, ok, err := s.storedDurable(name)
	return d.cursor, d.holder, ok, err
}

// storedDurable reads name's record in a read transaction; ok is false for
// an unknown name.
func (s *Replica) storedDurable(name string) (d durableRecord, ok bool, err error) {
	err = s.be.view(func(tx *bbolt.Tx) error {
		v := tx.Bucket(bucketDurables).Get([]byte(name))
		if v == nil {
			return nil
		}
		if d, err = decodeDurable(v); err != nil {
			return fmt.Errorf("durable %q: %w", name, err)
		}
		ok = true
		return nil
	})
	return d, ok, err
}
