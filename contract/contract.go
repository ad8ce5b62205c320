package contract

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// NewEvent is a fact to append. Payload must be a JSON value (object, array or scalar).
type NewEvent struct {
	Type    string
	Payload json.RawMessage
}

// EventRecord is a committed fact.
type EventRecord struct {
	SequenceNumber uint64    // global, starts at 1, no gaps
	OccurredAt     time.Time // set by the store when the batch commits (leader's clock in a cluster), never zero
	Type           string
	Payload        json.RawMessage
}

// EventFilter matches an event when its type matches AND its payload matches.
type EventFilter struct {
	EventTypes        []string          // nil: any type; non-nil and empty: no type (matches nothing)
	PayloadPredicates []json.RawMessage // nil: any payload; non-nil and empty: matches nothing
}

// EventQuery matches an event when ANY filter matches (OR across filters).
type EventQuery struct {
	Filters           []EventFilter // nil or empty: every event
	MinSequenceNumber uint64        // exclusive read cursor for returned rows; 0: from the start
}

// QueryResult is the answer to a Query.
type QueryResult struct {
	Events                     []EventRecord // ascending sequence order
	LastReturnedSequenceNumber uint64        // 0: nothing returned
	CurrentContextVersion      uint64        // highest sequence number matching the filters, ignoring MinSequenceNumber; 0: none
}

// AppendResult describes the consecutive range a committed batch received.
type AppendResult struct {
	FirstSequenceNumber uint64
	LastSequenceNumber  uint64
	CommittedCount      uint64
}

// ErrEmptyAppend is returned by Append and AppendIf for a batch without events.
var ErrEmptyAppend = errors.New("append requires at least one event")

// ErrClosed is returned by every call on a store after Close.
var ErrClosed = errors.New("event store is closed")

// ConflictError is returned by AppendIf when the context moved. 0 means "no matching fact".
type ConflictError struct{ Expected, Actual uint64 }

func (e *ConflictError) Error() string {
	return fmt.Sprintf("context version conflict: expected %d, actual %d", e.Expected, e.Actual)
}

// StreamHandler receives one committed batch (filtered, order kept). A non-nil
// error (or a panic) stops a durable stream without advancing its cursor,
// unless the name's FailurePolicy is retry then park (see RetryThenPark).
// DeliveryInfo(ctx) tells which delivery of the batch this is.
type StreamHandler func(ctx context.Context, batch []EventRecord) error

// Subscription is an active stream.
type Subscription interface {
	ID() uint64
	// Unsubscribe stops future deliveries; it is idempotent and may be
	// called from inside the handler. While no handler call is running it
	// returns once the stream has ended (a durable name is free). While
	// one is running it returns at once, since it may be called from that
	// very handler; Done is closed when that call has returned (its nil
	// still moves a durable cursor) and the name is free.
	Unsubscribe()
	// Done is closed when the stream has ended, for any reason: Unsubscribe,
	// the Stream* call's ctx, a durable handler's failure, a lost durable
	// lease, Close, or (for a remote store) a connection that could not be
	// resumed. No handler call is running or will start once it is closed.
	Done() <-chan struct{}
	// Err is nil while the stream runs and after a plain Unsubscribe;
	// after Done it says why the stream ended otherwise. Callers branch
	// with errors.Is: the ctx's error (context.Canceled,
	// context.DeadlineExceeded), ErrHandlerFailed (and the handler's own
	// error), ErrDurableLeaseLost, ErrClosed, ErrStreamLost.
	Err() error
}

// EventStore is what every FACTSTR store implements.
type EventStore interface {
	Append(ctx context.Context, events []NewEvent) (AppendResult, error)
	AppendIf(ctx context.Context, events []NewEvent, context EventQuery, expectedContextVersion uint64) (AppendResult, error)
	Query(ctx context.Context, query EventQuery) (QueryResult, error)
	StreamAll(ctx context.Context, handler StreamHandler) (Subscription, error)
	StreamTo(ctx context.Context, query EventQuery, handler StreamHandler) (Subscription, error)
	StreamAllDurable(ctx context.Context, name string, handler StreamHandler, opts ...DurableOption) (Subscription, error)
	StreamToDurable(ctx context.Context, name string, query EventQuery, handler StreamHandler, opts ...DurableOption) (Subscription, error)
	Close() error
}
