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

// minGrant is the least a subscription waits for from the node budget: a
// grant much smaller would make reads of small batches needlessly many.
const minGrant = 64 << 10

// budget counts the bytes all subscriptions of an engine hold read but not
// yet delivered. A limit of 0 counts without bounding.
type budget struct {
	limit int64

	mu    sync.Mutex
	used  int64
	freed chan struct{} // closed and replaced when bytes are released
}

func newBudget(limit int64) *budget {
	return &budget{limit: max(limit, 0), freed: make(chan struct{})}
}

// acquire grants up to want bytes, waiting while less than
// min(want, minGrant) is free.
func (b *budget) acquire(ctx context.Context, want int64) (int64, error) {
	for {
		b.mu.Lock()
		free := b.limit - b.used
		if b.limit == 0 || free >= min(want, minGrant) {
			g := want
			if b.limit != 0 {
				g = min(want, free)
			}
			b.used += g
			b.mu.Unlock()
			return g, nil
		}
		ch := b.freed
		b.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return 0, context.Cause(ctx)
		}
	}
}

// add charges n more bytes without waiting (a read may return one batch
// larger than its grant: a committed batch is never split); a negative n
// releases.
func (b *budget) add(n int64) {
	if n == 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.used += n
	if n < 0 {
		close(b.freed)
		b.freed = make(chan struct{})
	}
}

func (b *budget) held() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}
