package cluster

import (
	"context"
	"fmt"

	"github.com/factstr/factstr-go/contract"
	"github.com/factstr/factstr-go/fsm/command"
)

// EnsureGroup creates or checks a consumer group through the Raft log
// (streams.GroupDurables): a new group's partitions start at the cursor
// its start gives when the entry applies, the same on every replica.
func (d *raftDurables) EnsureGroup(ctx context.Context, name string, q contract.EventQuery, start contract.StartPosition, spec contract.GroupSpec) (bool, error) {
	n := d.node()
	if err := d.clearOwnLeases(ctx); err != nil {
		return false, err
	}
	res, idx, err := n.propose(ctx, []command.Command{command.EnsureGroup{Name: name, Query: q, Start: start, Spec: spec}})
	if err != nil {
		return false, err
	}
	if res[0].Err != nil {
		return false, res[0].Err
	}
	// The members' balance reads this node's state: it must hold the group.
	if err := n.fsm.WaitApplied(ctx, idx); err != nil {
		return false, fmt.Errorf("wait for this node to apply the group: %w", err)
	}
	return res[0].Created, nil
}

// GroupHolders reads a group's leases from this node's state: a member's
// balance may see them a moment late, and the acquire that follows
// decides (streams.GroupDurables).
func (d *raftDurables) GroupHolders(_ context.Context, name string) ([]string, []string, error) {
	n := d.node()
	if n.closed.Load() {
		return nil, nil, contract.ErrClosed
	}
	return n.store.Replica().GroupHolders(name)
}
