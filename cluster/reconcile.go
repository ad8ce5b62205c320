package cluster

import (
	"context"
	"time"

	"github.com/hashicorp/raft"

	peerv1 "github.com/factstr/factstr-go/api/gen/factstr/peer/v1"
	"github.com/factstr/factstr-go/boltstore"
	"github.com/factstr/factstr-go/membership"
)

// reconcile runs on the leader: it makes the Raft configuration follow what
// gossip sees (new nodes join as non-voters and are promoted once caught
// up; a known node at a new address is updated), releases durable leases of
// nodes that are gone, and prunes idempotency keys.
func (n *Node) reconcile(ctx context.Context) {
	events, unsub := n.ml.Subscribe()
	defer unsub()
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	r := &reconciler{caughtUpSince: map[string]time.Time{}}
	lastPrune := time.Time{}
	for {
		if n.raft.State() != raft.Leader {
			return
		}
		n.reconcileOnce(ctx, r)
		// Stamps of an idle leader count too: they bound the cut-off.
		n.stamps.observe(n.cfg.Clock().UTC())
		if time.Since(lastPrune) > min(time.Minute, n.cfg.IdempotencyRetention/4) {
			lastPrune = time.Now()
			// Keys are kept for the retention as measured by this leader's
			// monotonic clock, whatever the wall clock does (stampwindow.go).
			// Only when a key is due: an idle cluster writes no entries.
			if cutoff, ok := n.stamps.cutoff(); ok && n.idempotencyKeysDue(cutoff) {
				if _, _, err := n.applyLocal([]boltstore.Command{{Op: boltstore.OpPruneIdempotency, OccurredAt: cutoff}}); err != nil {
					n.log.Debug("prune idempotency keys", "error", err)
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
				if m, ok := n.ml.Lookup(ev.Member.Meta.NodeID); !ok || m.State != membership.StateAlive {
					n.releaseLeasesOf(ev.Member.Meta.NodeID)
				}
			case membership.EventConflict:
				n.log.Error("two nodes claim one node id; the second is ignored until it is stopped or renamed",
					"node_id", ev.Member.Meta.NodeID, "rejected_addr", ev.Member.Addr)
			}
		case <-tick.C:
		}
	}
}

func (n *Node) idempotencyKeysDue(cutoff time.Time) bool {
	due, err := n.store.HasIdempotencyKeysBefore(cutoff)
	return err == nil && due
}

func (n *Node) releaseLeasesOf(nodeID string) {
	if nodeID == "" || nodeID == n.cfg.NodeID {
		return
	}
	if _, _, err := n.applyLocal([]boltstore.Command{{Op: boltstore.OpReleaseHolders, Holder: nodeID + "/"}}); err != nil {
		n.log.Warn("release durable leases of a gone node", "peer", nodeID, "error", err)
		return
	}
	n.log.Info("released durable stream leases of a gone node", "peer", nodeID)
}

// reconciler is the leader's memory between reconcile rounds.
type reconciler struct {
	caughtUpSince map[string]time.Time
}

func (n *Node) reconcileOnce(ctx context.Context, r *reconciler) {
	n.memberMu.Lock()
	defer n.memberMu.Unlock()
	caughtUpSince := r.caughtUpSince
	if n.cfg.DeadServerCleanup > 0 {
		n.cleanupDeadServers()
	}
	cf := n.raft.GetConfiguration()
	if cf.Error() != nil {
		return
	}
	servers := map[string]raft.Server{}
	for _, s := range cf.Configuration().Servers {
		servers[string(s.ID)] = s
	}
	members, err := n.store.Members()
	if err != nil {
		return
	}
	if members[n.cfg.NodeID].Incarnation != n.incarnation {
		if err := n.recordIncarnation(n.cfg.NodeID, n.incarnation); err != nil {
			return
		}
	}
	for _, m := range n.ml.Members() {
		id := m.Meta.NodeID
		if id == "" || id == n.cfg.NodeID || m.State != membership.StateAlive || m.Meta.RaftAddr == "" {
			continue
		}
		if m.Meta.ClusterID != "" && n.ClusterID() != "" && m.Meta.ClusterID != n.ClusterID() {
			n.log.Warn("refusing to add a node of another cluster", "peer", id, "its_cluster", m.Meta.ClusterID, "our_cluster", n.ClusterID())
			continue
		}
		s, known := servers[id]
		inc := m.Meta.Incarnation
		rec, has := members[id]
		sameDir := rec.Incarnation == inc || rec.Incarnation == unknownIncarnation
		if known && has && inc != "" && !sameDir {
			// A wiped node under a reused id has lost its vote and term.
			delete(caughtUpSince, id)
			n.reincarnate(id, inc, raft.ServerAddress(m.Meta.RaftAddr))
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
			if err := n.recordIncarnation(id, inc); err != nil {
				n.log.Debug("record incarnation", "peer", id, "error", err)
				continue
			}
		}
		switch {
		case !known:
			n.log.Info("adding node as non-voter", "peer", id, "raft_addr", m.Meta.RaftAddr)
			if err := n.raft.AddNonvoter(raft.ServerID(id), raft.ServerAddress(m.Meta.RaftAddr), 0, 5*time.Second).Error(); err != nil {
				n.log.Warn("add non-voter", "peer", id, "error", err)
			}
		case string(s.Address) != m.Meta.RaftAddr:
			n.log.Info("updating node address", "peer", id, "old", s.Address, "new", m.Meta.RaftAddr)
			var f raft.IndexFuture
			if s.Suffrage == raft.Voter {
				f = n.raft.AddVoter(raft.ServerID(id), raft.ServerAddress(m.Meta.RaftAddr), 0, 5*time.Second)
			} else {
				f = n.raft.AddNonvoter(raft.ServerID(id), raft.ServerAddress(m.Meta.RaftAddr), 0, 5*time.Second)
			}
			if err := f.Error(); err != nil {
				n.log.Warn("update node address", "peer", id, "error", err)
			}
		case s.Suffrage == raft.Nonvoter:
			if n.caughtUp(ctx, m) {
				since, ok := caughtUpSince[id]
				if !ok {
					caughtUpSince[id] = time.Now()
					continue
				}
				if time.Since(since) >= n.cfg.PromoteAfter {
					n.log.Info("promoting caught-up non-voter to voter", "peer", id)
					if err := n.raft.AddVoter(raft.ServerID(id), s.Address, 0, 5*time.Second).Error(); err != nil {
						n.log.Warn("promote", "peer", id, "error", err)
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
func (n *Node) caughtUp(ctx context.Context, m membership.Member) bool {
	if m.Meta.GRPCAddr == "" {
		return false
	}
	c, err := n.peers.get(m.Meta.GRPCAddr)
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
	return st.GetTerm() == n.raft.CurrentTerm() && st.GetAppliedIndex() > 0 &&
		st.GetAppliedIndex()+slack >= n.raft.CommitIndex()
}

// NodeStatus reports this node's progress.
func (p *peerServer) NodeStatus(_ context.Context, _ *peerv1.NodeStatusRequest) (*peerv1.NodeStatusResponse, error) {
	n := p.n
	return &peerv1.NodeStatusResponse{
		NodeId:             n.cfg.NodeID,
		State:              n.raft.State().String(),
		Term:               n.raft.CurrentTerm(),
		CommitIndex:        n.raft.CommitIndex(),
		AppliedIndex:       n.fsm.AppliedIndex(),
		HeadSequenceNumber: n.store.Head(),
		LeaderId:           n.LeaderID(),
		Incarnation:        n.incarnation,
		ClusterId:          n.ClusterID(),
	}, nil
}

// cleanupDeadServers removes servers gossip has reported dead for longer
// than Config.DeadServerCleanup, one at a time and never below a quorum of
// the configured size (raft-autopilot's "never remove a majority" rule).
func (n *Node) cleanupDeadServers() {
	cf := n.raft.GetConfiguration()
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
	seen := int(n.maxVoters.Load())
	if voters > seen {
		n.maxVoters.Store(int64(voters))
		seen = voters
	}
	size := n.cfg.BootstrapExpect
	if size == 0 {
		size = seen
	}
	quorum := size/2 + 1
	for _, s := range servers {
		id := string(s.ID)
		if id == n.cfg.NodeID {
			continue
		}
		m, ok := n.ml.Lookup(id)
		if !ok || (m.State != membership.StateDead && m.State != membership.StateLeft) || time.Since(m.Since) < n.cfg.DeadServerCleanup {
			continue
		}
		if s.Suffrage == raft.Voter && voters-1 < quorum {
			n.log.Warn("dead server kept: removing it would go below a quorum of the configured size", "peer", id, "voters", voters)
			continue
		}
		n.log.Warn("removing a server that has been dead too long", "peer", id, "dead_since", m.Since)
		if err := n.raft.RemoveServer(s.ID, 0, 5*time.Second).Error(); err != nil {
			n.log.Warn("remove dead server", "peer", id, "error", err)
			return
		}
		n.releaseLeasesOf(id)
		return // one per round; the configuration changed
	}
}
