package cluster

import (
	"log/slog"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/factstr/factstr-go/boltstore"
	"github.com/factstr/factstr-go/fsm/command"
	"github.com/factstr/factstr-go/membership"
)

// memberRecords writes the leader's membership records into the replicated
// state: each server's incarnation (the random id of its data directory)
// and operator removals. Only the leader proposes them.
//
// A node's data directory carries a random incarnation id (membership's
// IncarnationFile), gossiped with the node. The leader records each
// server's incarnation in the replicated state, so whichever node leads
// next knows it too: a server whose gossiped incarnation differs from the
// record had its directory wiped and lost its Raft term and vote. Such a
// server is removed and re-added as a non-voter, and the node itself takes
// no part in elections (voteGate) until the record names its new
// incarnation. Keeping the record in leader memory alone is not enough: a
// leader elected after the node came back would take the new incarnation
// for the only one.
type memberRecords struct {
	store       *boltstore.Store
	ml          *membership.Membership
	raft        *raft.Raft
	nodeID      string
	incarnation string
	log         *slog.Logger
	// apply proposes leader-duty commands (Node.applyLocal).
	apply func([]command.Command) ([]command.Result, uint64, error)

	// mu serialises the leader's membership decisions: a reconcile round
	// reads the member records and then writes some, and an operator's
	// Remove writing a removal in between would be overwritten (and the
	// removed node added back).
	mu sync.Mutex
}

// unknownIncarnation stands in the record of a node removed before any
// incarnation of it was known: any data directory counts as its own.
const unknownIncarnation = "-"

// recordRemoval marks id as removed by an operator (leader only), keeping
// its incarnation: the reconcile loop of any later leader leaves it out
// until it restarts or comes back with another data directory.
func (m *memberRecords) recordRemoval(id string) error {
	members, err := m.store.Replica().Members()
	if err != nil {
		return err
	}
	inc := members[id].Incarnation
	if id == m.nodeID {
		inc = m.incarnation
	} else if mem, ok := m.ml.Lookup(id); ok && mem.Meta.Incarnation != "" && inc == "" {
		inc = mem.Meta.Incarnation
	}
	if inc == "" {
		inc = unknownIncarnation
	}
	_, _, err = m.apply([]command.Command{command.SetIncarnation{Node: id, Incarnation: inc, RemovedAt: time.Now().UTC()}})
	return err
}

// recordIncarnation proposes id's incarnation (leader only).
func (m *memberRecords) recordIncarnation(id, incarnation string) error {
	_, _, err := m.apply([]command.Command{command.SetIncarnation{Node: id, Incarnation: incarnation}})
	return err
}

// reincarnate replaces a server whose data directory changed: out of the
// configuration, record the new incarnation, back in as a non-voter (the
// reconcile loop promotes it once it has caught up).
func (m *memberRecords) reincarnate(id, incarnation string, addr raft.ServerAddress) {
	m.log.Warn("node came back with a new data directory; re-adding it as a non-voter", "peer", id, "incarnation", incarnation)
	if err := m.raft.RemoveServer(raft.ServerID(id), 0, 5*time.Second).Error(); err != nil {
		m.log.Warn("remove re-incarnated node", "peer", id, "error", err)
		return
	}
	if err := m.recordIncarnation(id, incarnation); err != nil {
		m.log.Warn("record incarnation", "peer", id, "error", err)
		return
	}
	if err := m.raft.AddNonvoter(raft.ServerID(id), addr, 0, 5*time.Second).Error(); err != nil {
		m.log.Warn("re-add node as non-voter", "peer", id, "error", err)
	}
}
