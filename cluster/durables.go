package cluster

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/factstr/factstr-go/contract"
	"github.com/factstr/factstr-go/fsm/command"
	"github.com/factstr/factstr-go/internal/streams"
)

// raftDurables keeps durable cursors and name leases in the replicated
// state, so a cursor survives failover and a name is held once cluster-wide.
type raftDurables Node

func (d *raftDurables) node() *Node { return (*Node)(d) }

func (d *raftDurables) Acquire(ctx context.Context, name string, q contract.EventQuery, holder string, opts contract.DurableOptions) (streams.AcquireResult, error) {
	n := d.node()
	if err := d.clearOwnLeases(ctx); err != nil {
		return streams.AcquireResult{}, err
	}
	// The leader stamps the time; a start at the end is the head when the
	// entry applies, the same on every replica.
	res, idx, err := n.propose(ctx, []command.Command{command.Acquire{Name: name, Holder: holder, Query: q, Start: opts.Start, Failure: opts.Failure.Normalized()}})
	if err != nil {
		return streams.AcquireResult{}, err
	}
	if res[0].Err != nil {
		return streams.AcquireResult{}, res[0].Err
	}
	// Replay reads this node's state: it must include everything committed
	// up to the lease.
	if err := n.fsm.WaitApplied(ctx, idx); err != nil {
		return streams.AcquireResult{}, fmt.Errorf("wait for this node to apply the lease: %w", err)
	}
	// The policy recorded with the name, read here once the lease applied.
	failure, err := n.store.Replica().Failure(name)
	if err != nil {
		return streams.AcquireResult{}, err
	}
	return streams.AcquireResult{Cursor: res[0].Cursor, Created: res[0].Created, Failure: failure}, nil
}

func (d *raftDurables) Advance(ctx context.Context, name, holder string, cursor uint64) error {
	res, _, err := d.node().propose(ctx, []command.Command{command.Advance{Name: name, Holder: holder, Cursor: cursor}})
	if err != nil {
		return err
	}
	return res[0].Err
}

func (d *raftDurables) Release(ctx context.Context, name, holder string) error {
	res, _, err := d.node().propose(ctx, []command.Command{command.Release{Name: name, Holder: holder}})
	if err != nil {
		return err
	}
	return res[0].Err
}

// releaseOwnLeasesAtStart runs clearOwnLeases as soon as there is a leader.
// Waiting for this node's first durable subscription is not enough: a
// consumer that fails over to another node would find its name still held
// by this node's previous run, and when the node restarted faster than
// gossip declares a node failed, the leader never releases it either.
func (d *raftDurables) releaseOwnLeasesAtStart() {
	n := d.node()
	defer n.wg.Done()
	backoff := 100 * time.Millisecond
	for n.ctx.Err() == nil {
		if _, err := n.WaitLeader(n.ctx); err != nil {
			return
		}
		ctx, cancel := context.WithTimeout(n.ctx, n.cfg.ApplyTimeout)
		err := d.clearOwnLeases(ctx)
		cancel()
		if err == nil || errors.Is(err, ErrLeft) || errors.Is(err, contract.ErrClosed) {
			return
		}
		n.log.Debug("release leases of this node's previous run", "error", err)
		select {
		case <-n.ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

// clearOwnLeases releases, once per process, leases a previous run of this
// node held when it stopped (it cannot have released them if it crashed).
func (d *raftDurables) clearOwnLeases(ctx context.Context) error {
	n := d.node()
	if n.leasesCleared.Load() {
		return nil
	}
	n.leaseMu.Lock()
	defer n.leaseMu.Unlock()
	if n.leasesCleared.Load() {
		return nil
	}
	res, _, err := n.propose(ctx, []command.Command{command.ReleaseHolders{HolderPrefix: n.cfg.NodeID + "/"}})
	if err != nil {
		return fmt.Errorf("release leases of this node's previous run: %w", err)
	}
	if res[0].Err != nil {
		return res[0].Err
	}
	n.leasesCleared.Store(true)
	return nil
}

// DurableAdmin manages the node's durable stream names and their parked
// events (contract.DurableAdmin): reads are linearizable unless the ctx's
// read options say otherwise, and every change goes through the Raft log.
type DurableAdmin struct{ n *Node }

// DurableAdmin returns the node's durable stream management.
func (n *Node) DurableAdmin() *DurableAdmin { return &DurableAdmin{n: n} }

var _ contract.DurableAdmin = (*DurableAdmin)(nil)

// ListDurable returns every durable name (contract.DurableAdmin). It is a
// read: linearizable unless the ctx's read options say otherwise.
func (a *DurableAdmin) ListDurable(ctx context.Context) ([]contract.DurableInfo, error) {
	n := a.n
	if err := (*raftDurables)(n).read(ctx); err != nil {
		return nil, err
	}
	infos, err := n.store.Replica().DurableInfos("")
	if infos == nil && err == nil {
		infos = []contract.DurableInfo{}
	}
	return infos, err
}

// GetDurable returns one durable name (contract.DurableAdmin).
func (a *DurableAdmin) GetDurable(ctx context.Context, name string) (contract.DurableInfo, error) {
	n := a.n
	if err := contract.ValidateDurableName(name); err != nil {
		return contract.DurableInfo{}, err
	}
	if err := (*raftDurables)(n).read(ctx); err != nil {
		return contract.DurableInfo{}, err
	}
	infos, err := n.store.Replica().DurableInfos(name)
	if err != nil {
		return contract.DurableInfo{}, err
	}
	return infos[0], nil
}

func (d *raftDurables) read(ctx context.Context) error {
	n := d.node()
	if n.closed.Load() {
		return contract.ErrClosed
	}
	return n.ReadBarrier(ctx)
}

// ResetDurable moves name's cursor through the Raft log
// (contract.DurableAdmin); a forced reset takes the lease of its holder,
// wherever it runs.
func (a *DurableAdmin) ResetDurable(ctx context.Context, name string, to contract.StartPosition, force bool) (contract.DurableInfo, error) {
	n := a.n
	if err := contract.ValidateDurableName(name); err != nil {
		return contract.DurableInfo{}, err
	}
	if err := to.Validate(); err != nil {
		return contract.DurableInfo{}, err
	}
	idx, err := (*raftDurables)(n).proposeAdmin(ctx, command.ResetDurable{Name: name, To: to, Force: force})
	if err != nil {
		return contract.DurableInfo{}, err
	}
	if err := n.fsm.WaitApplied(ctx, idx); err != nil {
		return contract.DurableInfo{}, err
	}
	infos, err := n.store.Replica().DurableInfos(name)
	if err != nil {
		return contract.DurableInfo{}, err
	}
	return infos[0], nil
}

// DeleteDurable forgets name through the Raft log (contract.DurableAdmin).
func (a *DurableAdmin) DeleteDurable(ctx context.Context, name string, force bool) error {
	n := a.n
	if err := contract.ValidateDurableName(name); err != nil {
		return err
	}
	_, err := (*raftDurables)(n).proposeAdmin(ctx, command.DeleteDurable{Name: name, Force: force})
	return err
}

func (d *raftDurables) proposeAdmin(ctx context.Context, c command.Command) (uint64, error) {
	n := d.node()
	if n.closed.Load() {
		return 0, contract.ErrClosed
	}
	res, idx, err := n.propose(ctx, []command.Command{c})
	if err != nil {
		return 0, err
	}
	return idx, res[0].Err
}
