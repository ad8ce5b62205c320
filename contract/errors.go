package contract

import (
	"errors"
	"fmt"
	"unicode/utf8"
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
	// ErrDurableNameInUse is returned when a durable stream name is already
	// held by an active subscription.
	ErrDurableNameInUse = errors.New("durable stream name is held by an active subscription")
	// ErrDurableQueryMismatch is returned when a durable name is subscribed
	// again with a query different from the one it was created with.
	ErrDurableQueryMismatch = errors.New("durable stream name was created with a different query")
)

// Limits bounds what a store accepts. Zero fields mean "no limit".
type Limits struct {
	MaxPayloadBytes int // per event
	MaxBatchEvents  int // per Append / AppendIf
	MaxTypeBytes    int // per event type
	MaxBatchBytes   int // per Append / AppendIf, types and payloads together
}

// DefaultLimits are the limits every FACTSTR store applies unless configured
// otherwise. They keep one Raft entry well below the transport's message size.
var DefaultLimits = Limits{MaxPayloadBytes: 1 << 20, MaxBatchEvents: 10_000, MaxTypeBytes: 256, MaxBatchBytes: 16 << 20}

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
		if !validJSON(ev.Payload) {
			return fmt.Errorf("%w: event %d (type %q) payload is not a valid JSON value", ErrInvalidEvent, i, ev.Type)
		}
	}
	return nil
}

// ValidateQuery checks that every payload predicate is a JSON value.
func ValidateQuery(q EventQuery) error {
	_, err := NewMatcher(q)
	return err
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
	return nil
}
