package streams

import (
	"context"
	"sync"
	"unsafe"

	"github.com/factstr/factstr-go/contract"
)

// recordOverhead is what one EventRecord costs besides its type and payload
// bytes; counting it keeps a log of tiny events from escaping the budgets.
const recordOverhead = int64(unsafe.Sizeof(contract.EventRecord{}))

// BatchBytes is what a batch costs a subscriber's budget: its types and
// payloads plus a fixed overhead per record. Sources use it to cut reads.
func BatchBytes(b []contract.EventRecord) int64 {
	n := int64(0)
	for i := range b {
		n += recordOverhead + int64(len(b[i].Type)) + int64(len(b[i].Payload))
	}
	return n
}

// minGrant is the least a read is granted: a grant much smaller would make
// reads of small batches needlessly many.
const minGrant = 64 << 10

// budget counts the bytes all subscriptions of an engine hold read but not
// yet delivered. A limit of 0 counts without bounding.
//
// A subscription asks for a grant only when it holds nothing (it delivered
// its last read), and a subscription whose client reads nothing holds its
// grant for as long as its handler waits. Waiting for bytes to come back
// would let such idle subscriptions starve an active one for good, once
// they hold the whole limit (seen: one reader of twenty stuck for minutes).
// So a grant never waits: it is what is free, but at least
// min(want, minGrant). The node then holds at most the limit plus one
// minimum grant per subscription, and under contention every subscription
// reads in minimum grants.
type budget struct {
	limit int64

	mu   sync.Mutex
	used int64
}

func newBudget(limit int64) *budget {
	return &budget{limit: max(limit, 0)}
}

// acquire grants up to want bytes at once: what is free, at least
// min(want, minGrant). It fails only when ctx has ended.
func (b *budget) acquire(ctx context.Context, want int64) (int64, error) {
	if ctx.Err() != nil {
		return 0, context.Cause(ctx)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	g := want
	if b.limit != 0 {
		g = min(want, max(b.limit-b.used, minGrant))
	}
	b.used += g
	return g, nil
}

// add charges n more bytes (a read may return one batch larger than its
// grant: a committed batch is never split); a negative n releases.
func (b *budget) add(n int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.used += n
}

func (b *budget) held() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}
