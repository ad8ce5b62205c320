package command

import (
	"errors"
	"fmt"
	"time"

	"github.com/factstr/factstr-go/contract"
	"github.com/factstr/factstr-go/internal/streams"
)

// Kind is the kind of a Command. The values are part of the Raft log
// format: never renumber them.
type Kind uint8

const (
	KindAppend           Kind = 1  // Append
	KindAppendIf         Kind = 2  // AppendIf
	KindAcquire          Kind = 3  // Acquire
	KindAdvance          Kind = 4  // Advance
	KindRelease          Kind = 5  // Release
	KindReleaseHolders   Kind = 6  // ReleaseHolders
	KindPruneIdempotency Kind = 7  // PruneIdempotency
	KindNoop             Kind = 8  // Noop
	KindSetIncarnation   Kind = 9  // SetIncarnation
	KindResetDurable     Kind = 10 // ResetDurable
	KindDeleteDurable    Kind = 11 // DeleteDurable
	KindPark             Kind = 12 // Park
	KindUnpark           Kind = 13 // Unpark
	KindRedeliverParked  Kind = 14 // RedeliverParked
	KindDropParked       Kind = 15 // DropParked
	// KindEnsureGroup is numbered apart from the kinds above so that kinds
	// added in parallel did not take its number.
	KindEnsureGroup Kind = 40 // EnsureGroup
)

func (k Kind) String() string {
	switch k {
	case KindAppend:
		return "append"
	case KindAppendIf:
		return "append-if"
	case KindAcquire:
		return "acquire"
	case KindAdvance:
		return "advance"
	case KindRelease:
		return "release"
	case KindReleaseHolders:
		return "release-holders"
	case KindPruneIdempotency:
		return "prune-idempotency"
	case KindNoop:
		return "noop"
	case KindSetIncarnation:
		return "set-incarnation"
	case KindResetDurable:
		return "reset-durable"
	case KindDeleteDurable:
		return "delete-durable"
	case KindEnsureGroup:
		return "ensure-group"
	case KindPark:
		return "park"
	case KindUnpark:
		return "unpark"
	case KindRedeliverParked:
		return "redeliver-parked"
	case KindDropParked:
		return "drop-parked"
	}
	return fmt.Sprintf("op(%d)", uint8(k))
}

// Command is one deterministic change of the store: a value of one of the
// types of this package (a pointer to one satisfies the interface too, but
// is neither encoded nor applied). Everything a command needs is in it
// (the time included), so every replica applying the same commands in the
// same order holds the same state.
type Command interface {
	Kind() Kind
	command() // seals the set: only this package's types are commands
}

// Append appends Events as one batch.
type Append struct {
	Events []contract.NewEvent
	// OccurredAt stamps the events: the leader's clock when it proposed
	// them (the embedded store's clock in embedded mode).
	OccurredAt time.Time
	// IdempotencyKey, if not empty, makes a retry return the first
	// outcome instead of appending again.
	IdempotencyKey string
}

// AppendIf appends Events as one batch if the version of Context (the
// last sequence number it matches) is Expected; otherwise the outcome is a
// *contract.ConflictError. The other fields are Append's.
type AppendIf struct {
	Events         []contract.NewEvent
	Context        contract.EventQuery
	Expected       uint64
	OccurredAt     time.Time
	IdempotencyKey string
}

// Acquire takes durable name Name for Holder, creating it when it is new
// with Query, Start and Failure. The same holder acquiring again is a
// retry; another holder is refused while the name is held.
type Acquire struct {
	Name, Holder string
	Query        contract.EventQuery
	// Start is where a name this command creates starts: the beginning,
	// the head when it applies, or after a sequence number.
	Start contract.StartPosition
	// Failure is the failure policy of a name this command creates.
	Failure contract.FailurePolicy
	// OccurredAt is when a name this command creates was created.
	OccurredAt time.Time
}

// Advance moves Name's cursor forward to Cursor, if Holder holds it.
type Advance struct {
	Name, Holder string
	Cursor       uint64
	// OccurredAt is recorded as the name's last acknowledgement.
	OccurredAt time.Time
}

// Release frees Name, if Holder holds it.
type Release struct {
	Name, Holder string
}

// ReleaseHolders frees every name whose holder starts with HolderPrefix
// ("" frees them all): a node's leases when it leaves or restarts.
type ReleaseHolders struct {
	HolderPrefix string
}

// PruneIdempotency forgets the idempotency keys recorded before Before (a
// zero Before forgets nothing).
type PruneIdempotency struct {
	Before time.Time
}

// Noop changes nothing but the applied index: a new leader's barrier.
type Noop struct{}

// SetIncarnation records Incarnation as the data-directory incarnation of
// node Node ("" forgets the node); a non-zero RemovedAt marks the node
// removed by an operator at that time.
type SetIncarnation struct {
	Node, Incarnation string
	RemovedAt         time.Time
}

// ResetDurable moves Name's cursor to To, backwards or forwards. A held
// name is refused unless Force, which takes the lease from its holder. On a
// consumer group's name it resets every partition.
type ResetDurable struct {
	Name  string
	To    contract.StartPosition
	Force bool
}

// DeleteDurable forgets Name, its cursor and its parked events. A held name
// is refused unless Force. On a consumer group's name it deletes the group.
type DeleteDurable struct {
	Name  string
	Force bool
}

// EnsureGroup creates consumer group Name with Query, Start and Spec (every
// partition starting at the cursor Start gives when it applies), or checks
// that the existing group has them.
type EnsureGroup struct {
	Name  string
	Query contract.EventQuery
	Start contract.StartPosition
	Spec  contract.GroupSpec
	// OccurredAt is when the group was created.
	OccurredAt time.Time
}

// Park sets events Seqs of Name aside after Attempts failed deliveries
// whose last error was Error, and moves Name's cursor to Cursor (0: it
// stays), if Holder holds the name.
type Park struct {
	Name, Holder string
	Seqs         []uint64
	Cursor       uint64
	Attempts     uint32
	Error        string
	// OccurredAt is when the events were parked (and the cursor's
	// acknowledgement, if it moves).
	OccurredAt time.Time
}

// ParkOf is the Park of holder for name that p describes, at at.
func ParkOf(name, holder string, p streams.Parking, at time.Time) Park {
	return Park{Name: name, Holder: holder, Cursor: p.Cursor, Seqs: p.Seqs,
		Attempts: uint32(min(p.Attempts, 1<<31)), Error: p.Error, OccurredAt: at}
}

// Unpark removes Seqs from Name's parked events (they were redelivered and
// handled), if Holder holds the name.
type Unpark struct {
	Name, Holder string
	Seqs         []uint64
}

// RedeliverParked marks Name's parked events up to UpTo (0: all) for
// redelivery.
type RedeliverParked struct {
	Name string
	UpTo uint64
}

// DropParked forgets Name's parked events up to UpTo (0: all).
type DropParked struct {
	Name string
	UpTo uint64
}

// Unknown is a command of a kind this version does not know, decoded from
// an entry a newer node wrote. Its outcome is ErrUnknownKind on every
// replica of this version.
type Unknown struct {
	Code Kind
}

func (Append) Kind() Kind           { return KindAppend }
func (AppendIf) Kind() Kind         { return KindAppendIf }
func (Acquire) Kind() Kind          { return KindAcquire }
func (Advance) Kind() Kind          { return KindAdvance }
func (Release) Kind() Kind          { return KindRelease }
func (ReleaseHolders) Kind() Kind   { return KindReleaseHolders }
func (PruneIdempotency) Kind() Kind { return KindPruneIdempotency }
func (Noop) Kind() Kind             { return KindNoop }
func (SetIncarnation) Kind() Kind   { return KindSetIncarnation }
func (ResetDurable) Kind() Kind     { return KindResetDurable }
func (DeleteDurable) Kind() Kind    { return KindDeleteDurable }
func (EnsureGroup) Kind() Kind      { return KindEnsureGroup }
func (Park) Kind() Kind             { return KindPark }
func (Unpark) Kind() Kind           { return KindUnpark }
func (RedeliverParked) Kind() Kind  { return KindRedeliverParked }
func (DropParked) Kind() Kind       { return KindDropParked }
func (u Unknown) Kind() Kind        { return u.Code }

func (Append) command()           {}
func (AppendIf) command()         {}
func (Acquire) command()          {}
func (Advance) command()          {}
func (Release) command()          {}
func (ReleaseHolders) command()   {}
func (PruneIdempotency) command() {}
func (Noop) command()             {}
func (SetIncarnation) command()   {}
func (ResetDurable) command()     {}
func (DeleteDurable) command()    {}
func (EnsureGroup) command()      {}
func (Park) command()             {}
func (Unpark) command()           {}
func (RedeliverParked) command()  {}
func (DropParked) command()       {}
func (Unknown) command()          {}

// Result is the deterministic outcome of one command.
type Result struct {
	Append contract.AppendResult // Append, AppendIf: the batch appended
	// Cursor is Acquire's stored cursor, Advance's, Release's and
	// ResetDurable's cursor, EnsureGroup's start cursor, and the number of
	// events Park, Unpark, RedeliverParked and DropParked acted on.
	Cursor    uint64
	Created   bool  // Acquire, EnsureGroup: the name was created (its start applied)
	Duplicate bool  // the idempotency key was seen before: Append/Err are the first outcome
	Err       error // the command's own failure; nothing of it was written
}

// Entry is a group of commands applied under one log index.
type Entry struct {
	Index    uint64
	Commands []Command
}

// Errors of individual commands, besides the contract's sentinels.
var (
	// ErrNotHeld is the outcome of an Advance, Park or Unpark by a holder
	// that does not hold the name (any more): the contract's
	// ErrDurableLeaseLost, which ends the subscription with that Err.
	ErrNotHeld = contract.ErrDurableLeaseLost
	// ErrUnknownKind is the outcome of a command of a kind this version
	// does not know (Unknown).
	ErrUnknownKind = errors.New("unknown command op")
)
