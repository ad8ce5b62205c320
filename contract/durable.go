package contract

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// StartKind says where the cursor of a new durable name starts.
type StartKind uint8

const (
	// StartBeginning delivers the whole log (the default).
	StartBeginning StartKind = iota
	// StartEnd delivers only what is committed after the name is created:
	// its cursor starts at the end of the log when the store records it.
	StartEnd
	// StartAfterSequence starts the cursor at a given sequence number:
	// events after it are delivered.
	StartAfterSequence
)

// StartPosition is where the cursor of a new durable name starts. It is
// recorded with the name; a name that exists resumes from its cursor
// whatever start is asked for.
type StartPosition struct {
	Kind  StartKind
	After uint64 // StartAfterSequence: the last sequence number not delivered
}

func (p StartPosition) String() string {
	switch p.Kind {
	case StartBeginning:
		return "beginning"
	case StartEnd:
		return "end"
	case StartAfterSequence:
		return "after " + strconv.FormatUint(p.After, 10)
	}
	return fmt.Sprintf("start(%d)", uint8(p.Kind))
}

// ParseStartPosition reads a start position as people write it:
// "beginning" (or "start"), "end", or a sequence number N for after N; the
// inverse of String for the first two. Anything else is ErrInvalidQuery.
func ParseStartPosition(s string) (StartPosition, error) {
	switch strings.ToLower(s) {
	case "beginning", "start":
		return StartPosition{Kind: StartBeginning}, nil
	case "end":
		return StartPosition{Kind: StartEnd}, nil
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return StartPosition{}, fmt.Errorf("%w: start position %q: want beginning, end or a sequence number", ErrInvalidQuery, s)
	}
	return StartPosition{Kind: StartAfterSequence, After: n}, nil
}

// Validate rejects a kind this version does not know.
func (p StartPosition) Validate() error {
	if p.Kind > StartAfterSequence {
		return fmt.Errorf("%w: unknown durable start position kind %d", ErrInvalidQuery, uint8(p.Kind))
	}
	return nil
}

// DurableOptions are the options of one StreamAllDurable or StreamToDurable
// call.
type DurableOptions struct {
	// Start applies only when the call creates the name.
	Start StartPosition
	// Group makes the subscription a member of the name's consumer group
	// (see Group); nil: a plain durable stream.
	Group *GroupSpec
	// Failure is the failure policy of a name the call creates (default:
	// stop); a name that exists keeps its own.
	Failure FailurePolicy
}

// DurableOption sets a DurableOptions field.
type DurableOption func(*DurableOptions)

// StartAtBeginning starts a new name before the first event (the default).
func StartAtBeginning() DurableOption {
	return func(o *DurableOptions) { o.Start = StartPosition{Kind: StartBeginning} }
}

// StartAtEnd starts a new name at the end of the log when the store
// creates it: nothing committed before is delivered.
func StartAtEnd() DurableOption {
	return func(o *DurableOptions) { o.Start = StartPosition{Kind: StartEnd} }
}

// StartAfter starts a new name after sequence number seq: the first event
// delivered is the first match after seq. A seq past the end of the log is
// refused with ErrPositionAhead.
func StartAfter(seq uint64) DurableOption {
	return func(o *DurableOptions) { o.Start = StartPosition{Kind: StartAfterSequence, After: seq} }
}

// StartAt starts a new name at p (StartAtBeginning, StartAtEnd or
// StartAfter, from a value).
func StartAt(p StartPosition) DurableOption {
	return func(o *DurableOptions) { o.Start = p }
}

// NewDurableOptions applies opts in order.
func NewDurableOptions(opts ...DurableOption) DurableOptions {
	var o DurableOptions
	for _, f := range opts {
		if f != nil {
			f(&o)
		}
	}
	return o
}

// DurableInfo describes one durable stream name.
type DurableInfo struct {
	Name  string
	Query EventQuery    // the query the name was created with (its filters)
	Start StartPosition // where it started when created
	// Cursor is the last sequence number the name has handled: its next
	// subscription delivers what comes after it. While a subscription runs,
	// the stored cursor may trail its deliveries by the write in flight
	// (cursor advances are coalesced); it is complete once the name is
	// released.
	Cursor uint64
	// Head is the last committed sequence number when the info was read.
	Head uint64
	// Lag is Head - Cursor: the log positions the name has still to go
	// through. A subscription that is caught up records the positions it
	// passed without a match too, so its lag returns to 0.
	Lag uint64
	// LagTime is how long the first event the name has still to handle
	// has been waiting: the time from its OccurredAt to when the info was
	// read (on the serving node's clock). 0 when no event after the cursor
	// matches the name's query, so a caught-up filtered stream has none.
	LagTime time.Duration
	Holder  string    // who holds the name now ("" when free); in a cluster, "node/subscription"
	Created time.Time // when the name was created (zero if the store did not record it)
	LastAck time.Time // when its cursor last moved (zero: never)
	// Group is set for a consumer group: its partitions (each a cursor
	// and a lease) and members. Cursor is then the lowest partition
	// cursor and Holder is empty.
	Group *GroupInfo
	// Failure is the failure policy recorded with the name.
	Failure FailurePolicy
	// Parked is the number of events in the name's parked list.
	Parked uint64
}

// DurableAdmin manages durable stream names: every FACTSTR store implements
// it. In a cluster, resets and deletes go through the Raft log like the
// cursors themselves.
type DurableAdmin interface {
	// ListDurable returns every durable name, sorted by name.
	ListDurable(ctx context.Context) ([]DurableInfo, error)
	// GetDurable returns one name, or ErrDurableNotFound.
	GetDurable(ctx context.Context, name string) (DurableInfo, error)
	// ResetDurable moves name's cursor to: the beginning, the end of the
	// log (when the reset applies) or after a sequence number, backwards
	// or forwards. A held name is refused with ErrDurableNameInUse unless
	// force is set; then its holder loses its lease (its stream ends with
	// ErrDurableLeaseLost at its next acknowledgement).
	ResetDurable(ctx context.Context, name string, to StartPosition, force bool) (DurableInfo, error)
	// DeleteDurable forgets name and its cursor; the next subscription to
	// it creates it anew, with any query and start. A held name is refused
	// with ErrDurableNameInUse unless force is set. Its parked events are
	// forgotten with it.
	DeleteDurable(ctx context.Context, name string, force bool) error
	ParkedAdmin
}

// DurableLag is Head - Cursor, 0 when the cursor is at or past the head.
func DurableLag(head, cursor uint64) uint64 {
	if head > cursor {
		return head - cursor
	}
	return 0
}

// DurableLagTime is now - pending (the OccurredAt of the first event a name
// has still to handle), never negative; 0 when pending is zero (nothing
// pending).
func DurableLagTime(now, pending time.Time) time.Duration {
	if pending.IsZero() || !now.After(pending) {
		return 0
	}
	return now.Sub(pending)
}
