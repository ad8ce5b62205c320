package streams

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/factstr/factstr-go/contract"
)

// Hub broadcasts the committed head sequence number to waiting
// subscriptions, and keeps the most recently committed batches, so that a
// subscription that is caught up takes what was just committed from here
// instead of reading it back from the store.
type Hub struct {
	head *Watermark
	// followers counts the subscriptions of the engines reading through
	// this hub: with none, a store need not build the records of what it
	// commits for Publish.
	followers atomic.Int64

	mu     sync.Mutex
	recent recentLog
}

// Bounds of the batches a hub keeps: enough for every caught-up
// subscription to take a burst of commits from memory, small next to the
// node's stream budget.
const (
	RecentBytes   = 4 << 20
	RecentBatches = 4096
)

// recentLog holds the committed batches (from, to], contiguous, each whole
// and unfiltered, oldest first.
type recentLog struct {
	from, to uint64
	batches  [][]contract.EventRecord
	bytes    int64
}

// NewHub returns a hub whose committed head is head.
func NewHub(head uint64) *Hub {
	return &Hub{head: NewWatermark(head), recent: recentLog{from: head, to: head}}
}

// Publish records a new committed head and wakes every waiter. committed
// is what was committed after the previous head, batch by batch, or nil
// when the caller did not collect it: the hub then keeps no batch up to
// head, and subscriptions read those from the store. A head lower than the
// current one is ignored: heads only move forward (a restore that rewinds
// state must use Reset). The hub keeps committed: its records must not
// change afterwards.
func (h *Hub) Publish(head uint64, committed [][]contract.EventRecord) {
	// One lock around both: the batches are in place before the head
	// moves (a subscription woken by the new head finds them), and
	// concurrent publishers cannot interleave.
	h.mu.Lock()
	defer h.mu.Unlock()
	cur := h.head.Value()
	if head <= cur {
		return
	}
	if h.recent.to == cur && contiguous(cur, head, committed) {
		h.recent.add(committed, head)
	} else {
		h.recent = recentLog{from: head, to: head}
	}
	h.head.Publish(head)
}

// Reset sets the head unconditionally (used after a snapshot restore),
// forgets the batches it kept, and wakes every waiter.
func (h *Hub) Reset(head uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.recent = recentLog{from: head, to: head}
	h.head.Reset(head)
}

// Close wakes every waiter for good.
func (h *Hub) Close() { h.head.Close() }

// Followed reports whether any subscription reads through the hub. A
// store that sees none publishes its commits without their batches (nil):
// a subscription that starts afterwards reads those from the store.
func (h *Hub) Followed() bool { return h.followers.Load() > 0 }

// Head returns the committed head.
func (h *Hub) Head() uint64 { return h.head.Value() }

// Wait blocks until the head is greater than after, the hub closes or ctx
// is done. It returns the head it saw.
func (h *Hub) Wait(ctx context.Context, after uint64) (uint64, error) {
	return h.head.Wait(ctx, after)
}

// WaitAtLeast blocks until the head is at least target.
func (h *Hub) WaitAtLeast(ctx context.Context, target uint64) (uint64, error) {
	return h.head.WaitAtLeast(ctx, target)
}

// contiguous reports whether batches are exactly the sequence numbers
// (after, head], in order, none empty.
func contiguous(after, head uint64, batches [][]contract.EventRecord) bool {
	next := after + 1
	for _, b := range batches {
		if len(b) == 0 {
			return false
		}
		for i := range b {
			if b[i].SequenceNumber != next {
				return false
			}
			next++
		}
	}
	return len(batches) > 0 && next == head+1
}

func (r *recentLog) add(batches [][]contract.EventRecord, to uint64) {
	r.to = to
	for _, b := range batches {
		r.batches = append(r.batches, b)
		r.bytes += BatchBytes(b)
	}
	drop := 0
	for drop < len(r.batches) && (r.bytes > RecentBytes || len(r.batches)-drop > RecentBatches) {
		b := r.batches[drop]
		r.bytes -= BatchBytes(b)
		r.from = b[len(b)-1].SequenceNumber
		r.batches[drop] = nil
		drop++
	}
	if drop > 0 {
		// Copy the survivors down once the dropped part is as large as
		// they are, so the backing array neither grows forever nor is
		// copied on every commit.
		if drop >= len(r.batches)-drop {
			r.batches = append(r.batches[:0:0], r.batches[drop:]...)
		} else {
			r.batches = r.batches[drop:]
		}
	}
}

// Recent returns what Source.ReadBatches would for (after, upTo], from the
// batches the hub keeps: ok is false when it does not keep all of them
// (after is older than its oldest batch, or upTo is past the head), and
// the caller reads from the store. Records are copies the caller owns.
func (h *Hub) Recent(after, upTo uint64, m *contract.Matcher, maxBatches int, maxBytes int64) (batches [][]contract.EventRecord, scanned uint64, ok bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if after < h.recent.from || upTo > h.recent.to {
		return nil, after, false
	}
	if upTo <= after {
		return nil, after, true
	}
	if maxBatches <= 0 {
		maxBatches = 1
	}
	bs := h.recent.batches
	// The first batch that ends after after.
	lo, hi := 0, len(bs)
	for lo < hi {
		mid := (lo + hi) / 2
		if bs[mid][len(bs[mid])-1].SequenceNumber > after {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	var n int
	var bytes int64
	for _, b := range bs[lo:] {
		if b[0].SequenceNumber > upTo {
			break
		}
		end := b[len(b)-1].SequenceNumber
		var matched []contract.EventRecord
		for i := range b {
			if seq := b[i].SequenceNumber; seq > after && seq <= upTo && m.Match(b[i].Type, b[i].Payload) {
				matched = append(matched, b[i])
			}
		}
		if len(matched) == 0 {
			continue
		}
		size := BatchBytes(matched)
		if n > 0 && maxBytes > 0 && bytes+size > maxBytes {
			return batches, scanned, true // scanned: the end of the last returned batch
		}
		batches = append(batches, ownCopy(matched))
		n++
		bytes += size
		scanned = min(end, upTo)
		if n >= maxBatches || (maxBytes > 0 && bytes >= maxBytes) {
			return batches, scanned, true
		}
	}
	return batches, upTo, true
}

// ownCopy copies records with their payloads in one allocation: the hub's
// records are shared by every subscription, a handler's are its own.
func ownCopy(recs []contract.EventRecord) []contract.EventRecord {
	total := 0
	for i := range recs {
		total += len(recs[i].Payload)
	}
	buf := make([]byte, 0, total)
	out := make([]contract.EventRecord, len(recs))
	for i, r := range recs {
		start := len(buf)
		buf = append(buf, r.Payload...)
		r.Payload = buf[start:len(buf):len(buf)]
		out[i] = r
	}
	return out
}
