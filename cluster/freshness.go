package cluster

import (
	"context"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// freshnessProbeEvery is how often a node learns the leader's commit index
// to know how far it is behind. On a follower each probe is one read-index
// request to the leader (the same a linearizable read makes), shared with
// concurrent reads.
const freshnessProbeEvery = 250 * time.Millisecond

// freshness tracks how far this node's state machine may be behind the
// leader, in time: behind is the time since the latest moment at which the
// node had applied everything the leader had committed. A follower cut off
// from the Raft traffic, held back by the leader's replication backoff, or
// without a leader cannot advance that moment, so its lag grows; a node
// that follows closely stays within about one probe interval.
//
// A probe records (when it started, the leader's commit index it got); once
// the local applied index reaches that commit index, the node was up to
// date as of the probe's start.
type freshness struct {
	mu      sync.Mutex
	freshAt time.Time
	cluster uint64       // the highest leader commit index learned
	pending []freshProbe // probes whose index is not yet applied, oldest first
}

type freshProbe struct {
	at  time.Time
	idx uint64
}

// maxFreshProbes bounds pending on a node far behind: past it the newest
// probe replaces the last, which only makes the lag look larger for a
// moment, never smaller.
const maxFreshProbes = 64

func newFreshness(now time.Time) *freshness { return &freshness{freshAt: now} }

// observe records that at time at the leader had committed idx.
func (f *freshness) observe(at time.Time, idx uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cluster = max(f.cluster, idx)
	if len(f.pending) == maxFreshProbes {
		f.pending[len(f.pending)-1] = freshProbe{at, idx}
		return
	}
	f.pending = append(f.pending, freshProbe{at, idx})
}

// status settles the probes applied covers and returns the cluster index
// learned and how far behind the node may be at now.
func (f *freshness) status(applied uint64, now time.Time) (cluster uint64, behind time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	i := 0
	for ; i < len(f.pending) && f.pending[i].idx <= applied; i++ {
		f.freshAt = maxTime(f.freshAt, f.pending[i].at)
	}
	// Later probes may have a lower index than an unsettled earlier one
	// (a new leader's commit index); keep the order, drop what is settled.
	f.pending = append(f.pending[:0], f.pending[i:]...)
	if now.After(f.freshAt) {
		behind = now.Sub(f.freshAt)
	}
	return max(f.cluster, applied), behind
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// probe learns the leader's commit index every freshnessProbeEvery until
// ctx ends: a leader reads its own, a follower asks through reads.
func (f *freshness) probe(ctx context.Context, wg *sync.WaitGroup, r *raft.Raft, reads *readIndex) {
	defer wg.Done()
	t := time.NewTicker(freshnessProbeEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		start := time.Now()
		if r.State() == raft.Leader {
			// The leader's own commit index; it applies it at once.
			f.observe(start, r.CommitIndex())
			continue
		}
		pctx, cancel := context.WithTimeout(ctx, 2*freshnessProbeEvery)
		idx, err := reads.index(pctx)
		cancel()
		if err == nil {
			f.observe(start, idx)
		}
	}
}

// Freshness tells how far this node's state may be behind its cluster:
// the last Raft index it applied, the highest leader commit index it has
// learned of, and behind, the time since it last had applied everything
// the leader had committed (about a probe interval, 250 ms, when it
// follows; 0 right after a probe on the leader). Streams served by the
// node report it to their clients, which move a stream to another node
// when it grows past their bound.
func (n *Node) Freshness() (appliedIndex, clusterIndex uint64, behind time.Duration) {
	applied := n.fsm.AppliedIndex()
	cluster, behind := n.fresh.status(applied, time.Now())
	return applied, cluster, behind
}
