package boltstore

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/factstr/factstr-go/contract"
)

// Buckets of the bbolt file. The names are part of the on-disk format.
var (
	bucketMeta     = []byte("meta")
	bucketEvents   = []byte("events")   // seq → event record
	bucketBatches  = []byte("batches")  // last seq of a committed batch → first seq
	bucketTypes    = []byte("types")    // type prefix + seq → ""
	bucketPostings = []byte("postings") // (path, value) prefix + seq → ""
	bucketDurables = []byte("durables") // name → durable record
	bucketIdem     = []byte("idem")     // idempotency key → outcome record
	bucketIdemTime = []byte("idem_by_time")
	// node id → incarnation of its data directory, recorded by the leader
	// (cluster mode). Not required in a snapshot: stores written before it
	// existed get it empty when opened.
	bucketMembers = []byte("members")

	// durable name's parked events: parkedKey(name, seq) → parked record.
	// Not required in a snapshot either (stores before it have none).
	bucketParked = []byte("parked")

	allBuckets = [][]byte{bucketMeta, bucketEvents, bucketBatches, bucketTypes, bucketPostings, bucketDurables, bucketIdem, bucketIdemTime, bucketMembers, bucketGroups, bucketParked}
)

// Keys of the meta bucket.
var (
	metaSchema  = []byte("schema")
	metaApplied = []byte("applied")
	metaHead    = []byte("head")
	metaClean   = []byte("clean")
)

// schemaVersion is bumped on any incompatible change of the layout below.
const schemaVersion = 1

// recordVersion is the first byte of every value record, so a later layout
// can be told apart from this one without a migration of old records.
const recordVersion = 1

var errCorrupt = errors.New("boltstore: corrupt record")

func uint64FromBytes(b []byte) uint64 {
	if len(b) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(b)
}

func seqKey(seq uint64) []byte {
	k := make([]byte, 8)
	binary.BigEndian.PutUint64(k, seq)
	return k
}

func putUvarintBytes(dst, b []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(b)))
	return append(dst, b...)
}

func readUvarintBytes(b []byte) (field, rest []byte, err error) {
	n, w := binary.Uvarint(b)
	if w <= 0 || uint64(len(b)-w) < n {
		return nil, nil, errCorrupt
	}
	return b[w : w+int(n)], b[w+int(n):], nil
}

// Event record: version, occurred-at unix nanos (big-endian int64), type
// (uvarint length + bytes), then the payload bytes as given.
func appendEvent(dst []byte, at int64, typ string, payload []byte) []byte {
	dst = append(dst, recordVersion)
	dst = binary.BigEndian.AppendUint64(dst, uint64(at))
	dst = binary.AppendUvarint(dst, uint64(len(typ)))
	dst = append(dst, typ...)
	return append(dst, payload...)
}

// decodeEvent returns views into v; they are valid as long as v is.
func decodeEvent(v []byte) (at int64, typ, payload []byte, err error) {
	if len(v) < 9 || v[0] != recordVersion {
		return 0, nil, nil, errCorrupt
	}
	at = int64(binary.BigEndian.Uint64(v[1:9]))
	typ, payload, err = readUvarintBytes(v[9:])
	return at, typ, payload, err
}

// eventRecord copies a stored event out of the transaction's memory.
func eventRecord(seq uint64, v []byte) (contract.EventRecord, error) {
	at, typ, payload, err := decodeEvent(v)
	if err != nil {
		return contract.EventRecord{}, fmt.Errorf("event %d: %w", seq, err)
	}
	return contract.EventRecord{
		SequenceNumber: seq,
		OccurredAt:     time.Unix(0, at).UTC(),
		Type:           string(typ),
		Payload:        append([]byte(nil), payload...),
	}, nil
}

// durableRecord is the stored state of a durable stream name.
//
// The fields after queryJSON came later: a record without them (written
// before) decodes with them zero, and a reader that predates them ignores
// them.
type durableRecord struct {
	cursor    uint64
	holder    string // "" when free
	queryKey  string // streams.QueryKey of the query it was created with
	queryJSON []byte // the query as given, for operators
	lastAck   int64  // unix nanos of the last cursor advance; 0: never
	created   int64  // unix nanos of the acquire that created it; 0: unknown
	start     contract.StartPosition
	failure   contract.FailurePolicy // stop (zero) unless created with retry then park
	parked    uint64                 // events in the name's parked list
}

func (d durableRecord) encode() []byte {
	b := make([]byte, 0, 48+len(d.holder)+len(d.queryKey)+len(d.queryJSON))
	b = append(b, recordVersion)
	b = binary.BigEndian.AppendUint64(b, d.cursor)
	b = putUvarintBytes(b, []byte(d.holder))
	b = putUvarintBytes(b, []byte(d.queryKey))
	b = putUvarintBytes(b, d.queryJSON)
	b = binary.AppendVarint(b, d.lastAck)
	b = binary.AppendVarint(b, d.created)
	b = append(b, byte(d.start.Kind))
	b = binary.AppendUvarint(b, d.start.After)
	if d.failure == (contract.FailurePolicy{}) && d.parked == 0 {
		return b // as written before failure policies: an older reader reads it
	}
	b = binary.AppendUvarint(b, uint64(d.failure.MaxDeliveries))
	b = binary.AppendVarint(b, int64(d.failure.InitialBackoff))
	b = binary.AppendVarint(b, int64(d.failure.MaxBackoff))
	return binary.AppendUvarint(b, d.parked)
}

func decodeDurable(v []byte) (durableRecord, error) {
	if len(v) < 9 || v[0] != recordVersion {
		return durableRecord{}, errCorrupt
	}
	d := durableRecord{cursor: binary.BigEndian.Uint64(v[1:9])}
	holder, rest, err := readUvarintBytes(v[9:])
	if err != nil {
		return d, err
	}
	key, rest, err := readUvarintBytes(rest)
	if err != nil {
		return d, err
	}
	q, rest, err := readUvarintBytes(rest)
	if err != nil {
		return d, err
	}
	d.holder, d.queryKey, d.queryJSON = string(holder), string(key), append([]byte(nil), q...)
	if len(rest) == 0 {
		return d, nil
	}
	var n int
	if d.lastAck, n = binary.Varint(rest); n <= 0 {
		return d, errCorrupt
	}
	rest = rest[n:]
	if d.created, n = binary.Varint(rest); n <= 0 || len(rest) < n+1 {
		return d, errCorrupt
	}
	d.start.Kind, rest = contract.StartKind(rest[n]), rest[n+1:]
	if d.start.After, n = binary.Uvarint(rest); n <= 0 {
		return d, errCorrupt
	}
	if rest = rest[n:]; len(rest) == 0 {
		return d, nil
	}
	return d, d.decodeFailure(rest)
}

// Outcome kinds of an idempotency record.
const (
	outcomeAppended byte = 1
	outcomeConflict byte = 2
)

// idemRecord is the first outcome of a command with an idempotency key.
type idemRecord struct {
	kind       byte
	recordedAt int64 // the command's OccurredAt, unix nanos
	append     contract.AppendResult
	conflict   contract.ConflictError
}

func (r idemRecord) encode() []byte {
	b := make([]byte, 0, 2+8+24)
	b = append(b, recordVersion, r.kind)
	b = binary.BigEndian.AppendUint64(b, uint64(r.recordedAt))
	switch r.kind {
	case outcomeAppended:
		b = binary.BigEndian.AppendUint64(b, r.append.FirstSequenceNumber)
		b = binary.BigEndian.AppendUint64(b, r.append.LastSequenceNumber)
		b = binary.BigEndian.AppendUint64(b, r.append.CommittedCount)
	case outcomeConflict:
		b = binary.BigEndian.AppendUint64(b, r.conflict.Expected)
		b = binary.BigEndian.AppendUint64(b, r.conflict.Actual)
	}
	return b
}

func decodeIdem(v []byte) (idemRecord, error) {
	if len(v) < 10 || v[0] != recordVersion {
		return idemRecord{}, errCorrupt
	}
	r := idemRecord{kind: v[1], recordedAt: int64(binary.BigEndian.Uint64(v[2:10]))}
	body := v[10:]
	switch {
	case r.kind == outcomeAppended && len(body) == 24:
		r.append = contract.AppendResult{
			FirstSequenceNumber: binary.BigEndian.Uint64(body[0:8]),
			LastSequenceNumber:  binary.BigEndian.Uint64(body[8:16]),
			CommittedCount:      binary.BigEndian.Uint64(body[16:24]),
		}
	case r.kind == outcomeConflict && len(body) == 16:
		r.conflict = contract.ConflictError{
			Expected: binary.BigEndian.Uint64(body[0:8]),
			Actual:   binary.BigEndian.Uint64(body[8:16]),
		}
	default:
		return r, errCorrupt
	}
	return r, nil
}

// idemTimeKey orders idempotency keys by the time they were recorded. The
// sign bit is flipped so negative times sort before positive ones.
func idemTimeKey(at int64, key string) []byte {
	b := make([]byte, 0, 8+len(key))
	b = binary.BigEndian.AppendUint64(b, uint64(at)^(1<<63))
	return append(b, key...)
}

func idemTimeOf(k []byte) int64 {
	return int64(binary.BigEndian.Uint64(k[:8]) ^ (1 << 63))
}

// query decodes the query a durable name was created with (its filters).
func (d durableRecord) query() contract.EventQuery {
	var q contract.EventQuery
	if err := json.Unmarshal(d.queryJSON, &q); err != nil {
		return contract.EventQuery{}
	}
	return q
}
