package contract

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/factstr/factstr-go/internal/jsontext"
)

// These sentinels extend the contract's errors so callers (and the gRPC
// layer, which maps each to a status code) can branch on them with errors.Is.
var (
	// ErrInvalidEvent wraps every rejection of an event: empty type, payload
	// that is not JSON.
	ErrInvalidEvent = errors.New("invalid event")
	// ErrInvalidQuery wraps every rejection of a query: a payload predicate
	// that is not JSON, an empty durable stream name.
	ErrInvalidQuery = errors.New("invalid query")
	// ErrLimitExceeded wraps rejections for size limits (payload bytes,
	// events per batch).
	ErrLimitExceeded = errors.New("limit exceeded")
	// ErrResultTooLarge is returned by Query when the matching events after
	// MinSequenceNumber are more than Limits.MaxQueryBytes. The result that
	// comes with it is the first page: every matching event in
	// (MinSequenceNumber, LastReturnedSequenceNumber], and the context's
	// CurrentContextVersion. Query again with MinSequenceNumber set to that
	// LastReturnedSequenceNumber for the next page, or narrow the query.
	ErrResultTooLarge = errors.New("query result too large")
	// ErrDurableNameInUse is returned when a durable stream name is already
	// held by an active subscription.
	ErrDurableNameInUse = errors.New("durable stream name is held by an active subscription")
	// ErrDurableQueryMismatch is returned when a durable name is subscribed
	// again with a query different from the one it was created with.
	ErrDurableQueryMismatch = errors.New("durable stream name was created with a different query")
	// ErrHandlerFailed is Subscription.Err of a durable stream that ended
	// because its handler returned an error or panicked (under the failure
	// policy stop); the error also wraps what the handler returned.
	ErrHandlerFailed = errors.New("stream handler failed")
	// ErrDurableLeaseLost is Subscription.Err of a durable stream whose name
	// is no longer held by it: the cluster released the lease (its node was
	// declared gone) or an operator reset or deleted the name with force.
	ErrDurableLeaseLost = errors.New("durable stream name is no longer held by this subscription")
	// ErrStreamLost is Subscription.Err of a remote store's stream whose
	// connection was lost and could not be resumed on any node in time.
	ErrStreamLost = errors.New("stream lost its connection to the store and could not resume")
	// ErrPositionAhead is returned for a position past the end of the
	// committed log: a catch-up stream's start, a durable name's
	// StartAfter, a cursor reset. Through a cluster, for a catch-up
	// stream, it usually means the position was read on another, further
	// node: try another node or wait for this one to catch up.
	ErrPositionAhead = errors.New("stream position is ahead of the committed log")
	// ErrDurableNotFound is returned by DurableAdmin for a name that does
	// not exist.
	ErrDurableNotFound = errors.New("durable stream name not found")
)

// Limits bounds what a store accepts. Zero fields mean "no limit".
type Limits struct {
	MaxPayloadBytes int // per event
	MaxBatchEvents  int // per Append / AppendIf
	MaxTypeBytes    int // per event type
	MaxBatchBytes   int // per Append / AppendIf, types and payloads together

	// Shape of every payload and payload predicate. Each scalar leaf is a
	// posting in a persistent store's index, and numbers are compared by
	// exact value: these keep the work of indexing and matching one event
	// proportional to its size, on every replica.
	MaxPayloadDepth  int // nested objects and arrays
	MaxPayloadLeaves int // scalar values in one payload or predicate
	MaxNumberDigits  int // digits of one JSON number, exponent included

	// Size of a query (Query, streams, an AppendIf context).
	MaxQueryFilters     int // filters per query
	MaxFilterPredicates int // payload predicates per filter
	MaxPredicateBytes   int // per payload predicate

	// MaxQueryBytes bounds one Query result: the sum of ResultBytes over
	// its events. A store stops reading once the next event would pass
	// it, so neither the store nor a client ever holds more.
	MaxQueryBytes int
}

// RecordOverheadBytes is what MaxQueryBytes counts for one event besides its
// type and payload: its sequence number, time and framing on the wire. It
// keeps a result of many tiny events bounded too.
const RecordOverheadBytes = 32

// ResultBytes is the size MaxQueryBytes counts for one event.
func ResultBytes(eventType string, payload []byte) int {
	return len(eventType) + len(payload) + RecordOverheadBytes
}

// ResultTooLarge is the ErrResultTooLarge a store returns with a first page
// that ends at lastReturned (0 when not even one event fits).
func ResultTooLarge(maxBytes int, q EventQuery, lastReturned uint64) error {
	if lastReturned == 0 {
		return fmt.Errorf("%w: the first matching event after sequence %d is over the limit of %d bytes per query result; "+
			"raise the node's query limit (factstr-node --max-query-bytes) or narrow the query",
			ErrResultTooLarge, q.MinSequenceNumber, maxBytes)
	}
	return fmt.Errorf("%w: the matching events after sequence %d are over the limit of %d bytes per query result "+
		"(types and payloads, plus %d bytes per event); the result holds the first page, through sequence %d: "+
		"query again with EventQuery.MinSequenceNumber = %d (QueryResult.LastReturnedSequenceNumber) for the next page, or narrow the query",
		ErrResultTooLarge, q.MinSequenceNumber, maxBytes, RecordOverheadBytes, lastReturned, lastReturned)
}

// DefaultLimits are the limits every FACTSTR store applies unless configured
// otherwise. They keep one Raft entry well below the transport's message size:
// MaxBatchBytes is twice the largest payload, so that the cluster's default
// of 32 entries per AppendEntries carries at most 64 MiB.
var DefaultLimits = Limits{
	MaxPayloadBytes: 1 << 20, MaxBatchEvents: 10_000, MaxTypeBytes: 256, MaxBatchBytes: 2 << 20,
	MaxPayloadDepth: 64, MaxPayloadLeaves: 10_000, MaxNumberDigits: 100,
	MaxQueryFilters: 256, MaxFilterPredicates: 256, MaxPredicateBytes: 64 << 10,
	MaxQueryBytes: 64 << 20,
}

// ValidateEvents checks a batch before anything is written: validation comes
// first, so an empty batch is ErrEmptyAppend whatever else is wrong, and one
// invalid event rejects the whole batch.
func ValidateEvents(events []NewEvent, limits Limits) error {
	if len(events) == 0 {
		return ErrEmptyAppend
	}
	if limits.MaxBatchEvents > 0 && len(events) > limits.MaxBatchEvents {
		return fmt.Errorf("%w: batch has %d events, the maximum is %d; split it into smaller appends",
			ErrLimitExceeded, len(events), limits.MaxBatchEvents)
	}
	total := 0
	for i, ev := range events {
		total += len(ev.Type) + len(ev.Payload)
		if limits.MaxBatchBytes > 0 && total > limits.MaxBatchBytes {
			return fmt.Errorf("%w: batch is over %d bytes (at event %d); split it into smaller appends",
				ErrLimitExceeded, limits.MaxBatchBytes, i)
		}
		if ev.Type == "" {
			return fmt.Errorf("%w: event %d has an empty type; every event needs a type", ErrInvalidEvent, i)
		}
		if !utf8.ValidString(ev.Type) {
			return fmt.Errorf("%w: event %d type is not valid UTF-8", ErrInvalidEvent, i)
		}
		if limits.MaxTypeBytes > 0 && len(ev.Type) > limits.MaxTypeBytes {
			return fmt.Errorf("%w: event %d type is %d bytes, the maximum is %d",
				ErrLimitExceeded, i, len(ev.Type), limits.MaxTypeBytes)
		}
		if limits.MaxPayloadBytes > 0 && len(ev.Payload) > limits.MaxPayloadBytes {
			return fmt.Errorf("%w: event %d payload is %d bytes, the maximum is %d",
				ErrLimitExceeded, i, len(ev.Payload), limits.MaxPayloadBytes)
		}
		if !jsontext.Valid(ev.Payload) {
			return fmt.Errorf("%w: event %d (type %q) payload is not a valid JSON value", ErrInvalidEvent, i, ev.Type)
		}
		if err := checkShape(ev.Payload, limits.shape()); err != nil {
			return fmt.Errorf("%w: event %d (type %q) payload: %w", ErrInvalidEvent, i, ev.Type, err)
		}
	}
	return nil
}

// ValidateQuery is ValidateQueryLimits with DefaultLimits.
func ValidateQuery(q EventQuery) error {
	return ValidateQueryLimits(q, DefaultLimits)
}

// ValidateQueryLimits checks a query before it runs: its size against
// limits, and that every payload predicate is a JSON value of the shape
// a payload may have.
func ValidateQueryLimits(q EventQuery, limits Limits) error {
	if limits.MaxQueryFilters > 0 && len(q.Filters) > limits.MaxQueryFilters {
		return fmt.Errorf("%w: query has %d filters, the maximum is %d; merge filters (one filter takes many event types)",
			ErrInvalidQuery, len(q.Filters), limits.MaxQueryFilters)
	}
	for i, f := range q.Filters {
		if limits.MaxFilterPredicates > 0 && len(f.PayloadPredicates) > limits.MaxFilterPredicates {
			return fmt.Errorf("%w: filter %d has %d payload predicates, the maximum is %d",
				ErrInvalidQuery, i, len(f.PayloadPredicates), limits.MaxFilterPredicates)
		}
		for j, p := range f.PayloadPredicates {
			if limits.MaxPredicateBytes > 0 && len(p) > limits.MaxPredicateBytes {
				return fmt.Errorf("%w: filter %d payload predicate %d is %d bytes, the maximum is %d",
					ErrInvalidQuery, i, j, len(p), limits.MaxPredicateBytes)
			}
			if !jsontext.Valid(p) {
				return fmt.Errorf("%w: filter %d payload predicate %d is not a JSON value", ErrInvalidQuery, i, j)
			}
			if err := checkShape(p, limits.shape()); err != nil {
				return fmt.Errorf("%w: filter %d payload predicate %d: %w", ErrInvalidQuery, i, j, err)
			}
		}
	}
	// What NewMatcher would refuse beyond the JSON checked above, without
	// decoding every predicate only to drop it: the store compiles the
	// query itself.
	for i, f := range q.Filters {
		if err := checkFilterTypes(i, f.EventTypes); err != nil {
			return err
		}
	}
	return nil
}

// ValidateContext checks an AppendIf context: ValidateQueryLimits, and that
// a store's indexes can find the context's version without reading the
// log. A store decides that version while it commits, in log order, so a
// context only a scan of the log could answer would stall every write.
//
// A context narrows when it has no filters (its version is the last event),
// when one filter matches every event (no types and no predicates: the same),
// or when every filter names event types or has predicates that each hold a
// scalar value ({"seat":"12A"}, not {} or {"tags":[]}). Filters that match
// nothing (an empty type or predicate list) narrow trivially.
func ValidateContext(q EventQuery, limits Limits) error {
	if err := ValidateQueryLimits(q, limits); err != nil {
		return err
	}
	return checkNarrows(q)
}

func checkNarrows(q EventQuery) error {
	for _, f := range q.Filters {
		if f.EventTypes == nil && f.PayloadPredicates == nil {
			return nil
		}
	}
	for i, f := range q.Filters {
		if f.EventTypes != nil || f.PayloadPredicates == nil {
			continue
		}
		for j, p := range f.PayloadPredicates {
			if !hasScalar(p) {
				return fmt.Errorf("%w: AppendIf context filter %d payload predicate %d (%s) holds no scalar value and the filter names no event type, "+
					"so no index can narrow it; add an event type to the filter or a scalar to the predicate (such as {\"id\":\"...\"})",
					ErrInvalidQuery, i, j, abbreviate(p))
			}
		}
	}
	return nil
}

// hasScalar reports whether a valid JSON value holds a string, number,
// true, false or null anywhere; only structure ({}, [], {"a":[]}) does not.
func hasScalar(raw []byte) bool {
	for i := 0; i < len(raw); i++ {
		switch raw[i] {
		case ' ', '\t', '\n', '\r', ',', ':', '{', '}', '[', ']':
		case '"':
			// A string right after '{' or ',' inside an object is a key,
			// not a value; skip it and look on.
			end := stringEnd(raw, i)
			if !isKey(raw, end) {
				return true
			}
			i = end
		default:
			return true
		}
	}
	return false
}

// isKey reports whether the string closing at raw[end] is an object key:
// the next non-space byte is ':'.
func isKey(raw []byte, end int) bool {
	for i := end + 1; i < len(raw); i++ {
		switch raw[i] {
		case ' ', '\t', '\n', '\r':
			continue
		case ':':
			return true
		}
		return false
	}
	return false
}

func abbreviate(p []byte) string {
	const max = 64
	if len(p) <= max {
		return string(p)
	}
	return strings.ToValidUTF8(string(p[:max]), "") + "..."
}

// ValidateDurableName checks a durable stream name.
func ValidateDurableName(name string) error {
	if name == "" {
		return fmt.Errorf("%w: durable stream name must not be empty", ErrInvalidQuery)
	}
	if !utf8.ValidString(name) {
		return fmt.Errorf("%w: durable stream name is not valid UTF-8", ErrInvalidQuery)
	}
	if len(name) > 256 {
		return fmt.Errorf("%w: durable stream name is %d bytes, the maximum is 256", ErrInvalidQuery, len(name))
	}
	if strings.IndexByte(name, 0) >= 0 {
		// Reserved: the names of a consumer group's partitions and members
		// are its name, a NUL byte and a suffix.
		return fmt.Errorf("%w: durable stream name must not contain a NUL byte", ErrInvalidQuery)
	}
	return nil
}
