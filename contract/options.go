package contract

import "context"

// Per-call options travel in the context so the EventStore interface stays
// exactly the contract's. Stores that have no use for an option ignore it:
// an embedded store is always "linearizable" and never retries.

type idempotencyKeyCtx struct{}
type readOptionsCtx struct{}

// WithIdempotencyKey returns a context whose Append or AppendIf carries key:
// a retry with the same key within the store's retention window returns the
// first outcome instead of appending again. Clustered stores generate a key
// when none is given, so their own retries are always safe.
func WithIdempotencyKey(ctx context.Context, key string) context.Context {
	return context.WithValue(ctx, idempotencyKeyCtx{}, key)
}

// IdempotencyKey returns the key set by WithIdempotencyKey, or "".
func IdempotencyKey(ctx context.Context) string {
	k, _ := ctx.Value(idempotencyKeyCtx{}).(string)
	return k
}

// Consistency is how fresh a read (Query, or the start of a stream) must be.
type Consistency uint8

const (
	// Linearizable reads see every write acknowledged before they began, on
	// every node (through a read index obtained from the leader). Default.
	Linearizable Consistency = iota
	// Local reads answer from the serving node's state, possibly stale.
	// With ReadOptions.MinSequenceNumber the node first waits until it has
	// applied that far (read-your-writes without a leader round trip).
	Local
)

func (c Consistency) String() string {
	if c == Local {
		return "local"
	}
	return "linearizable"
}

// ReadOptions select the consistency of reads made with a context.
type ReadOptions struct {
	Consistency       Consistency
	MinSequenceNumber uint64
}

// WithReadOptions returns a context whose reads use opts.
func WithReadOptions(ctx context.Context, opts ReadOptions) context.Context {
	return context.WithValue(ctx, readOptionsCtx{}, opts)
}

// ReadOptionsFrom returns the options set by WithReadOptions (the zero
// value, linearizable, when none were set).
func ReadOptionsFrom(ctx context.Context) ReadOptions {
	o, _ := ctx.Value(readOptionsCtx{}).(ReadOptions)
	return o
}

// AppendOptions are the options of one append given explicitly
// (IdempotentAppender), rather than through the context.
type AppendOptions struct {
	// IdempotencyKey: a retry with the same key within the store's
	// retention window returns the first outcome instead of appending
	// again. Empty: the key of WithIdempotencyKey, if any; a clustered
	// store makes one when there is none.
	IdempotencyKey string
}

// AppendOutcome is the result of an append and whether it was a retry.
type AppendOutcome struct {
	AppendResult
	// Duplicate: the idempotency key had been used within the retention
	// window; the result is that first outcome and nothing was appended
	// by this call.
	Duplicate bool
}

// IdempotentAppender is implemented by stores that deduplicate appends by
// idempotency key and can tell a retry from a first append (a cluster
// node). Servers use it to report the duplicate flag to their clients; the
// plain Append and AppendIf of EventStore are these calls without options
// and without the flag.
type IdempotentAppender interface {
	AppendWith(ctx context.Context, events []NewEvent, opts AppendOptions) (AppendOutcome, error)
	AppendIfWith(ctx context.Context, events []NewEvent, query EventQuery, expected uint64, opts AppendOptions) (AppendOutcome, error)
}
