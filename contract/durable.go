package contract

import (
	"fmt"
	"strconv"
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
