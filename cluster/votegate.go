package cluster

import (
	"log/slog"
	"sync/atomic"

	"github.com/factstr/factstr-go/boltstore"
	"github.com/factstr/factstr-go/raftlog"
)

// voteGate decides whether this node takes part in elections. A node takes
// part once it may be trusted with a vote: it kept its own Raft state,
// bootstrapped the cluster itself, or the replicated state records this
// data directory's incarnation for its id (the leader writes it when it
// adds the node). Until then the Raft transport's vote guard withholds its
// votes: it may be a wiped node that forgot a vote it cast.
type voteGate struct {
	store       *boltstore.Store
	nodeID      string
	incarnation string
	log         *slog.Logger

	may   atomic.Bool   // set once, never cleared
	count atomic.Uint64 // vote requests withheld so far
}

// guard is the vote guard's predicate. A node not yet recognised never
// campaigns, and grants a vote only to a candidate whose log holds nothing
// but the bootstrap configuration (index 1): that is a cluster forming
// for the first time, where nodes that saw a peer bootstrap first wait to
// be added and must still help elect the first leader. Once any leader has
// committed an entry, every candidate's log is longer, so a wiped node
// rejoining a running cluster is refused.
func (g *voteGate) guard(r raftlog.VoteRequest) bool {
	if g.allowed() {
		return true
	}
	return !r.Outgoing && r.LastLogIndex <= 1
}

// allowed reports whether this node is recognised (see voteGate).
func (g *voteGate) allowed() bool {
	if g.may.Load() {
		return true
	}
	recs, err := g.store.Replica().Incarnations()
	if err != nil || recs[g.nodeID] != g.incarnation {
		return false
	}
	g.log.Info("the cluster has recorded this data directory; taking part in elections")
	g.may.Store(true)
	return true
}

func (g *voteGate) withheld(kind string) {
	// One line per 64 withheld requests: candidates retry every election
	// timeout and would flood the log.
	if g.count.Add(1)%64 == 1 {
		g.log.Warn("withholding votes: this node's data directory is new to the cluster and not yet recorded by a leader; it may have lost a vote it cast before",
			"kind", kind, "withheld", g.count.Load(), "incarnation", g.incarnation)
	}
}
