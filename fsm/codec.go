package fsm

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/factstr/factstr-go/boltstore"
	"github.com/factstr/factstr-go/contract"
)

// Entry format, version 1:
//
//	version byte | uvarint count | count × command
//
// A command is its op byte followed by its fields in a fixed order. Strings
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

// EncodeCommands encodes commands as one Raft log entry.
func EncodeCommands(cmds []boltstore.Command) []byte {
	size := 16
	for i := range cmds {
		size += 64 + len(cmds[i].IdempotencyKey) + len(cmds[i].Name) + len(cmds[i].Holder)
		for _, ev := range cmds[i].Events {
			size += 8 + len(ev.Type) + len(ev.Payload)
		}
	}
	version := byte(codecVersion1)
	for i := range cmds {
		if cmds[i].Start != 0 || cmds[i].Force {
			version = max(version, codecVersion2)
		}
		if needsVersion3(&cmds[i]) {
			version = codecVersion3
		}
	}
	b := make([]byte, 0, size)
	b = append(b, version)
	b = binary.AppendUvarint(b, uint64(len(cmds)))
	for i := range cmds {
		b = appendCommand(b, &cmds[i])
		if version >= codecVersion2 {
			flags := byte(0)
			if cmds[i].Force {
				flags |= 1
			}
			b = append(b, byte(cmds[i].Start), flags)
		}
		if version >= codecVersion3 {
			b = appendVersion3(b, &cmds[i])
		}
	}
	return b
}

func needsVersion3(c *boltstore.Command) bool {
	return c.Failure != (contract.FailurePolicy{}) || len(c.Parked) > 0 || c.Attempts != 0 || c.Error != ""
}

func appendVersion3(b []byte, c *boltstore.Command) []byte {
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

func (d *decoder) version3(c *boltstore.Command) {
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

func appendCommand(b []byte, c *boltstore.Command) []byte {
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

// DecodeCommands decodes a Raft log entry.
func DecodeCommands(data []byte) ([]boltstore.Command, error) {
	d := decoder{b: data}
	v := d.byte()
	if v < codecVersion1 || v > codecVersion3 {
		return nil, fmt.Errorf("%w: version %d, this node understands %d to %d", ErrCorruptEntry, v, codecVersion1, codecVersion3)
	}
	n := d.uvarint()
	if d.err != nil || n > uint64(len(data)) {
		return nil, fmt.Errorf("%w: bad command count", ErrCorruptEntry)
	}
	cmds := make([]boltstore.Command, n)
	for i := range cmds {
		d.command(&cmds[i])
		if v >= codecVersion2 {
			cmds[i].Start = contract.StartKind(d.byte())
			flags := d.byte()
			cmds[i].Force = flags&1 != 0
		}
		if v >= codecVersion3 {
			d.version3(&cmds[i])
		}
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

func (d *decoder) command(c *boltstore.Command) {
	c.Op = boltstore.Op(d.byte())
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
