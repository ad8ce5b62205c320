package cluster

import (
	"sync"
	"time"
)

// stampWindow makes idempotency-key pruning safe against wall-clock jumps.
//
// Keys are pruned by the time stamp the leader put on them, against a
// cut-off the leader proposes. Computed as "clock - retention", a leader
// whose clock jumped forward by more than the retention would prune keys
// written seconds ago, and a client retrying an append with its key would
// then append it twice. Instead the cut-off is the lowest stamp this leader
// used during the last retention, measured on the monotonic clock, and the
// leader prunes nothing until it has led for a whole retention (keys of
// earlier leaders carry stamps of other clocks). A key younger than the
// retention then always has a stamp at or above the cut-off, whatever the
// wall clock did; a jump only delays pruning.
type stampWindow struct {
	retention time.Duration
	width     time.Duration // one slot
	mono      func() time.Time

	mu    sync.Mutex
	start time.Time // monotonic: when this leadership began
	slots []stampSlot
}

type stampSlot struct {
	idx int64 // slot number since start
	min time.Time
	ok  bool
}

const stampSlots = 60

func newStampWindow(retention time.Duration, mono func() time.Time) *stampWindow {
	if mono == nil {
		mono = time.Now
	}
	width := max(retention/stampSlots, time.Millisecond)
	w := &stampWindow{retention: retention, width: width, mono: mono, slots: make([]stampSlot, stampSlots+2)}
	w.reset()
	return w
}

// reset starts a new leadership: nothing observed, nothing prunable.
func (w *stampWindow) reset() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.start = w.mono()
	clear(w.slots)
}

// observe notes a wall-clock stamp the leader is about to use.
func (w *stampWindow) observe(stamp time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	i := int64(w.mono().Sub(w.start) / w.width)
	s := &w.slots[i%int64(len(w.slots))]
	if !s.ok || s.idx != i {
		*s = stampSlot{idx: i, min: stamp, ok: true}
	} else if stamp.Before(s.min) {
		s.min = stamp
	}
}

// cutoff returns the lowest stamp observed during the last retention (plus
// up to one slot), and false while this leadership is younger than the
// retention or nothing was observed.
func (w *stampWindow) cutoff() (time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	elapsed := w.mono().Sub(w.start)
	if elapsed < w.retention {
		return time.Time{}, false
	}
	cur := int64(elapsed / w.width)
	first := cur - int64(w.retention/w.width) - 1
	var low time.Time
	found := false
	for _, s := range w.slots {
		if s.ok && s.idx >= first && s.idx <= cur && (!found || s.min.Before(low)) {
			low, found = s.min, true
		}
	}
	return low, found
}
