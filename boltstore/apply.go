package boltstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
	"unicode/utf8"

	"go.etcd.io/bbolt"

	"github.com/factstr/factstr-go/contract"
	"github.com/factstr/factstr-go/fsm/command"
	"github.com/factstr/factstr-go/internal/streams"
)

// maxNameBytes bounds durable names, holders and idempotency keys inside
// Apply. It is a constant, not a configured limit, so every replica rejects
// the same commands, and it keeps keys well inside bbolt's key size limit.
const maxNameBytes = 4096

// Apply applies entries in order in one bbolt read-write transaction,
// skipping entries whose Index is at or below AppliedIndex (their results
// are nil), and records the last applied index in the same transaction.
// After the commit it publishes the new head to the Hub.
//
// The returned error is a storage failure: nothing of entries was applied
// and the caller (a Raft FSM) must treat it as fatal. A command's own
// outcome, a conflict or an invalid event included, is in its Result.
func (s *Store) Apply(entries []command.Entry) ([][]command.Result, error) {
	s.be.applyMu.Lock()
	defer s.be.applyMu.Unlock()
	return s.be.applyLocked(entries, s.hub)
}

// applyLocked runs with applyMu held, which orders commits and the heads
// published after them.
func (b *backend) applyLocked(entries []command.Entry, hub *streams.Hub) ([][]command.Result, error) {
	b.dbMu.RLock()
	defer b.dbMu.RUnlock()
	if b.db == nil {
		return nil, contract.ErrClosed
	}
	if b.failed != nil {
		return nil, b.failed
	}
	results := make([][]command.Result, len(entries))
	applied := b.applied.Load()
	pending := false
	for _, e := range entries {
		if e.Index > applied {
			pending = true
			break
		}
	}
	if !pending {
		return results, nil
	}
	if b.interval > 0 {
		// Into the transaction kept open across applies (deferred.go).
		o := b.open
		if o == nil {
			tx, err := b.db.Begin(true)
			if err != nil {
				return nil, fmt.Errorf("apply: %w", err)
			}
			a, err := newApplier(tx, applied)
			if err != nil {
				_ = tx.Rollback()
				return nil, fmt.Errorf("apply: %w", err)
			}
			o = b.keepOpen(tx, a)
		}
		o.a.collect = hub.Followed()
		if err := o.a.applyEntries(entries, results); err != nil {
			return nil, b.failOpenLocked(fmt.Errorf("apply: %w", err))
		}
		if err := b.commitIfDue(); err != nil {
			return nil, err
		}
		b.applied.Store(max(applied, lastIndex(entries)))
		b.head.Store(o.a.r.head)
		hub.Publish(o.a.r.head, o.a.committed)
		return results, nil
	}
	var head uint64
	var committed [][]contract.EventRecord
	err := b.db.Update(func(tx *bbolt.Tx) error {
		a, err := newApplier(tx, applied)
		if err != nil {
			return err
		}
		a.collect = hub.Followed()
		if err := a.applyEntries(entries, results); err != nil {
			return err
		}
		head, committed = a.r.head, a.committed
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("apply: %w", err)
	}
	b.applied.Store(max(applied, lastIndex(entries)))
	b.head.Store(head)
	hub.Publish(head, committed)
	return results, nil
}

// applyEntries applies the entries above a.applied in order, fills their
// results and records the new applied index and head in meta.
func (a *applier) applyEntries(entries []command.Entry, results [][]command.Result) error {
	a.committed = nil
	for i, e := range entries {
		if e.Index <= a.applied {
			continue
		}
		res := make([]command.Result, len(e.Commands))
		for j, c := range e.Commands {
			var err error
			if res[j], err = a.apply(c); err != nil {
				return fmt.Errorf("entry %d command %d (%s): %w", e.Index, j, c.Kind(), err)
			}
		}
		results[i] = res
		a.applied = e.Index
		a.commands += len(e.Commands)
	}
	return a.writeMeta()
}

func lastIndex(entries []command.Entry) uint64 {
	var last uint64
	for _, e := range entries {
		last = max(last, e.Index)
	}
	return last
}

// applier applies commands inside one write transaction. Its methods
// return a non-nil error only for storage failures; a command's own
// failure is the Result's Err, decided before anything of it is written.
type applier struct {
	tx                             *bbolt.Tx
	leaves                         leafScanner // the payload leaves of the append being applied
	eventLeaves                    [][][]byte  // each of its events' leaves, from leaves
	r                              *reader
	meta, durables, idem, idemTime *bbolt.Bucket
	applied                        uint64
	arena                          arena
	collect                        bool                     // a subscription follows the hub: build committed
	committed                      [][]contract.EventRecord // the batches appended by one Apply, for the stream hub
	commands                       int                      // applied in this transaction
}

// arena hands out the keys and values of one write transaction from large
// chunks instead of one allocation each: bbolt keeps references to them
// until the commit, and so does the arena, so nothing is reused early.
type arena struct{ chunk []byte }

const arenaChunk = 64 << 10

// take returns a zero-length slice with room for n bytes.
func (a *arena) take(n int) []byte {
	if n > arenaChunk/4 {
		return make([]byte, 0, n)
	}
	if cap(a.chunk)-len(a.chunk) < n {
		a.chunk = make([]byte, 0, arenaChunk)
	}
	start := len(a.chunk)
	a.chunk = a.chunk[:start+n]
	return a.chunk[start : start : start+n]
}

func newApplier(tx *bbolt.Tx, applied uint64) (*applier, error) {
	r, err := newReader(tx)
	if err != nil {
		return nil, err
	}
	a := &applier{
		tx:       tx,
		r:        r,
		meta:     tx.Bucket(bucketMeta),
		durables: tx.Bucket(bucketDurables),
		idem:     tx.Bucket(bucketIdem),
		idemTime: tx.Bucket(bucketIdemTime),
		applied:  applied,
	}
	if a.durables == nil || a.idem == nil || a.idemTime == nil {
		return nil, fmt.Errorf("%w: missing bucket", errCorrupt)
	}
	// The log and the batch boundaries only grow at their end: full pages
	// keep them dense. A posting list grows only at its end too, so a page
	// split leaves the older part full, never to be written again.
	r.events.FillPercent = 1.0
	r.batches.FillPercent = 1.0
	r.types.FillPercent = 0.9
	r.postings.FillPercent = 0.9
	// Recording times only grow.
	a.idemTime.FillPercent = 1.0
	return a, nil
}

func (a *applier) writeMeta() error {
	if err := a.meta.Put(metaApplied, seqKey(a.applied)); err != nil {
		return err
	}
	return a.meta.Put(metaHead, seqKey(a.r.head))
}

// apply dispatches c to its applier. Each applier takes its own command
// type; the consumer-group and parked-list commands have appliers of their
// own (groupApplier, parkedApplier).
func (a *applier) apply(c command.Command) (command.Result, error) {
	switch c := c.(type) {
	case command.Append:
		return a.append(&c, nil)
	case command.AppendIf:
		return a.append(&command.Append{Events: c.Events, OccurredAt: c.OccurredAt, IdempotencyKey: c.IdempotencyKey}, &c)
	case command.Acquire:
		return a.acquire(&c)
	case command.Advance:
		return a.advance(&c)
	case command.Release:
		return a.release(&c)
	case command.ReleaseHolders:
		return a.releaseHolders(&c)
	case command.PruneIdempotency:
		return a.pruneIdempotency(&c)
	case command.Noop:
		return command.Result{}, nil
	case command.SetIncarnation:
		return a.setIncarnation(&c)
	case command.ResetDurable:
		return a.resetDurable(&c)
	case command.DeleteDurable:
		return a.deleteDurable(&c)
	case command.EnsureGroup:
		return (groupApplier{a}).ensureGroup(&c)
	case command.Park:
		return (parkedApplier{a}).park(&c)
	case command.Unpark:
		return (parkedApplier{a}).unpark(&c)
	case command.RedeliverParked:
		return (parkedApplier{a}).redeliver(&c)
	case command.DropParked:
		return (parkedApplier{a}).drop(&c)
	}
	kind := command.Kind(0) // a nil command: what a zero command of the log format decodes to
	if c != nil {
		kind = c.Kind()
	}
	return command.Result{Err: fmt.Errorf("%w: %d", command.ErrUnknownKind, uint8(kind))}, nil
}

// append applies an Append, or with cond an AppendIf (c holds its events,
// time and key): the context's version is checked in log order.
func (a *applier) append(c *command.Append, cond *command.AppendIf) (command.Result, error) {
	if len(c.IdempotencyKey) > maxNameBytes {
		return command.Result{Err: fmt.Errorf("%w: idempotency key is %d bytes, the maximum is %d", contract.ErrInvalidEvent, len(c.IdempotencyKey), maxNameBytes)}, nil
	}
	if c.IdempotencyKey != "" {
		if v := a.idem.Get([]byte(c.IdempotencyKey)); v != nil {
			rec, err := decodeIdem(v)
			if err != nil {
				return command.Result{}, fmt.Errorf("idempotency key %q: %w", c.IdempotencyKey, err)
			}
			if rec.kind == outcomeConflict {
				conflict := rec.conflict
				return command.Result{Duplicate: true, Err: &conflict}, nil
			}
			return command.Result{Duplicate: true, Append: rec.append}, nil
		}
	}
	eventLeaves, verr := checkEvents(c, &a.leaves, a.eventLeaves[:0])
	a.eventLeaves = eventLeaves
	if verr != nil {
		return command.Result{Err: verr}, nil
	}
	if cond != nil {
		m, err := contract.NewMatcher(cond.Context)
		if err != nil {
			return command.Result{Err: err}, nil
		}
		actual, err := a.r.contextVersion(context.Background(), cond.Context, m)
		if errors.Is(err, contract.ErrInvalidQuery) {
			return command.Result{Err: err}, nil // the command's own outcome, the same on every replica
		}
		if err != nil {
			return command.Result{}, err
		}
		if actual != cond.Expected {
			conflict := contract.ConflictError{Expected: cond.Expected, Actual: actual}
			if err := a.recordIdem(c, idemRecord{kind: outcomeConflict, conflict: conflict}); err != nil {
				return command.Result{}, err
			}
			return command.Result{Err: &conflict}, nil
		}
	}
	res, err := a.writeEvents(c, eventLeaves)
	if err != nil {
		return command.Result{}, err
	}
	if err := a.recordIdem(c, idemRecord{kind: outcomeAppended, append: res}); err != nil {
		return command.Result{}, err
	}
	return command.Result{Append: res}, nil
}

// checkEvents is Apply's own, deterministic check of a batch. Size limits
// are the proposer's business (nodes may be configured differently); what
// is checked here is what the store itself relies on. It returns each
// event's payload leaves (payloadLeaves, from s after resetting it),
// appended to leaves[:0].
func checkEvents(c *command.Append, s *leafScanner, leaves [][][]byte) ([][][]byte, error) {
	leaves = leaves[:0]
	if len(c.Events) == 0 {
		return leaves, contract.ErrEmptyAppend
	}
	if c.OccurredAt.IsZero() {
		return leaves, fmt.Errorf("%w: the command carries no OccurredAt", contract.ErrInvalidEvent)
	}
	s.reset()
	for i, ev := range c.Events {
		if ev.Type == "" {
			return leaves, fmt.Errorf("%w: event %d has an empty type; every event needs a type", contract.ErrInvalidEvent, i)
		}
		if !utf8.ValidString(ev.Type) {
			return leaves, fmt.Errorf("%w: event %d type is not valid UTF-8", contract.ErrInvalidEvent, i)
		}
		// Exactly what contract.DecodeJSON accepts, with the leaves
		// leafPrefixes would give the decoded value: see payloadLeaves.
		lp, err := payloadLeaves(ev.Payload, s)
		if err != nil {
			return leaves, fmt.Errorf("%w: event %d (type %q) payload is not a valid JSON value: %v", contract.ErrInvalidEvent, i, ev.Type, err)
		}
		leaves = append(leaves, lp)
	}
	return leaves, nil
}

// writeEvents writes c's events and their postings; leaves are the events'
// payload leaves from checkEvents.
func (a *applier) writeEvents(c *command.Append, leaves [][][]byte) (contract.AppendResult, error) {
	at := unixNanos(c.OccurredAt)
	first := a.r.head + 1
	last := first + uint64(len(c.Events)) - 1
	for i, ev := range c.Events {
		seq := first + uint64(i)
		// bbolt keeps references to keys and values until commit: they
		// come from the transaction's arena, never from reused buffers.
		key := binary.BigEndian.AppendUint64(a.arena.take(8), seq)
		val := appendEvent(a.arena.take(32+len(ev.Type)+len(ev.Payload)), at, ev.Type, ev.Payload)
		if err := a.r.events.Put(key, val); err != nil {
			return contract.AppendResult{}, fmt.Errorf("event %d: %w", seq, err)
		}
		if err := a.r.types.Put(a.postingKey(typePrefix(ev.Type), seq), []byte{}); err != nil {
			return contract.AppendResult{}, fmt.Errorf("type posting of event %d: %w", seq, err)
		}
		for _, lp := range leaves[i] {
			if err := a.r.postings.Put(a.postingKey(lp, seq), []byte{}); err != nil {
				return contract.AppendResult{}, fmt.Errorf("payload posting of event %d: %w", seq, err)
			}
		}
	}
	if err := a.r.batches.Put(seqKey(last), seqKey(first)); err != nil {
		return contract.AppendResult{}, fmt.Errorf("batch %d-%d: %w", first, last, err)
	}
	a.r.head = last
	if a.collect {
		a.committed = append(a.committed, committedBatch(c, first))
	}
	return contract.AppendResult{FirstSequenceNumber: first, LastSequenceNumber: last, CommittedCount: uint64(len(c.Events))}, nil
}

// committedBatch is c's events as the stream hub hands them to caught-up
// subscriptions: the records a read of the batch would return, with the
// payloads copied once (c may share its bytes with a Raft log buffer).
func committedBatch(c *command.Append, first uint64) []contract.EventRecord {
	at := time.Unix(0, unixNanos(c.OccurredAt)).UTC()
	total := 0
	for _, ev := range c.Events {
		total += len(ev.Payload)
	}
	buf := make([]byte, 0, total)
	recs := make([]contract.EventRecord, len(c.Events))
	for i, ev := range c.Events {
		start := len(buf)
		buf = append(buf, ev.Payload...)
		recs[i] = contract.EventRecord{SequenceNumber: first + uint64(i), OccurredAt: at, Type: ev.Type, Payload: buf[start:len(buf):len(buf)]}
	}
	return recs
}

func (a *applier) postingKey(prefix []byte, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(append(a.arena.take(len(prefix)+8), prefix...), seq)
}

func (a *applier) recordIdem(c *command.Append, rec idemRecord) error {
	if c.IdempotencyKey == "" {
		return nil
	}
	rec.recordedAt = unixNanos(c.OccurredAt)
	if err := a.idem.Put([]byte(c.IdempotencyKey), rec.encode()); err != nil {
		return fmt.Errorf("idempotency key %q: %w", c.IdempotencyKey, err)
	}
	return a.idemTime.Put(idemTimeKey(rec.recordedAt, c.IdempotencyKey), []byte{})
}

func (a *applier) pruneIdempotency(c *command.PruneIdempotency) (command.Result, error) {
	if c.Before.IsZero() {
		return command.Result{}, nil
	}
	cutoff := unixNanos(c.Before)
	// Collect first: deleting under a moving bbolt cursor can skip keys.
	var old [][]byte
	cur := a.idemTime.Cursor()
	for k, _ := cur.First(); k != nil && idemTimeOf(k) < cutoff; k, _ = cur.Next() {
		old = append(old, bytes.Clone(k))
	}
	for _, k := range old {
		if err := a.idem.Delete(k[8:]); err != nil {
			return command.Result{}, err
		}
		if err := a.idemTime.Delete(k); err != nil {
			return command.Result{}, err
		}
	}
	return command.Result{}, nil
}

func (a *applier) loadDurable(name string) (durableRecord, bool, error) {
	v := a.durables.Get([]byte(name))
	if v == nil {
		return durableRecord{}, false, nil
	}
	d, err := decodeDurable(v)
	if err != nil {
		return d, false, fmt.Errorf("durable %q: %w", name, err)
	}
	return d, true, nil
}

func (a *applier) storeDurable(name string, d durableRecord) error {
	return a.durables.Put([]byte(name), d.encode())
}

func checkName(what, name string) error {
	if name == "" {
		return fmt.Errorf("%w: %s must not be empty", contract.ErrInvalidQuery, what)
	}
	if len(name) > maxNameBytes {
		return fmt.Errorf("%w: %s is %d bytes, the maximum is %d", contract.ErrInvalidQuery, what, len(name), maxNameBytes)
	}
	return nil
}

// setIncarnation records which data directory (its random incarnation)
// node c.Node runs on, so that any later leader can tell a node whose
// directory was wiped from the one it knew (see cluster's reconcile).
func (a *applier) setIncarnation(c *command.SetIncarnation) (command.Result, error) {
	if err := checkName("node id", c.Node); err != nil {
		return command.Result{Err: err}, nil
	}
	if len(c.Incarnation) > maxNameBytes {
		return command.Result{Err: fmt.Errorf("%w: incarnation is %d bytes, the maximum is %d", contract.ErrInvalidQuery, len(c.Incarnation), maxNameBytes)}, nil
	}
	members := a.tx.Bucket(bucketMembers)
	if members == nil {
		return command.Result{}, fmt.Errorf("%w: missing bucket", errCorrupt)
	}
	if c.Incarnation == "" {
		return command.Result{}, members.Delete([]byte(c.Node))
	}
	return command.Result{}, members.Put([]byte(c.Node), encodeMember(c.Incarnation, c.RemovedAt))
}

func (a *applier) acquire(c *command.Acquire) (command.Result, error) {
	if err := checkName("durable stream name", c.Name); err != nil {
		return command.Result{Err: err}, nil
	}
	if err := checkName("durable stream holder", c.Holder); err != nil {
		return command.Result{Err: err}, nil
	}
	if refused, err := (groupApplier{a}).groupAcquireRefusal(c.Name); err != nil || refused != nil {
		return command.Result{Err: refused}, err
	}
	key, err := streams.QueryKey(c.Query)
	if err != nil {
		return command.Result{Err: err}, nil
	}
	d, ok, err := a.loadDurable(c.Name)
	if err != nil {
		return command.Result{}, err
	}
	created := !ok
	if created {
		q := contract.EventQuery{Filters: c.Query.Filters}
		qj, err := json.Marshal(q)
		if err != nil {
			return command.Result{Err: fmt.Errorf("%w: %v", contract.ErrInvalidQuery, err)}, nil
		}
		start := command.StartOf(c.Start)
		cursor, err := streams.StartCursor(start, a.r.head)
		if err != nil {
			return command.Result{Err: err}, nil
		}
		if err := c.Failure.Validate(); err != nil {
			return command.Result{Err: err}, nil
		}
		d = durableRecord{cursor: cursor, queryKey: key, queryJSON: qj, start: start, failure: c.Failure.Normalized()}
		if !c.OccurredAt.IsZero() {
			d.created = unixNanos(c.OccurredAt)
		}
	} else {
		if d.queryKey != key {
			return command.Result{Err: streams.QueryMismatch(c.Name, d.query())}, nil
		}
		// The same holder acquiring again is a retried command, not a
		// second subscriber.
		if d.holder != "" && d.holder != c.Holder {
			return command.Result{Err: fmt.Errorf("%w: %q is held by %s", contract.ErrDurableNameInUse, c.Name, d.holder)}, nil
		}
	}
	d.holder = c.Holder
	if err := a.storeDurable(c.Name, d); err != nil {
		return command.Result{}, err
	}
	return command.Result{Cursor: d.cursor, Created: created}, nil
}

func (a *applier) advance(c *command.Advance) (command.Result, error) {
	d, ok, err := a.loadDurable(c.Name)
	if err != nil {
		return command.Result{}, err
	}
	if !ok || d.holder == "" || d.holder != c.Holder {
		return command.Result{Err: fmt.Errorf("%w: durable stream %q, holder %q", command.ErrNotHeld, c.Name, c.Holder)}, nil
	}
	if c.Cursor <= d.cursor {
		return command.Result{Cursor: d.cursor}, nil
	}
	d.cursor = c.Cursor
	if !c.OccurredAt.IsZero() {
		d.lastAck = unixNanos(c.OccurredAt)
	}
	if err := a.storeDurable(c.Name, d); err != nil {
		return command.Result{}, err
	}
	return command.Result{Cursor: d.cursor}, nil
}

func (a *applier) release(c *command.Release) (command.Result, error) {
	d, ok, err := a.loadDurable(c.Name)
	if err != nil || !ok || d.holder == "" || d.holder != c.Holder {
		return command.Result{}, err
	}
	d.holder = ""
	return command.Result{Cursor: d.cursor}, a.storeDurable(c.Name, d)
}

func (a *applier) releaseHolders(c *command.ReleaseHolders) (command.Result, error) {
	type held struct {
		name string
		d    durableRecord
	}
	var free []held
	cur := a.durables.Cursor()
	for k, v := cur.First(); k != nil; k, v = cur.Next() {
		d, err := decodeDurable(v)
		if err != nil {
			return command.Result{}, fmt.Errorf("durable %q: %w", k, err)
		}
		if d.holder != "" && strings.HasPrefix(d.holder, c.HolderPrefix) {
			d.holder = ""
			free = append(free, held{string(k), d})
		}
	}
	for _, h := range free {
		if err := a.storeDurable(h.name, h.d); err != nil {
			return command.Result{}, err
		}
	}
	return command.Result{}, nil
}

// unixNanos is t in unix nanoseconds, clamped to what int64 holds, so a
// time outside 1678..2262 is still stored deterministically.
func unixNanos(t time.Time) int64 {
	switch {
	case t.Before(minNanosTime):
		return math.MinInt64
	case t.After(maxNanosTime):
		return math.MaxInt64
	}
	return t.UnixNano()
}

var (
	minNanosTime = time.Unix(0, math.MinInt64)
	maxNanosTime = time.Unix(0, math.MaxInt64)
)
