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
