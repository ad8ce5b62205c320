package command

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/factstr/factstr-go/contract"
)

// Entry format, version 1:
//
//	version byte | uvarint count | count × command
//
// A command is its op byte (its Kind) followed by the fields of every kind
// in a fixed order (type fields, below: each kind fills the ones it uses,
// the others are zero). Strings
// and byte slices are uvarint length-prefixed; optional lists are encoded as
// uvarint(len+1) with 0 meaning nil, because nil and empty lists mean
// different things in an EventFilter.
//
// Version 2 appends two bytes to every command: Start, and flags (bit 0:
// Force). An entry is written as version 1 whenever none of its commands
// uses them, so a node of an earlier version still reads every entry of the
// commands it knows; only entries that need the new fields (durable start
// positions, forced resets and deletes) are version 2, and a cluster must be
// upgraded completely before they are used.
//
// Version 3 appends, after version 2's bytes, the fields of failure
// policies and parked events: Failure (uvarint MaxDeliveries, varint
// InitialBackoff and MaxBackoff in nanoseconds), Parked (uvarint count and
// a uvarint per sequence number), uvarint Attempts and the Error string. It
// is written only for entries whose commands use them (an acquire with
// "retry then park", the parked-list commands), by the same rule.
const (
	codecVersion1 = 1
	codecVersion2 = 2
	codecVersion3 = 3
)

// ErrCorruptEntry is returned for an entry that cannot be decoded.
var ErrCorruptEntry = errors.New("corrupt raft entry")

// Encode encodes commands as one Raft log entry.
func Encode(cmds []Command) []byte {
	fs := make([]fields, len(cmds))
	size := 16
	for i, c := range cmds {
		fs[i] = fieldsOf(c)
		f := &fs[i]
		size += 64 + len(f.IdempotencyKey) + len(f.Name) + len(f.Holder)
		for _, ev := range f.Events {
			size += 8 + len(ev.Type) + len(ev.Payload)
		}
	}
	version := byte(codecVersion1)
	for i := range fs {
		if fs[i].Start != 0 || fs[i].Force {
			version = max(version, codecVersion2)
		}
		if needsVersion3(&fs[i]) {
			version = codecVersion3
		}
	}
	b := make([]byte, 0, size)
	b = append(b, version)
	b = binary.AppendUvarint(b, uint64(len(fs)))
	for i := range fs {
		b = appendCommand(b, &fs[i])
		if version >= codecVersion2 {
			flags := byte(0)
			if fs[i].Force {
				flags |= 1
			}
			b = append(b, byte(fs[i].Start), flags)
		}
		if version >= codecVersion3 {
			b = appendVersion3(b, &fs[i])
		}
	}
	return b
}

func needsVersion3(c *fields) bool {
	return c.Failure != (contract.FailurePolicy{}) || len(c.Parked) > 0 || c.Attempts != 0 || c.Error != ""
}

func appendVersion3(b []byte, c *fields) []byte {
	b = binary.AppendUvarint(b, uint64(max(c.Failure.MaxDeliveries, 0)))
	b = binary.AppendVarint(b, int64(c.Failure.InitialBackoff))
	b = binary.AppendVarint(b, int64(c.Failure.MaxBackoff))
	b = binary.AppendUvarint(b, uint64(len(c.Parked)))
	for _, seq := range c.Parked {
		b = binary.AppendUvarint(b, seq)
	}
	b = binary.AppendUvarint(b, uint64(c.Attempts))
	return appendString(b, c.Error)
}

func (d *decoder) version3(c *fields) {
	c.Failure.MaxDeliveries = int(min(d.uvarint(), contract.MaxFailureDeliveries+1))
	c.Failure.InitialBackoff = time.Duration(d.varint())
	c.Failure.MaxBackoff = time.Duration(d.varint())
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail("parked")
		return
	}
	if n > 0 {
		c.Parked = make([]uint64, n)
		for i := range c.Parked {
			c.Parked[i] = d.uvarint()
		}
	}
	c.Attempts = uint32(min(d.uvarint(), 1<<31))
	c.Error = d.string()
}

func appendCommand(b []byte, c *fields) []byte {
	b = append(b, byte(c.Op))
	b = binary.AppendUvarint(b, uint64(len(c.Events)))
	for _, ev := range c.Events {
		b = appendString(b, ev.Type)
		b = appendBytes(b, ev.Payload)
	}
	b = AppendQuery(b, c.Query)
	b = binary.AppendUvarint(b, c.Expected)
	var at int64
	if !c.OccurredAt.IsZero() {
		at = c.OccurredAt.UnixNano()
	}
	b = binary.AppendVarint(b, at)
	b = appendString(b, c.IdempotencyKey)
	b = appendString(b, c.Name)
	b = appendString(b, c.Holder)
	b = binary.AppendUvarint(b, c.Cursor)
	return b
}

// AppendQuery appends the encoding of q to b.
func AppendQuery(b []byte, q contract.EventQuery) []byte {
	b = binary.AppendUvarint(b, uint64(len(q.Filters)))
	for _, f := range q.Filters {
		b = appendOptLen(b, f.EventTypes == nil, len(f.EventTypes))
		for _, t := range f.EventTypes {
			b = appendString(b, t)
		}
		b = appendOptLen(b, f.PayloadPredicates == nil, len(f.PayloadPredicates))
		for _, p := range f.PayloadPredicates {
			b = appendBytes(b, p)
		}
	}
	return binary.AppendUvarint(b, q.MinSequenceNumber)
}

// Decode decodes a Raft log entry, of any version this node knows.
func Decode(data []byte) ([]Command, error) {
	d := decoder{b: data}
	v := d.byte()
	if v < codecVersion1 || v > codecVersion3 {
		return nil, fmt.Errorf("%w: version %d, this node understands %d to %d", ErrCorruptEntry, v, codecVersion1, codecVersion3)
	}
	n := d.uvarint()
	if d.err != nil || n > uint64(len(data)) {
		return nil, fmt.Errorf("%w: bad command count", ErrCorruptEntry)
	}
	cmds := make([]Command, n)
	var f fields
	for i := range cmds {
		f = fields{}
		d.command(&f)
		if v >= codecVersion2 {
			f.Start = contract.StartKind(d.byte())
			flags := d.byte()
			f.Force = flags&1 != 0
		}
		if v >= codecVersion3 {
			d.version3(&f)
		}
		if d.err != nil {
			return nil, d.err
		}
		cmds[i] = f.command()
	}
	if d.err != nil {
		return nil, d.err
	}
	if len(d.b) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", ErrCorruptEntry, len(d.b))
	}
	return cmds, nil
}

// DecodeQuery decodes a query written by AppendQuery and returns the rest.
func DecodeQuery(data []byte) (contract.EventQuery, []byte, error) {
	d := decoder{b: data}
	q := d.query()
	return q, d.b, d.err
}

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: truncated %s", ErrCorruptEntry, what)
	}
	d.b = nil
}

func (d *decoder) byte() byte {
	if len(d.b) < 1 {
		d.fail("byte")
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("uvarint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail("varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if d.err != nil || n > uint64(len(d.b)) {
		d.fail("bytes")
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) string() string { return string(d.bytes()) }

// optLen decodes uvarint(len+1); ok is false for nil.
func (d *decoder) optLen() (int, bool) {
	v := d.uvarint()
	if v == 0 {
		return 0, false
	}
	if v-1 > uint64(len(d.b)) {
		d.fail("list length")
		return 0, false
	}
	return int(v - 1), true
}

func (d *decoder) query() contract.EventQuery {
	var q contract.EventQuery
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail("filters")
		return q
	}
	if n > 0 {
		q.Filters = make([]contract.EventFilter, n)
	}
	for i := range q.Filters {
		f := &q.Filters[i]
		if k, ok := d.optLen(); ok {
			f.EventTypes = make([]string, k)
			for j := range f.EventTypes {
				f.EventTypes[j] = d.string()
			}
		}
		if k, ok := d.optLen(); ok {
			f.PayloadPredicates = make([]json.RawMessage, 0, k)
			for range k {
				f.PayloadPredicates = append(f.PayloadPredicates, d.bytes())
			}
		}
	}
	q.MinSequenceNumber = d.uvarint()
	return q
}

func (d *decoder) command(c *fields) {
	c.Op = Kind(d.byte())
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail("events")
		return
	}
	if n > 0 {
		c.Events = make([]contract.NewEvent, n)
		for i := range c.Events {
			c.Events[i].Type = d.string()
			c.Events[i].Payload = d.bytes()
		}
	}
	c.Query = d.query()
	c.Expected = d.uvarint()
	if at := d.varint(); at != 0 {
		c.OccurredAt = time.Unix(0, at).UTC()
	}
	c.IdempotencyKey = d.string()
	c.Name = d.string()
	c.Holder = d.string()
	c.Cursor = d.uvarint()
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendBytes(b, v []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

func appendOptLen(b []byte, isNil bool, n int) []byte {
	if isNil {
		return binary.AppendUvarint(b, 0)
	}
	return binary.AppendUvarint(b, uint64(n)+1)
}

// fields is a command as the entry encoding lays it out: every kind's
// fields in one fixed order, each kind using some of them (see fieldsOf).
// It is the wire layout of the commands, not a command: the encoding
// predates the types of this package, and its bytes must not change.
type fields struct {
	Op             Kind
	Events         []contract.NewEvent
	Query          contract.EventQuery
	Expected       uint64
	OccurredAt     time.Time
	IdempotencyKey string
	Name, Holder   string
	Cursor         uint64
	// Version 2.
	Start contract.StartKind
	Force bool
	// Version 3.
	Failure  contract.FailurePolicy
	Parked   []uint64
	Attempts uint32
	Error    string
}

// fieldsOf lays c out for the encoding. A start position takes the start
// kind and, after a sequence number, the cursor field; a group's spec takes
// the holder (its key's kind byte, then its path) and the expected
// version (its partition count), fields that kind has no other use for.
func fieldsOf(c Command) fields {
	switch c := c.(type) {
	case Append:
		return fields{Op: KindAppend, Events: c.Events, OccurredAt: c.OccurredAt, IdempotencyKey: c.IdempotencyKey}
	case AppendIf:
		return fields{Op: KindAppendIf, Events: c.Events, Query: c.Context, Expected: c.Expected, OccurredAt: c.OccurredAt, IdempotencyKey: c.IdempotencyKey}
	case Acquire:
		f := fields{Op: KindAcquire, Name: c.Name, Holder: c.Holder, Query: c.Query, Failure: c.Failure, OccurredAt: c.OccurredAt}
		f.setStart(c.Start)
		return f
	case Advance:
		return fields{Op: KindAdvance, Name: c.Name, Holder: c.Holder, Cursor: c.Cursor, OccurredAt: c.OccurredAt}
	case Release:
		return fields{Op: KindRelease, Name: c.Name, Holder: c.Holder}
	case ReleaseHolders:
		return fields{Op: KindReleaseHolders, Holder: c.HolderPrefix}
	case PruneIdempotency:
		return fields{Op: KindPruneIdempotency, OccurredAt: c.Before}
	case Noop:
		return fields{Op: KindNoop}
	case SetIncarnation:
		return fields{Op: KindSetIncarnation, Name: c.Node, Holder: c.Incarnation, OccurredAt: c.RemovedAt}
	case ResetDurable:
		f := fields{Op: KindResetDurable, Name: c.Name, Force: c.Force}
		f.setStart(c.To)
		return f
	case DeleteDurable:
		return fields{Op: KindDeleteDurable, Name: c.Name, Force: c.Force}
	case EnsureGroup:
		f := fields{Op: KindEnsureGroup, Name: c.Name, Query: c.Query, OccurredAt: c.OccurredAt,
			Holder: string(append([]byte{byte(c.Spec.Key.Kind)}, c.Spec.Key.Path...)), Expected: uint64(c.Spec.Partitions)}
		f.setStart(c.Start)
		return f
	case Park:
		return fields{Op: KindPark, Name: c.Name, Holder: c.Holder, Cursor: c.Cursor, Parked: c.Seqs,
			Attempts: c.Attempts, Error: c.Error, OccurredAt: c.OccurredAt}
	case Unpark:
		return fields{Op: KindUnpark, Name: c.Name, Holder: c.Holder, Parked: c.Seqs}
	case RedeliverParked:
		return fields{Op: KindRedeliverParked, Name: c.Name, Cursor: c.UpTo}
	case DropParked:
		return fields{Op: KindDropParked, Name: c.Name, Cursor: c.UpTo}
	case Unknown:
		return fields{Op: c.Code}
	}
	// A pointer to a command type satisfies Command too; the commands are
	// values.
	panic(fmt.Sprintf("command: cannot encode %T", c))
}

// command is the command f lays out; a kind this version does not know
// is Unknown.
func (f *fields) command() Command {
	switch f.Op {
	case KindAppend:
		return Append{Events: f.Events, OccurredAt: f.OccurredAt, IdempotencyKey: f.IdempotencyKey}
	case KindAppendIf:
		return AppendIf{Events: f.Events, Context: f.Query, Expected: f.Expected, OccurredAt: f.OccurredAt, IdempotencyKey: f.IdempotencyKey}
	case KindAcquire:
		return Acquire{Name: f.Name, Holder: f.Holder, Query: f.Query, Start: f.startPosition(), Failure: f.Failure, OccurredAt: f.OccurredAt}
	case KindAdvance:
		return Advance{Name: f.Name, Holder: f.Holder, Cursor: f.Cursor, OccurredAt: f.OccurredAt}
	case KindRelease:
		return Release{Name: f.Name, Holder: f.Holder}
	case KindReleaseHolders:
		return ReleaseHolders{HolderPrefix: f.Holder}
	case KindPruneIdempotency:
		return PruneIdempotency{Before: f.OccurredAt}
	case KindNoop:
		return Noop{}
	case KindSetIncarnation:
		return SetIncarnation{Node: f.Name, Incarnation: f.Holder, RemovedAt: f.OccurredAt}
	case KindResetDurable:
		return ResetDurable{Name: f.Name, To: f.startPosition(), Force: f.Force}
	case KindDeleteDurable:
		return DeleteDurable{Name: f.Name, Force: f.Force}
	case KindEnsureGroup:
		g := EnsureGroup{Name: f.Name, Query: f.Query, Start: f.startPosition(), OccurredAt: f.OccurredAt}
		g.Spec.Partitions = int(min(f.Expected, contract.MaxGroupPartitions+1))
		if f.Holder != "" {
			g.Spec.Key = contract.GroupKey{Kind: contract.GroupKeyKind(f.Holder[0]), Path: f.Holder[1:]}
		}
		return g
	case KindPark:
		return Park{Name: f.Name, Holder: f.Holder, Seqs: f.Parked, Cursor: f.Cursor, Attempts: f.Attempts, Error: f.Error, OccurredAt: f.OccurredAt}
	case KindUnpark:
		return Unpark{Name: f.Name, Holder: f.Holder, Seqs: f.Parked}
	case KindRedeliverParked:
		return RedeliverParked{Name: f.Name, UpTo: f.Cursor}
	case KindDropParked:
		return DropParked{Name: f.Name, UpTo: f.Cursor}
	}
	return Unknown{Code: f.Op}
}

// setStart records p: its kind, and for a start after a sequence number
// that number in the cursor field.
func (f *fields) setStart(p contract.StartPosition) {
	f.Start = p.Kind
	if p.Kind == contract.StartAfterSequence {
		f.Cursor = p.After
	}
}

// startPosition is the start position setStart recorded.
func (f *fields) startPosition() contract.StartPosition {
	return StartOf(contract.StartPosition{Kind: f.Start, After: f.Cursor})
}

// StartOf is p as a command carries it: the sequence number only for a
// start after one. A start position round-trips through the encoding as
// StartOf gives it, and the store applies it so in embedded mode too.
func StartOf(p contract.StartPosition) contract.StartPosition {
	if p.Kind != contract.StartAfterSequence {
		p.After = 0
	}
	return p
}

// SizeHint estimates c's encoded size, for bounding the entries a
// proposer coalesces.
func SizeHint(c Command) int {
	f := fieldsOf(c)
	size := 48 + len(f.IdempotencyKey) + len(f.Name) + len(f.Holder)
	for _, ev := range f.Events {
		size += 8 + len(ev.Type) + len(ev.Payload)
	}
	for _, flt := range f.Query.Filters {
		for _, t := range flt.EventTypes {
			size += 4 + len(t)
		}
		for _, p := range flt.PayloadPredicates {
			size += 4 + len(p)
		}
	}
	return size
}
