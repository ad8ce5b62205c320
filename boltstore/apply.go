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
	"github.com/factstr/factstr-go/internal/streams"
)

// Op is the kind of a Command. The values are part of the Raft log format:
// never renumber them.
type Op uint8

const (
	OpAppend           Op = 1  // append Events as one batch
	OpAppendIf         Op = 2  // append Events if Query's version is Expected
	OpAcquire          Op = 3  // take durable Name for Holder (create it with Query when new)
	OpAdvance          Op = 4  // move Name's cursor forward to Cursor, if Holder holds it
	OpRelease          Op = 5  // free Name, if Holder holds it
	OpReleaseHolders   Op = 6  // free every name whose holder starts with Holder ("" = all)
	OpPruneIdempotency Op = 7  // forget idempotency keys recorded before OccurredAt
	OpNoop             Op = 8  // only advances the applied index
	OpSetIncarnation   Op = 9  // record Holder as node Name's data-directory incarnation ("" forgets it); a non-zero OccurredAt marks it removed then
	OpResetDurable     Op = 10 // move Name's cursor to Start (Cursor for after); held only with Force, which takes the lease
	OpDeleteDurable    Op = 11 // forget Name and its cursor; held only with Force
	// OpEnsureGroup creates consumer group Name (Query, Start, the spec in
	// Holder and Expected: see GroupCommand) or checks the existing one.
	// Numbered apart from the ops above so that ops added in parallel do
	// not take its number.
	OpEnsureGroup     Op = 40
	OpPark            Op = 12 // park Name's events Parked (Attempts, Error) and move its cursor to Cursor (0: stays), if Holder holds it
	OpUnpark          Op = 13 // remove Parked from Name's parked list (redelivered and handled), if Holder holds it
	OpRedeliverParked Op = 14 // mark Name's parked events up to Cursor (0: all) for redelivery
	OpDropParked      Op = 15 // forget Name's parked events up to Cursor (0: all)
)

func (o Op) String() string {
	switch o {
	case OpAppend:
		return "append"
	case OpAppendIf:
		return "append-if"
	case OpAcquire:
		return "acquire"
	case OpAdvance:
		return "advance"
	case OpRelease:
		return "release"
	case OpReleaseHolders:
		return "release-holders"
	case OpPruneIdempotency:
		return "prune-idempotency"
	case OpNoop:
		return "noop"
	case OpSetIncarnation:
		return "set-incarnation"
	case OpResetDurable:
		return "reset-durable"
	case OpDeleteDurable:
		return "delete-durable"
	case OpEnsureGroup:
		return "ensure-group"
	case OpPark, OpUnpark, OpRedeliverParked, OpDropParked:
		return parkedOpString(o)
	}
	return fmt.Sprintf("op(%d)", uint8(o))
}

// Command is one deterministic change of the store. Everything a command
// needs is in it (the time included), so every replica applying the same
// commands in the same order holds the same state.
type Command struct {
	Op             Op
	Events         []contract.NewEvent
	Query          contract.EventQuery // OpAppendIf: the context; OpAcquire: the durable query
	Expected       uint64              // OpAppendIf: expected context version
	OccurredAt     time.Time           // stamps appended events; OpPruneIdempotency: the cutoff
	IdempotencyKey string              // optional, for OpAppend and OpAppendIf
	Name, Holder   string              // durable ops; OpReleaseHolders: Holder is a prefix; OpSetIncarnation: node id, incarnation
	Cursor         uint64              // OpAdvance: the new cursor; OpAcquire (Start is StartAfterSequence): the start
	// Start is where OpAcquire starts a name it creates (and where
	// OpResetDurable moves a cursor): the beginning, the head when it
	// applies, or Cursor.
	Start contract.StartKind
	// Force lets OpResetDurable and OpDeleteDurable act on a held name; the
	// holder loses its lease.
	Force bool
	// Failure is the failure policy of a name OpAcquire creates.
	Failure contract.FailurePolicy
	// Parked are the sequence numbers of OpPark and OpUnpark; Attempts and
	// Error are OpPark's failed deliveries and the handler's last error.
	Parked   []uint64
	Attempts uint32
	Error    string
}

// Result is the deterministic outcome of one command.
type Result struct {
	Append    contract.AppendResult
	Cursor    uint64 // OpAcquire: the stored cursor; OpRedeliverParked, OpDropParked: the events marked or dropped
	Created   bool   // OpAcquire: the name was created (its start applied)
	Duplicate bool   // the idempotency key was seen before: Append/Err are the first outcome
	Err       error  // the command's own failure; nothing of it was written
}

// Entry is a group of commands applied under one log index.
type Entry struct {
	Index    uint64
	Commands []Command
}

// Errors of individual commands, besides the contract's sentinels.
var (
	// ErrNotHeld is the outcome of an OpAdvance by a holder that does not
	// hold the name (any more): the contract's ErrDurableLeaseLost, which
	// ends the subscription with that Err.
	ErrNotHeld = contract.ErrDurableLeaseLost
	// ErrUnknownOp is the outcome of a command with an Op this version does
	// not know.
	ErrUnknownOp = errors.New("unknown command op")
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
func (s *Store) Apply(entries []Entry) ([][]Result, error) {
	s.be.applyMu.Lock()
	defer s.be.applyMu.Unlock()
	return s.be.applyLocked(entries, s.hub)
}

// applyLocked runs with applyMu held, which orders commits and the heads
// published after them.
func (b *backend) applyLocked(entries []Entry, hub *streams.Hub) ([][]Result, error) {
	b.dbMu.RLock()
	defer b.dbMu.RUnlock()
	if b.db == nil {
		return nil, contract.ErrClosed
	}
	if b.failed != nil {
		return nil, b.failed
	}
	results := make([][]Result, len(entries))
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
func (a *applier) applyEntries(entries []Entry, results [][]Result) error {
	a.committed = nil
	for i, e := range entries {
		if e.Index <= a.applied {
			continue
		}
		res := make([]Result, len(e.Commands))
		for j := range e.Commands {
			var err error
			if res[j], err = a.apply(&e.Commands[j]); err != nil {
				return fmt.Errorf("entry %d command %d (%s): %w", e.Index, j, e.Commands[j].Op, err)
			}
		}
		results[i] = res
		a.applied = e.Index
		a.commands += len(e.Commands)
	}
	return a.writeMeta()
}

func lastIndex(entries []Entry) uint64 {
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

func (a *applier) apply(c *Command) (Result, error) {
	switch c.Op {
	case OpAppend, OpAppendIf:
		return a.append(c)
	case OpAcquire:
		return a.acquire(c)
	case OpAdvance:
		return a.advance(c)
	case OpRelease:
		return a.release(c)
	case OpReleaseHolders:
		return a.releaseHolders(c)
	case OpPruneIdempotency:
		return a.pruneIdempotency(c)
	case OpNoop:
		return Result{}, nil
	case OpSetIncarnation:
		return a.setIncarnation(c)
	case OpResetDurable:
		return a.resetDurable(c)
	case OpDeleteDurable:
		return a.deleteDurable(c)
	case OpEnsureGroup:
		return (groupApplier{a}).ensureGroup(c)
	case OpPark, OpUnpark, OpRedeliverParked, OpDropParked:
		return (parkedApplier{a}).applyParked(c)
	}
	return Result{Err: fmt.Errorf("%w: %d", ErrUnknownOp, uint8(c.Op))}, nil
}

func (a *applier) append(c *Command) (Result, error) {
	if len(c.IdempotencyKey) > maxNameBytes {
		return Result{Err: fmt.Errorf("%w: idempotency key is %d bytes, the maximum is %d", contract.ErrInvalidEvent, len(c.IdempotencyKey), maxNameBytes)}, nil
	}
	if c.IdempotencyKey != "" {
		if v := a.idem.Get([]byte(c.IdempotencyKey)); v != nil {
			rec, err := decodeIdem(v)
			if err != nil {
				return Result{}, fmt.Errorf("idempotency key %q: %w", c.IdempotencyKey, err)
			}
			if rec.kind == outcomeConflict {
				conflict := rec.conflict
				return Result{Duplicate: true, Err: &conflict}, nil
			}
			return Result{Duplicate: true, Append: rec.append}, nil
		}
	}
	eventLeaves, verr := checkEvents(c, &a.leaves, a.eventLeaves[:0])
	a.eventLeaves = eventLeaves
	if verr != nil {
		return Result{Err: verr}, nil
	}
	if c.Op == OpAppendIf {
		m, err := contract.NewMatcher(c.Query)
		if err != nil {
			return Result{Err: err}, nil
		}
		actual, err := a.r.contextVersion(context.Background(), c.Query, m)
		if errors.Is(err, contract.ErrInvalidQuery) {
			return Result{Err: err}, nil // the command's own outcome, the same on every replica
		}
		if err != nil {
			return Result{}, err
		}
		if actual != c.Expected {
			conflict := contract.ConflictError{Expected: c.Expected, Actual: actual}
			if err := a.recordIdem(c, idemRecord{kind: outcomeConflict, conflict: conflict}); err != nil {
				return Result{}, err
			}
			return Result{Err: &conflict}, nil
		}
	}
	res, err := a.writeEvents(c, eventLeaves)
	if err != nil {
		return Result{}, err
	}
	if err := a.recordIdem(c, idemRecord{kind: outcomeAppended, append: res}); err != nil {
		return Result{}, err
	}
	return Result{Append: res}, nil
}

// checkEvents is Apply's own, deterministic check of a batch. Size limits
// are the proposer's business (nodes may be configured differently); what
// is checked here is what the store itself relies on. It returns each
// event's payload leaves (payloadLeaves, from s after resetting it),
// appended to leaves[:0].
func checkEvents(c *Command, s *leafScanner, leaves [][][]byte) ([][][]byte, error) {
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
func (a *applier) writeEvents(c *Command, leaves [][][]byte) (contract.AppendResult, error) {
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
func committedBatch(c *Command, first uint64) []contract.EventRecord {
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

func (a *applier) recordIdem(c *Command, rec idemRecord) error {
	if c.IdempotencyKey == "" {
		return nil
	}
	rec.recordedAt = unixNanos(c.OccurredAt)
	if err := a.idem.Put([]byte(c.IdempotencyKey), rec.encode()); err != nil {
		return fmt.Errorf("idempotency key %q: %w", c.IdempotencyKey, err)
	}
	return a.idemTime.Put(idemTimeKey(rec.recordedAt, c.IdempotencyKey), []byte{})
}

func (a *applier) pruneIdempotency(c *Command) (Result, error) {
	if c.OccurredAt.IsZero() {
		return Result{}, nil
	}
	cutoff := unixNanos(c.OccurredAt)
	// Collect first: deleting under a moving bbolt cursor can skip keys.
	var old [][]byte
	cur := a.idemTime.Cursor()
	for k, _ := cur.First(); k != nil && idemTimeOf(k) < cutoff; k, _ = cur.Next() {
		old = append(old, bytes.Clone(k))
	}
	for _, k := range old {
		if err := a.idem.Delete(k[8:]); err != nil {
			return Result{}, err
		}
		if err := a.idemTime.Delete(k); err != nil {
			return Result{}, err
		}
	}
	return Result{}, nil
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
// node c.Name runs on, so that any later leader can tell a node whose
// directory was wiped from the one it knew (see cluster's reconcile).
func (a *applier) setIncarnation(c *Command) (Result, error) {
	if err := checkName("node id", c.Name); err != nil {
		return Result{Err: err}, nil
	}
	if len(c.Holder) > maxNameBytes {
		return Result{Err: fmt.Errorf("%w: incarnation is %d bytes, the maximum is %d", contract.ErrInvalidQuery, len(c.Holder), maxNameBytes)}, nil
	}
	members := a.tx.Bucket(bucketMembers)
	if members == nil {
		return Result{}, fmt.Errorf("%w: missing bucket", errCorrupt)
	}
	if c.Holder == "" {
		return Result{}, members.Delete([]byte(c.Name))
	}
	return Result{}, members.Put([]byte(c.Name), encodeMember(c.Holder, c.OccurredAt))
}

func (a *applier) acquire(c *Command) (Result, error) {
	if err := checkName("durable stream name", c.Name); err != nil {
		return Result{Err: err}, nil
	}
	if err := checkName("durable stream holder", c.Holder); err != nil {
		return Result{Err: err}, nil
	}
	if refused, err := (groupApplier{a}).groupAcquireRefusal(c.Name); err != nil || refused != nil {
		return Result{Err: refused}, err
	}
	key, err := streams.QueryKey(c.Query)
	if err != nil {
		return Result{Err: err}, nil
	}
	d, ok, err := a.loadDurable(c.Name)
	if err != nil {
		return Result{}, err
	}
	created := !ok
	if created {
		q := contract.EventQuery{Filters: c.Query.Filters}
		qj, err := json.Marshal(q)
		if err != nil {
			return Result{Err: fmt.Errorf("%w: %v", contract.ErrInvalidQuery, err)}, nil
		}
		start := c.startPosition()
		cursor, err := streams.StartCursor(start, a.r.head)
		if err != nil {
			return Result{Err: err}, nil
		}
		if err := c.Failure.Validate(); err != nil {
			return Result{Err: err}, nil
		}
		d = durableRecord{cursor: cursor, queryKey: key, queryJSON: qj, start: start, failure: c.Failure.Normalized()}
		if !c.OccurredAt.IsZero() {
			d.created = unixNanos(c.OccurredAt)
		}
	} else {
		if d.queryKey != key {
			return Result{Err: streams.QueryMismatch(c.Name, d.query())}, nil
		}
		// The same holder acquiring again is a retried command, not a
		// second subscriber.
		if d.holder != "" && d.holder != c.Holder {
			return Result{Err: fmt.Errorf("%w: %q is held by %s", contract.ErrDurableNameInUse, c.Name, d.holder)}, nil
		}
	}
	d.holder = c.Holder
	if err := a.storeDurable(c.Name, d); err != nil {
		return Result{}, err
	}
	return Result{Cursor: d.cursor, Created: created}, nil
}

func (a *applier) advance(c *Command) (Result, error) {
	d, ok, err := a.loadDurable(c.Name)
	if err != nil {
		return Result{}, err
	}
	if !ok || d.holder == "" || d.holder != c.Holder {
		return Result{Err: fmt.Errorf("%w: durable stream %q, holder %q", ErrNotHeld, c.Name, c.Holder)}, nil
	}
	if c.Cursor <= d.cursor {
		return Result{Cursor: d.cursor}, nil
	}
	d.cursor = c.Cursor
	if !c.OccurredAt.IsZero() {
		d.lastAck = unixNanos(c.OccurredAt)
	}
	if err := a.storeDurable(c.Name, d); err != nil {
		return Result{}, err
	}
	return Result{Cursor: d.cursor}, nil
}

func (a *applier) release(c *Command) (Result, error) {
	d, ok, err := a.loadDurable(c.Name)
	if err != nil || !ok || d.holder == "" || d.holder != c.Holder {
		return Result{}, err
	}
	d.holder = ""
	return Result{Cursor: d.cursor}, a.storeDurable(c.Name, d)
}

func (a *applier) releaseHolders(c *Command) (Result, error) {
	type held struct {
		name string
		d    durableRecord
	}
	var free []held
	cur := a.durables.Cursor()
	for k, v := cur.First(); k != nil; k, v = cur.Next() {
		d, err := decodeDurable(v)
		if err != nil {
			return Result{}, fmt.Errorf("durable %q: %w", k, err)
		}
		if d.holder != "" && strings.HasPrefix(d.holder, c.Holder) {
			d.holder = ""
			free = append(free, held{string(k), d})
		}
	}
	for _, h := range free {
		if err := a.storeDurable(h.name, h.d); err != nil {
			return Result{}, err
		}
	}
	return Result{}, nil
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
