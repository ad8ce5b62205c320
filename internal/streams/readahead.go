package streams

import (
	"sync"

	"github.com/factstr/factstr-go/contract"
)

// readAhead holds the batches a subscription has read and not yet handed
// to its handler, and keeps the engine's node budget in step with them:
// what it holds is charged, what it hands out stays charged until the
// handler is done with it (delivered), what it drops is given back.
//
// It is separate from the subscription because two goroutines use it and
// nothing else of the subscription is involved: the delivering goroutine
// takes batches in order, while a stall timer may drop what is left, so a
// handler that does not take its deliveries holds only the batch in hand.
// Its lock guards only the held batches.
type readAhead struct {
	budget *budget

	mu sync.Mutex
	// batches are the last read's; the ones taken are set to nil. nil
	// once the read is delivered or dropped.
	batches   [][]contract.EventRecord
	next      int  // the next batch to take
	reclaimed bool // a stall dropped the rest of the read
}

// hold keeps a read's batches for delivery and settles the budget from
// the grant the read was made under to what they cost (a read may return
// one batch larger than its grant: a committed batch is never split).
func (r *readAhead) hold(batches [][]contract.EventRecord, grant int64) {
	n := int64(0)
	for _, b := range batches {
		n += BatchBytes(b)
	}
	r.budget.add(n - grant)
	r.mu.Lock()
	r.batches, r.next, r.reclaimed = batches, 0, false
	r.mu.Unlock()
}

// take returns the next held batch; from then on it is the handler's, not
// read-ahead, and a stall no longer drops it. Its bytes stay charged until
// delivered. ok is false once nothing is left; reclaimed then says that a
// stall dropped the rest, which must be read again (and clears it).
func (r *readAhead) take() (b []contract.EventRecord, ok, reclaimed bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.reclaimed {
		r.reclaimed = false
		return nil, false, true
	}
	if r.next >= len(r.batches) {
		r.batches = nil
		return nil, false, false
	}
	b = r.batches[r.next]
	r.batches[r.next] = nil
	r.next++
	return b, true, false
}

// delivered gives back the bytes of a batch take returned, once its
// handler is done with it.
func (r *readAhead) delivered(b []contract.EventRecord) { r.budget.add(-BatchBytes(b)) }

// drop gives up what is held and not taken, for a stall; the delivering
// goroutine then finds it reclaimed. It returns the bytes given back.
func (r *readAhead) drop() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.dropLocked()
}

// reset drops what is held when delivery stops reading: nothing is left
// reclaimed for a next read.
func (r *readAhead) reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.dropLocked()
	r.reclaimed = false
}

func (r *readAhead) dropLocked() int64 {
	if r.batches == nil {
		return 0
	}
	n := int64(0)
	for _, b := range r.batches {
		n += BatchBytes(b)
	}
	r.batches, r.reclaimed = nil, true
	r.budget.add(-n)
	return n
}
