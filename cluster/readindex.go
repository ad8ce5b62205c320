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
	"github.com/factstr/factstr-go/internal/wire"
)

// readIndex obtains read indexes (the Raft thesis, section 6.4): on the
// leader, a commit index confirmed by a round of heartbeats once an entry of
// the leader's own term has committed; on a follower, the same asked of the
// leader over the peer service. Rounds are shared between concurrent
// readers (coalescer). A reader then waits for its state machine to apply
// the index; that part belongs to the Node (ReadBarrier).
type readIndex struct {
	raft   *raft.Raft
	nodeID string
	// readyTerm is the highest term in which this node, as leader,
	// committed an entry of its own (the leader duties publish it).
	readyTerm *streams.Watermark
	// leaderClient dials the current leader's peer service.
	leaderClient func() (string, peerv1.PeerServiceClient, error)
	done         <-chan struct{} // closed when the node closes

	leader *coalescer // rounds when this node leads
	remote *coalescer // requests to the leader when it follows
}

func newReadIndex(r *raft.Raft, nodeID string, readyTerm *streams.Watermark,
	leaderClient func() (string, peerv1.PeerServiceClient, error), done <-chan struct{}) *readIndex {
	ri := &readIndex{raft: r, nodeID: nodeID, readyTerm: readyTerm, leaderClient: leaderClient, done: done}
	ri.leader = newCoalescer(ri.leaderRound)
	ri.remote = newCoalescer(ri.remoteRound)
	return ri
}

// index returns a Raft index that, once applied locally, makes a read
// linearizable. It retries across leader changes until ctx ends.
func (r *readIndex) index(ctx context.Context) (uint64, error) {
	backoff := 5 * time.Millisecond
	for {
		var idx uint64
		var err error
		if r.raft.State() == raft.Leader {
			idx, err = r.leader.do(ctx)
		} else {
			idx, err = r.remote.do(ctx)
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
		case <-r.done:
			return 0, contract.ErrClosed
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 100*time.Millisecond)
	}
}

// leaderRound is one confirmation round on the leader, shared by
// every read that queued for it (etcd's linearizableReadLoop).
func (r *readIndex) leaderRound(ctx context.Context) (uint64, error) {
	term := r.raft.CurrentTerm()
	if r.raft.State() != raft.Leader {
		return 0, ErrNotLeader
	}
	if r.readyTerm.Value() != term {
		// Wait, briefly, for the entry of this term to commit.
		wctx, cancel := context.WithTimeout(ctx, time.Second)
		_, err := r.readyTerm.WaitAtLeast(wctx, term)
		cancel()
		if err != nil || r.readyTerm.Value() != term {
			return 0, fmt.Errorf("%w: leader has not yet committed an entry in term %d", ErrNoLeader, term)
		}
	}
	// Read the index before confirming leadership: a commit index read after
	// VerifyLeader could include entries of a later term.
	idx := r.raft.CommitIndex()
	if err := r.raft.VerifyLeader().Error(); err != nil {
		return 0, fmt.Errorf("%w: %v", ErrNotLeader, err)
	}
	if r.raft.CurrentTerm() != term {
		return 0, fmt.Errorf("%w: term changed during read index", ErrNotLeader)
	}
	return idx, nil
}

// remoteRound asks the leader for a read index, shared by every
// read on this follower that queued for it.
func (r *readIndex) remoteRound(ctx context.Context) (uint64, error) {
	_, cl, err := r.leaderClient()
	if err != nil {
		return 0, err
	}
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	resp, err := cl.ReadIndex(rctx, &peerv1.ReadIndexRequest{FromNodeId: r.nodeID})
	if err != nil {
		return 0, wire.FromPeerStatus(err)
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
