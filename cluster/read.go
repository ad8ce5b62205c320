package cluster

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	peerv1 "github.com/factstr/factstr-go/api/gen/factstr/peer/v1"
	"github.com/factstr/factstr-go/contract"
	"github.com/factstr/factstr-go/internal/streams"
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
	return n.store.QueryLimited(ctx, q, n.cfg.Limits.MaxQueryBytes)
}

// ReadBarrier waits until this node may answer a read made with ctx's read
// options: for a linearizable read, until its state machine applied a read
// index obtained from the leader; for a local read with a minimum sequence
// number, until it applied that far.
func (n *Node) ReadBarrier(ctx context.Context) error {
	ctx, cancel := n.withDefaultTimeout(ctx, n.cfg.ReadTimeout)
	defer cancel()
	opts := contract.ReadOptionsFrom(ctx)
	if opts.Consistency == contract.Local || n.cfg.UnsafeLocalReads {
		if opts.MinSequenceNumber == 0 {
			return nil
		}
		if _, err := n.store.Hub().WaitAtLeast(ctx, opts.MinSequenceNumber); err != nil {
			return fmt.Errorf("local read: this node has applied through sequence %d, waiting for %d: %w",
				n.store.Head(), opts.MinSequenceNumber, err)
		}
		return nil
	}
	if n.left.Load() {
		return ErrLeft
	}
	idx, err := n.readIndex(ctx)
	if err != nil {
		return err
	}
	if err := n.fsm.WaitApplied(ctx, idx); err != nil {
		return fmt.Errorf("%w: waiting for this node to apply read index %d (applied %d): %w",
			ErrNoLeader, idx, n.fsm.AppliedIndex(), err)
	}
	return nil
}

// readIndex returns a Raft index that, once applied locally, makes a read
// linearizable. It retries across leader changes until ctx ends.
func (n *Node) readIndex(ctx context.Context) (uint64, error) {
	backoff := 5 * time.Millisecond
	for {
		var idx uint64
		var err error
		if n.raft.State() == raft.Leader {
			idx, err = n.leaderRI.do(ctx)
		} else {
			idx, err = n.remoteRI.do(ctx)
		}
		if err == nil {
			return idx, nil
		}
		if errors.Is(err, contract.ErrClosed) {
			return 0, err
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("%w: no read index for a linearizable read: %w (last attempt: %v)", ErrNoLeader, ctx.Err(), err)
		case <-n.ctx.Done():
			return 0, contract.ErrClosed
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 100*time.Millisecond)
	}
}

// leaderReadIndexRound is one confirmation round on the leader, shared by
// every read that queued for it (etcd's linearizableReadLoop).
func (n *Node) leaderReadIndexRound(ctx context.Context) (uint64, error) {
	term := n.raft.CurrentTerm()
	if n.raft.State() != raft.Leader {
		return 0, ErrNotLeader
	}
	if n.readyTerm.Head() != term {
		// Wait, briefly, for the entry of this term to commit.
		wctx, cancel := context.WithTimeout(ctx, time.Second)
		_, err := n.readyTerm.WaitAtLeast(wctx, term)
		cancel()
		if err != nil || n.readyTerm.Head() != term {
			return 0, fmt.Errorf("%w: leader has not yet committed an entry in term %d", ErrNoLeader, term)
		}
	}
	// Read the index before confirming leadership: a commit index read after
	// VerifyLeader could include entries of a later term.
	idx := n.raft.CommitIndex()
	if err := n.raft.VerifyLeader().Error(); err != nil {
		return 0, fmt.Errorf("%w: %v", ErrNotLeader, err)
	}
	if n.raft.CurrentTerm() != term {
		return 0, fmt.Errorf("%w: term changed during read index", ErrNotLeader)
	}
	return idx, nil
}

// remoteReadIndexRound asks the leader for a read index, shared by every
// read on this follower that queued for it.
func (n *Node) remoteReadIndexRound(ctx context.Context) (uint64, error) {
	_, cl, err := n.leaderClient()
	if err != nil {
		return 0, err
	}
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	resp, err := cl.ReadIndex(rctx, &peerv1.ReadIndexRequest{FromNodeId: n.cfg.NodeID})
	if err != nil {
		return 0, peerError(err)
	}
	return resp.GetIndex(), nil
}

// coalescer shares read-index rounds between callers (etcd's
// linearizableReadLoop does the same): a caller joins the next round to
// start, never one already running, because its index must be taken after
// its read began. Up to maxRounds rounds run at once, so a caller arriving
// while a round is in flight starts the next one at once instead of
// waiting for the first to end; beyond that, callers gather and share.
type coalescer struct {
	round     func(context.Context) (uint64, error)
	maxRounds int

	mu      sync.Mutex
	waiting []chan roundResult
	running int
}

type roundResult struct {
	idx uint64
	err error
}

const readIndexRounds = 2

func newCoalescer(round func(context.Context) (uint64, error)) *coalescer {
	return &coalescer{round: round, maxRounds: readIndexRounds}
}

func (c *coalescer) do(ctx context.Context) (uint64, error) {
	ch := make(chan roundResult, 1)
	c.mu.Lock()
	c.waiting = append(c.waiting, ch)
	if c.running < c.maxRounds {
		c.running++
		batch := c.waiting
		c.waiting = nil
		go c.loop(batch)
	}
	c.mu.Unlock()
	select {
	case r := <-ch:
		return r.idx, r.err
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// loop runs a round for batch, then for whoever queued meanwhile, until
// nobody waits.
func (c *coalescer) loop(batch []chan roundResult) {
	for {
		// A round is bounded on its own: callers give up through their ctx.
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		idx, err := c.round(ctx)
		cancel()
		for _, ch := range batch {
			ch <- roundResult{idx, err}
		}
		c.mu.Lock()
		batch = c.waiting
		c.waiting = nil
		if len(batch) == 0 {
			c.running--
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
	}
}

// StreamAll delivers every batch committed after the call returns.
func (n *Node) StreamAll(ctx context.Context, h contract.StreamHandler) (contract.Subscription, error) {
	return n.StreamTo(ctx, contract.EventQuery{}, h)
}

// StreamTo delivers the matching part of every batch committed after the
// call returns; with MinSequenceNumber > 0 it first catches up from there.
// Its start is a read: linearizable by default.
func (n *Node) StreamTo(ctx context.Context, q contract.EventQuery, h contract.StreamHandler) (contract.Subscription, error) {
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
		if q.MinSequenceNumber > n.store.Head() {
			return nil, fmt.Errorf("%w: resume from %d requested, the committed log ends at %d", streams.ErrPositionAhead, q.MinSequenceNumber, n.store.Head())
		}
	}
	return n.engine.Live(ctx, q, h)
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
