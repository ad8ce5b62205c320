package cluster

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	peerv1 "github.com/factstr/factstr-go/api/gen/factstr/peer/v1"
	"github.com/factstr/factstr-go/boltstore"
	"github.com/factstr/factstr-go/fsm/command"
	"github.com/factstr/factstr-go/internal/streams"
	"github.com/factstr/factstr-go/membership"
)

// leaderDuties is what a node does while it leads, besides serving: commit
// an entry of its own term before it serves linearizable reads, make the
// Raft configuration follow what gossip sees (add, promote, re-address,
// re-add wiped nodes), remove servers dead for too long, release durable
// leases of nodes that are gone, and prune idempotency keys. Everything it
// writes goes through Raft (apply), so a new leader picks up where the
// last one stopped.
type leaderDuties struct {
	cfg       Config
	log       *slog.Logger
	raft      *raft.Raft
	ml        *membership.Membership
	store     *boltstore.Store
	peers     *peerPool
	stamps    *stampWindow
	readyTerm *streams.Watermark // published once an entry of the term commits
	records   *memberRecords
	clusterID func() string
	// apply proposes leader-duty commands (Node.applyLocal).
	apply func([]command.Command) ([]command.Result, uint64, error)

	// maxVoters is the largest voter count seen while leading: the
	// dead-server cleanup floor when bootstrap-expect is 0.
	maxVoters atomic.Int64
}

// loop reacts to leadership: on gaining it, commit an entry of the new
// term before serving reads; while leading, prune idempotency keys and add
// and promote servers that gossip says are out there.
func (l *leaderDuties) loop(ctx context.Context, wg *sync.WaitGroup) {
	defer wg.Done()
	obs := l.raft.LeaderCh()
	stopLeading := func() {}
	defer func() { stopLeading() }()
	for {
		select {
		case <-ctx.Done():
			return
		case isLeader := <-obs:
			stopLeading()
			stopLeading = func() {}
			if isLeader {
				lctx, cancel := context.WithCancel(ctx)
				stopLeading = cancel
				wg.Add(1)
				go l.lead(lctx, wg)
			}
		}
	}
}

func (l *leaderDuties) lead(ctx context.Context, wg *sync.WaitGroup) {
	defer wg.Done()
	l.stamps.reset()
	term := l.raft.CurrentTerm()
	// The commit index of a new leader may lag writes the old leader
	// acknowledged until an entry of its own term commits (etcd#7331,
	// consul#2644). An FSM command, not a raft Barrier, is used because
	// barrier and no-op entries never reach the FSM, and followers wait for
	// their FSM's applied index to reach the read index.
	for {
		if ctx.Err() != nil {
			return
		}
		_, _, err := l.apply([]command.Command{command.Noop{}})
		if err == nil {
			break
		}
		if l.raft.State() != raft.Leader {
			return
		}
		l.log.Warn("leader barrier failed, retrying", "error", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
	l.readyTerm.Publish(term)
	l.log.Info("leader ready for linearizable reads", "term", term)
	l.reconcile(ctx)
}

// reconcile runs on the leader: it makes the Raft configuration follow what
// gossip sees (new nodes join as non-voters and are promoted once caught
// up; a known node at a new address is updated), releases durable leases of
// nodes that are gone, and prunes idempotency keys.
func (l *leaderDuties) reconcile(ctx context.Context) {
	events, unsub := l.ml.Subscribe()
	defer unsub()
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	r := &reconciler{caughtUpSince: map[string]time.Time{}}
	lastPrune := time.Time{}
	for {
		if l.raft.State() != raft.Leader {
			return
		}
		l.reconcileOnce(ctx, r)
		// Stamps of an idle leader count too: they bound the cut-off.
		l.stamps.observe(l.cfg.Clock().UTC())
		if time.Since(lastPrune) > min(time.Minute, l.cfg.IdempotencyRetention/4) {
			lastPrune = time.Now()
			// Keys are kept for the retention as measured by this leader's
			// monotonic clock, whatever the wall clock does (stampwindow.go).
			// Only when a key is due: an idle cluster writes no entries.
			if cutoff, ok := l.stamps.cutoff(); ok && l.idempotencyKeysDue(cutoff) {
				if _, _, err := l.apply([]command.Command{command.PruneIdempotency{Before: cutoff}}); err != nil {
					l.log.Debug("prune idempotency keys", "error", err)
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case ev := <-events:
			switch ev.Kind {
			case membership.EventLeave, membership.EventFail:
				// A pod that came back under the same id at a new address
				// may already hold new leases: release only if the id is
				// not alive again.
				if m, ok := l.ml.Lookup(ev.Member.Meta.NodeID); !ok || m.State != membership.StateAlive {
					l.releaseLeasesOf(ev.Member.Meta.NodeID)
				}
			case membership.EventConflict:
				l.log.Error("two nodes claim one node id; the second is ignored until it is stopped or renamed",
					"node_id", ev.Member.Meta.NodeID, "rejected_addr", ev.Member.Addr)
			}
		case <-tick.C:
		}
	}
}

func (l *leaderDuties) idempotencyKeysDue(cutoff time.Time) bool {
	due, err := l.store.Replica().HasIdempotencyKeysBefore(cutoff)
	return err == nil && due
}

func (l *leaderDuties) releaseLeasesOf(nodeID string) {
	if nodeID == "" || nodeID == l.cfg.NodeID {
		return
	}
	if _, _, err := l.apply([]command.Command{command.ReleaseHolders{HolderPrefix: nodeID + "/"}}); err != nil {
		l.log.Warn("release durable leases of a gone node", "peer", nodeID, "error", err)
		return
	}
	l.log.Info("released durable stream leases of a gone node", "peer", nodeID)
}

// reconciler is the leader's memory between reconcile rounds.
type reconciler struct {
	caughtUpSince map[string]time.Time
}

func (l *leaderDuties) reconcileOnce(ctx context.Context, r *reconciler) {
	l.records.mu.Lock()
	defer l.records.mu.Unlock()
	caughtUpSince := r.caughtUpSince
	if l.cfg.DeadServerCleanup > 0 {
		l.cleanupDeadServers()
	}
	cf := l.raft.GetConfiguration()
	if cf.Error() != nil {
		return
	}
	servers := map[string]raft.Server{}
	for _, s := range cf.Configuration().Servers {
		servers[string(s.ID)] = s
	}
	members, err := l.store.Replica().Members()
	if err != nil {
		return
	}
	if members[l.cfg.NodeID].Incarnation != l.records.incarnation {
		if err := l.records.recordIncarnation(l.cfg.NodeID, l.records.incarnation); err != nil {
			return
		}
	}
	for _, m := range l.ml.Members() {
		id := m.Meta.NodeID
		if id == "" || id == l.cfg.NodeID || m.State != membership.StateAlive || m.Meta.RaftAddr == "" {
			continue
		}
		if m.Meta.ClusterID != "" && l.clusterID() != "" && m.Meta.ClusterID != l.clusterID() {
			l.log.Warn("refusing to add a node of another cluster", "peer", id, "its_cluster", m.Meta.ClusterID, "our_cluster", l.clusterID())
			continue
		}
		s, known := servers[id]
		inc := m.Meta.Incarnation
		rec, has := members[id]
		sameDir := rec.Incarnation == inc || rec.Incarnation == unknownIncarnation
		if known && has && inc != "" && !sameDir {
			// A wiped node under a reused id has lost its vote and term.
			delete(caughtUpSince, id)
			l.records.reincarnate(id, inc, raft.ServerAddress(m.Meta.RaftAddr))
			continue
		}
		if !known && has && !rec.RemovedAt.IsZero() && sameDir && !m.Since.After(rec.RemovedAt) {
			// Removed by an operator, and neither restarted nor wiped
			// since: stay out. The record is replicated, so this holds
			// whoever leads, also after the removed node led itself.
			continue
		}
		if inc != "" && (rec.Incarnation != inc || !rec.RemovedAt.IsZero()) {
			// A new node is recorded before it is added; a server without
			// a record (one of the bootstrap voters) gets one now; a
			// removed node that came back is a member again.
			if err := l.records.recordIncarnation(id, inc); err != nil {
				l.log.Debug("record incarnation", "peer", id, "error", err)
				continue
			}
		}
		switch {
		case !known:
			l.log.Info("adding node as non-voter", "peer", id, "raft_addr", m.Meta.RaftAddr)
			if err := l.raft.AddNonvoter(raft.ServerID(id), raft.ServerAddress(m.Meta.RaftAddr), 0, 5*time.Second).Error(); err != nil {
				l.log.Warn("add non-voter", "peer", id, "error", err)
			}
		case string(s.Address) != m.Meta.RaftAddr:
			l.log.Info("updating node address", "peer", id, "old", s.Address, "new", m.Meta.RaftAddr)
			var f raft.IndexFuture
			if s.Suffrage == raft.Voter {
				f = l.raft.AddVoter(raft.ServerID(id), raft.ServerAddress(m.Meta.RaftAddr), 0, 5*time.Second)
			} else {
				f = l.raft.AddNonvoter(raft.ServerID(id), raft.ServerAddress(m.Meta.RaftAddr), 0, 5*time.Second)
			}
			if err := f.Error(); err != nil {
				l.log.Warn("update node address", "peer", id, "error", err)
			}
		case s.Suffrage == raft.Nonvoter:
			if l.caughtUp(ctx, m) {
				since, ok := caughtUpSince[id]
				if !ok {
					caughtUpSince[id] = time.Now()
					continue
				}
				if time.Since(since) >= l.cfg.PromoteAfter {
					l.log.Info("promoting caught-up non-voter to voter", "peer", id)
					if err := l.raft.AddVoter(raft.ServerID(id), s.Address, 0, 5*time.Second).Error(); err != nil {
						l.log.Warn("promote", "peer", id, "error", err)
					}
					delete(caughtUpSince, id)
				}
			} else {
				delete(caughtUpSince, id)
			}
		}
	}
}

// caughtUp asks a peer how far its state machine got.
func (l *leaderDuties) caughtUp(ctx context.Context, m membership.Member) bool {
	if m.Meta.GRPCAddr == "" {
		return false
	}
	c, err := l.peers.get(m.Meta.GRPCAddr)
	if err != nil {
		return false
	}
	rctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	st, err := peerv1.NewPeerServiceClient(c).NodeStatus(rctx, &peerv1.NodeStatusRequest{})
	if err != nil {
		return false
	}
	// It must have heard this leader over Raft (its term) and applied
	// from the log: in a young cluster whose commit index is below the
	// slack, a node that Raft traffic cannot reach (a TLS mismatch) would
	// otherwise count as caught up at index 0.
	const slack = 64 // entries; a busy leader keeps moving
	return st.GetTerm() == l.raft.CurrentTerm() && st.GetAppliedIndex() > 0 &&
		st.GetAppliedIndex()+slack >= l.raft.CommitIndex()
}

// cleanupDeadServers removes servers gossip has reported dead for longer
// than Config.DeadServerCleanup, one at a time and never below a quorum of
// the configured size (raft-autopilot's "never remove a majority" rule).
func (l *leaderDuties) cleanupDeadServers() {
	cf := l.raft.GetConfiguration()
	if cf.Error() != nil {
		return
	}
	servers := cf.Configuration().Servers
	voters := 0
	for _, s := range servers {
		if s.Suffrage == raft.Voter {
			voters++
		}
	}
	// The floor is a quorum of the size the cluster was configured for
	// (bootstrap-expect), or of its current size when that is unknown.
	// Without bootstrap-expect, the largest voter count seen stands in for
	// the configured size, so the floor never moves down as servers go.
	seen := int(l.maxVoters.Load())
	if voters > seen {
		l.maxVoters.Store(int64(voters))
		seen = voters
	}
	size := l.cfg.BootstrapExpect
	if size == 0 {
		size = seen
	}
	quorum := size/2 + 1
	for _, s := range servers {
		id := string(s.ID)
		if id == l.cfg.NodeID {
			continue
		}
		m, ok := l.ml.Lookup(id)
		if !ok || (m.State != membership.StateDead && m.State != membership.StateLeft) || time.Since(m.Since) < l.cfg.DeadServerCleanup {
			continue
		}
		if s.Suffrage == raft.Voter && voters-1 < quorum {
			l.log.Warn("dead server kept: removing it would go below a quorum of the configured size", "peer", id, "voters", voters)
			continue
		}
		l.log.Warn("removing a server that has been dead too long", "peer", id, "dead_since", m.Since)
		if err := l.raft.RemoveServer(s.ID, 0, 5*time.Second).Error(); err != nil {
			l.log.Warn("remove dead server", "peer", id, "error", err)
			return
		}
		l.releaseLeasesOf(id)
		return // one per round; the configuration changed
	}
}

// voterCount is the number of voters in r's latest configuration.
func voterCount(r *raft.Raft) int {
	f := r.GetConfiguration()
	if f.Error() != nil {
		return 0
	}
	c := 0
	for _, s := range f.Configuration().Servers {
		if s.Suffrage == raft.Voter {
			c++
		}
	}
	return c
}
