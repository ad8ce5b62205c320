package streams

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/factstr/factstr-go/contract"
)

// discard is a logger for tests that do not look at logs.
var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

// fakeDurables records what the lease, cursor and parking policy ask of a
// store, answers with the errors a test sets, and notes whether each
// write ran under a live ctx with a deadline.
type fakeDurables struct {
	mu sync.Mutex
	// Set by the test.
	advanceErr   error
	parkErr      error
	releaseFails int                      // the first releaseFails releases fail
	due          [][]contract.ParkedEvent // DueParked answers, one per call; then none
	// Recorded.
	advances  []uint64
	parks     []Parking
	unparks   [][]uint64
	releases  int // calls, failed ones included
	dueReads  int
	deadWrite bool // a write ran under a ctx that was done or had no deadline
}

func (d *fakeDurables) checkWrite(ctx context.Context) {
	if _, ok := ctx.Deadline(); !ok || ctx.Err() != nil {
		d.deadWrite = true
	}
}

func (d *fakeDurables) Acquire(context.Context, string, contract.EventQuery, string, contract.DurableOptions) (AcquireResult, error) {
	return AcquireResult{}, nil
}

func (d *fakeDurables) Advance(ctx context.Context, _, _ string, cursor uint64) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.checkWrite(ctx)
	if d.advanceErr != nil {
		return d.advanceErr
	}
	d.advances = append(d.advances, cursor)
	return nil
}

func (d *fakeDurables) Release(ctx context.Context, _, _ string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.checkWrite(ctx)
	d.releases++
	if d.releases <= d.releaseFails {
		return contract.ErrStreamLost // any error that is not ErrClosed
	}
	return nil
}

func (d *fakeDurables) Park(ctx context.Context, _, _ string, p Parking) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.checkWrite(ctx)
	if d.parkErr != nil {
		return d.parkErr
	}
	d.parks = append(d.parks, p)
	return nil
}

func (d *fakeDurables) DueParked(context.Context, string, int) ([]contract.ParkedEvent, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.dueReads++
	if len(d.due) == 0 {
		return nil, nil
	}
	out := d.due[0]
	d.due = d.due[1:]
	return out, nil
}

func (d *fakeDurables) Unpark(ctx context.Context, _, _ string, seqs []uint64) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.checkWrite(ctx)
	d.unparks = append(d.unparks, slices.Clone(seqs))
	return nil
}

// testLease is a lease on "d" for holder "h" over d, whose ctx is already
// cancelled: the writes must not depend on it.
func testLease(d Durables, closed <-chan struct{}) *durableLease {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return &durableLease{durables: d, name: "d", holder: "h", ctx: ctx, timeout: time.Second, logger: discard, closed: closed}
}

// records returns one batch of events with the given sequence numbers.
func records(seqs ...uint64) []contract.EventRecord {
	b := make([]contract.EventRecord, len(seqs))
	for i, s := range seqs {
		b[i] = contract.EventRecord{SequenceNumber: s, Type: "T", Payload: []byte(`{}`)}
	}
	return b
}
