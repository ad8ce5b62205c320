package membership

import (
	"sync"
	"sync/atomic"
	"time"
)

// conflictLog counts NodeID conflicts and decides which of them are
// reported. memberlist reports a conflict for every alive message about
// the claimant, many per second; each is counted, but per claimant (the
// NodeID and the rival address) only the 1st, 2nd, 4th, 8th, ... is
// logged and published.
//
// It is a type of its own because the counts are read by operators
// (Conflicts, LastConflict) from any goroutine and the rate limit is a
// rule worth testing alone; neither needs the member view or its lock.
type conflictLog struct {
	total atomic.Uint64
	last  atomic.Int64 // when the last conflict was seen (Unix ns; 0: never)

	mu   sync.Mutex
	seen map[string]uint64 // reports per claimant; cleared when large
}

// maxConflictClaimants bounds conflictLog.seen: past it the counts start
// over, so a stream of claimants cannot grow it without bound.
const maxConflictClaimants = 1024

// record counts a conflict over node from rivalAddr at now. It returns
// the total so far, the reports for this claimant, and whether this one
// is to be reported.
func (c *conflictLog) record(node, rivalAddr string, now time.Time) (total, reports uint64, report bool) {
	total = c.total.Add(1)
	c.last.Store(now.UnixNano())
	key := node + "|" + rivalAddr
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.seen == nil || len(c.seen) > maxConflictClaimants {
		c.seen = make(map[string]uint64)
	}
	c.seen[key]++
	reports = c.seen[key]
	return total, reports, reports&(reports-1) == 0
}

// count is how many conflicts were recorded.
func (c *conflictLog) count() uint64 { return c.total.Load() }

// lastAt is when the last conflict was recorded (zero if never).
func (c *conflictLog) lastAt() time.Time {
	if ns := c.last.Load(); ns != 0 {
		return time.Unix(0, ns)
	}
	return time.Time{}
}

// Conflicts is how many times memberlist reported a second node claiming a
// known NodeID from another address. A non-zero, growing value means two
// processes share a NodeID (a misconfiguration, or a restarted pod whose old
// entry is not yet reclaimable); the cluster should refuse the newcomer.
func (m *Membership) Conflicts() uint64 { return m.conflicts.count() }

// LastConflict is when gossip last reported a node-id conflict (zero if
// never).
func (m *Membership) LastConflict() time.Time { return m.conflicts.lastAt() }
