package cluster

import (
	"time"

	"github.com/hashicorp/raft"

	"github.com/factstr/factstr-go/boltstore"
	"github.com/factstr/factstr-go/raftlog"
)

// A node's data directory carries a random incarnation id (membership's
// IncarnationFile), gossiped with the node. The leader records each
// server's incarnation in the replicated state, so whichever node leads
// next knows it too: a server whose gossiped incarnation differs from the
// record had its directory wiped and lost its Raft term and vote. Such a
// server is removed and re-added as a non-voter, and the node itself takes
// no part in elections (raftlog.VoteGuard) until the record names its new
// incarnation. Keeping the record in leader memory alone is not enough: a
// leader elected after the node came back would take the new incarnation
// for the only one.

// guardVote is the vote guard's predicate. A node not yet recognised never
// campaigns, and grants a vote only to a candidate whose log holds nothing
// but the bootstrap configuration (index 1): that is a cluster forming
// for the first time, where nodes that saw a peer bootstrap first wait to
// be added and must still help elect the first leader. Once any leader has
// committed an entry, every candidate's log is longer, so a wiped node
// rejoining a running cluster is refused.
func (n *Node) guardVote(r raftlog.VoteRequest) bool {
	if n.allowVoting() {
		return true
	}
	return !r.Outgoing && r.LastLogIndex <= 1
}

// allowVoting reports whether this node is recognised (see mayVote).
func (n *Node) allowVoting() bool {
	if n.mayVote.Load() {
		return true
	}
	recs, err := n.store.Incarnations()
	if err != nil || recs[n.cfg.NodeID] != n.incarnation {
		return false
	}
	n.log.Info("the cluster has recorded this data directory; taking part in elections")
	n.mayVote.Store(true)
	return true
}

func (n *Node) voteWithheld(kind string) {
	// One line per 64 withheld requests: candidates retry every election
	// timeout and would flood the log.
	if n.votesWithheld.Add(1)%64 == 1 {
		n.log.Warn("withholding votes: this node's data directory is new to the cluster and not yet recorded by a leader; it may have lost a vote it cast before",
			"kind", kind, "withheld", n.votesWithheld.Load(), "incarnation", n.incarnation)
	}
}

// VotingAllowed reports whether this node takes part in elections (see
// allowVoting); VotesWithheld counts vote requests refused meanwhile.
func (n *Node) VotingAllowed() bool   { return n.allowVoting() }
func (n *Node) VotesWithheld() uint64 { return n.votesWithheld.Load() }

// unknownIncarnation stands in the record of a node removed before any
// incarnation of it was known: any data directory counts as its own.
const unknownIncarnation = "-"

// recordRemoval marks id as removed by an operator (leader only), keeping
// its incarnation: the reconcile loop of any later leader leaves it out
// until it restarts or comes back with another data directory.
func (n *Node) recordRemoval(id string) error {
	members, err := n.store.Members()
	if err != nil {
		return err
	}
	inc := members[id].Incarnation
	if id == n.cfg.NodeID {
		inc = n.incarnation
	} else if m, ok := n.ml.Lookup(id); ok && m.Meta.Incarnation != "" && inc == "" {
		inc = m.Meta.Incarnation
	}
	if inc == "" {
		inc = unknownIncarnation
	}
	_, _, err = n.applyLocal([]boltstore.Command{{Op: boltstore.OpSetIncarnation, Name: id, Holder: inc, OccurredAt: time.Now().UTC()}})
	return err
}

// recordIncarnation proposes id's incarnation (leader only).
func (n *Node) recordIncarnation(id, incarnation string) error {
	_, _, err := n.applyLocal([]boltstore.Command{{Op: boltstore.OpSetIncarnation, Name: id, Holder: incarnation}})
	return err
}

// reincarnate replaces a server whose data directory changed: out of the
// configuration, record the new incarnation, back in as a non-voter (the
// reconcile loop promotes it once it has caught up).
func (n *Node) reincarnate(id, incarnation string, addr raft.ServerAddress) {
	n.log.Warn("node came back with a new data directory; re-adding it as a non-voter", "peer", id, "incarnation", incarnation)
	if err := n.raft.RemoveServer(raft.ServerID(id), 0, 5*time.Second).Error(); err != nil {
		n.log.Warn("remove re-incarnated node", "peer", id, "error", err)
		return
	}
	if err := n.recordIncarnation(id, incarnation); err != nil {
		n.log.Warn("record incarnation", "peer", id, "error", err)
		return
	}
	if err := n.raft.AddNonvoter(raft.ServerID(id), addr, 0, 5*time.Second).Error(); err != nil {
		n.log.Warn("re-add node as non-voter", "peer", id, "error", err)
	}
}
