package command

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/factstr/factstr-go/contract"
)

// Result error kinds on the wire, so a forwarded command's outcome keeps the
// sentinel a caller branches on.
const (
	errNone byte = iota
	errConflict
	errNameInUse
	errQueryMismatch
	errInvalidEvent
	errInvalidQuery
	errOther
	errRefused
	errLeaseLost
	errNotFound
	errPositionAhead
)

// ErrRefusedFromPeer is the outcome of a forwarded command that no
// follower may send: a kind only the leader proposes, or a lease command
// for another node's holder. It is here, with the result encoding, so that
// the sentinel survives the trip back to the follower.
var ErrRefusedFromPeer = errors.New("command refused from a peer")

// EncodeResults encodes the outcomes of forwarded commands.
func EncodeResults(rs []Result) []byte {
	b := binary.AppendUvarint(nil, uint64(len(rs)))
	for _, r := range rs {
		b = binary.AppendUvarint(b, r.Append.FirstSequenceNumber)
		b = binary.AppendUvarint(b, r.Append.LastSequenceNumber)
		b = binary.AppendUvarint(b, r.Append.CommittedCount)
		b = binary.AppendUvarint(b, r.Cursor)
		// Flags: bit 0 Duplicate, bit 1 Created. A node of an earlier
		// version reads only "== 1" as Duplicate.
		flags := byte(0)
		if r.Duplicate {
			flags |= 1
		}
		if r.Created {
			flags |= 2
		}
		b = append(b, flags)
		var conflict *contract.ConflictError
		switch {
		case r.Err == nil:
			b = append(b, errNone)
		case errors.As(r.Err, &conflict):
			b = append(b, errConflict)
			b = binary.AppendUvarint(b, conflict.Expected)
			b = binary.AppendUvarint(b, conflict.Actual)
		default:
			kind := errOther
			for _, rs := range resultSentinels {
				if errors.Is(r.Err, rs.err) {
					kind = rs.kind
					break
				}
			}
			b = append(b, kind)
			b = appendString(b, r.Err.Error())
		}
	}
	return b
}

// DecodeResults decodes what EncodeResults wrote.
func DecodeResults(data []byte) ([]Result, error) {
	d := decoder{b: data}
	n := d.uvarint()
	if n > uint64(len(data)) {
		return nil, fmt.Errorf("%w: bad result count", ErrCorruptEntry)
	}
	rs := make([]Result, n)
	for i := range rs {
		r := &rs[i]
		r.Append.FirstSequenceNumber = d.uvarint()
		r.Append.LastSequenceNumber = d.uvarint()
		r.Append.CommittedCount = d.uvarint()
		r.Cursor = d.uvarint()
		flags := d.byte()
		r.Duplicate, r.Created = flags&1 != 0, flags&2 != 0
		switch kind := d.byte(); kind {
		case errNone:
		case errConflict:
			r.Err = &contract.ConflictError{Expected: d.uvarint(), Actual: d.uvarint()}
		default:
			msg := d.string()
			r.Err = remoteError{msg: msg, sentinel: sentinelFor(kind)}
		}
	}
	return rs, d.err
}

// resultSentinels are the errors a result keeps across the wire, each
// with its kind; the first that matches an outcome names it. One table for
// both directions, so a sentinel added here is encoded and decoded alike.
var resultSentinels = []struct {
	kind byte
	err  error
}{
	{errNameInUse, contract.ErrDurableNameInUse},
	{errQueryMismatch, contract.ErrDurableQueryMismatch},
	{errInvalidEvent, contract.ErrInvalidEvent},
	{errInvalidQuery, contract.ErrInvalidQuery},
	{errRefused, ErrRefusedFromPeer},
	{errLeaseLost, contract.ErrDurableLeaseLost},
	{errNotFound, contract.ErrDurableNotFound},
	{errPositionAhead, contract.ErrPositionAhead},
}

func sentinelFor(kind byte) error {
	for _, rs := range resultSentinels {
		if rs.kind == kind {
			return rs.err
		}
	}
	return nil
}

// remoteError carries a forwarded outcome's message and its sentinel.
type remoteError struct {
	msg      string
	sentinel error
}

func (e remoteError) Error() string { return e.msg }
func (e remoteError) Unwrap() error { return e.sentinel }
