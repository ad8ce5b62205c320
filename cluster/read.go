package cluster

import (
	"context"
	"fmt"

	"github.com/factstr/factstr-go/contract"
)

// Query answers from this node's state machine after the read barrier that
// ctx's read options ask for (linearizable by default).
func (n *Node) Query(ctx context.Context, q contract.EventQuery) (contract.QueryResult, error) {
	if n.closed.Load() {
		return contract.QueryResult{}, contract.ErrClosed
	}
	if err := contract.ValidateQueryLimits(q, n.cfg.Limits); err != nil {
		return contract.QueryResult{}, err
	}
	if err := n.ReadBarrier(ctx); err != nil {
		return contract.QueryResult{}, err
	}
	return n.store.Replica().QueryLimited(ctx, q, n.cfg.Limits.MaxQueryBytes)
}

// ReadBarrier waits until this node may answer a read made with ctx's read
// options: for a linearizable read, until its state machine applied a read
// index obtained from the leader; for a local read with a minimum sequence
// number, until it applied that far.
func (n *Node) ReadBarrier(ctx context.Context) error {
	ctx, cancel := withDefaultTimeout(ctx, n.cfg.ReadTimeout)
	defer cancel()
	opts := contract.ReadOptionsFrom(ctx)
	if opts.Consistency == contract.Local || n.cfg.UnsafeLocalReads {
		if opts.MinSequenceNumber == 0 {
			return nil
		}
		if _, err := n.store.Replica().Hub().WaitAtLeast(ctx, opts.MinSequenceNumber); err != nil {
			return fmt.Errorf("local read: this node has applied through sequence %d, waiting for %d: %w",
				n.store.Replica().Head(), opts.MinSequenceNumber, err)
		}
		return nil
	}
	if n.left.Load() {
		return ErrLeft
	}
	idx, err := n.reads.index(ctx)
	if err != nil {
		return err
	}
	if err := n.fsm.WaitApplied(ctx, idx); err != nil {
		return fmt.Errorf("%w: waiting for this node to apply read index %d (applied %d): %w",
			ErrNoLeader, idx, n.fsm.AppliedIndex(), err)
	}
	return nil
}

// StreamAll delivers every batch committed after the call returns.
func (n *Node) StreamAll(ctx context.Context, h contract.StreamHandler) (contract.Subscription, error) {
	return n.StreamTo(ctx, contract.EventQuery{}, h)
}

// StreamTo delivers the matching part of every batch committed after the
// call returns; with MinSequenceNumber > 0 it first catches up from there.
// Its start is a read: linearizable by default.
func (n *Node) StreamTo(ctx context.Context, q contract.EventQuery, h contract.StreamHandler) (contract.Subscription, error) {
	return n.streamTo(ctx, q, false, h)
}

// StreamCatchUp is StreamTo that catches up first even from 0: it delivers
// every matching batch after q.MinSequenceNumber (0: from the first), then
// continues live. A server uses it for a client that resumes a stream
// which began on an empty log.
func (n *Node) StreamCatchUp(ctx context.Context, q contract.EventQuery, h contract.StreamHandler) (contract.Subscription, error) {
	return n.streamTo(ctx, q, true, h)
}

func (n *Node) streamTo(ctx context.Context, q contract.EventQuery, catchUp bool, h contract.StreamHandler) (contract.Subscription, error) {
	if n.closed.Load() {
		return nil, contract.ErrClosed
	}
	if err := contract.ValidateQueryLimits(q, n.cfg.Limits); err != nil {
		return nil, err
	}
	if err := n.ReadBarrier(ctx); err != nil {
		return nil, err
	}
	if q.MinSequenceNumber > 0 {
		// A client resuming here from a position it saw elsewhere: never go
		// back in time, and say so when the position is past the log.
		if q.MinSequenceNumber > n.store.Replica().Head() {
			return nil, fmt.Errorf("%w: resume from %d requested, the committed log ends at %d", contract.ErrPositionAhead, q.MinSequenceNumber, n.store.Replica().Head())
		}
	}
	return n.engine.Live(ctx, q, catchUp, h)
}

// StreamAllDurable is StreamToDurable over every event.
func (n *Node) StreamAllDurable(ctx context.Context, name string, h contract.StreamHandler, opts ...contract.DurableOption) (contract.Subscription, error) {
	return n.StreamToDurable(ctx, name, contract.EventQuery{}, h, opts...)
}

// StreamToDurable replays from the name's cursor, then continues live. The
// name is leased through Raft, so one subscriber holds it cluster-wide.
func (n *Node) StreamToDurable(ctx context.Context, name string, q contract.EventQuery, h contract.StreamHandler, opts ...contract.DurableOption) (contract.Subscription, error) {
	if n.closed.Load() {
		return nil, contract.ErrClosed
	}
	return n.engine.Durable(ctx, name, q, h, contract.NewDurableOptions(opts...))
}
