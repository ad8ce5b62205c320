package cluster

import (
	"context"

	"github.com/factstr/factstr-go/boltstore"
	"github.com/factstr/factstr-go/fsm/command"
	"github.com/factstr/factstr-go/raftlog"
)

// ProposedOutcome is one command's outcome from ProposeTogether.
type ProposedOutcome struct {
	Result command.Result
	Index  uint64
	Err    error
}

// ProposeTogether queues cmds on n's proposer, each as a caller's group of
// its own, in one step, so that the proposer takes them as one batch (on a
// follower: one forwarded batch), and waits for every outcome.
func ProposeTogether(ctx context.Context, n *Node, cmds []command.Command) []ProposedOutcome {
	out := make([]ProposedOutcome, len(cmds))
	chans := make([]chan outcome, len(cmds))
	p := n.proposer
	p.mu.Lock()
	for i := range cmds {
		ch := make(chan outcome, 1)
		chans[i] = ch
		p.queue = append(p.queue, newGroup(cmds[i:i+1:i+1], false, func(res []command.Result, idx uint64, err error) {
			ch <- outcome{res, idx, err}
		}))
	}
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
	for i, ch := range chans {
		select {
		case o := <-ch:
			out[i] = ProposedOutcome{Index: o.idx, Err: o.err}
			if o.err == nil {
				out[i].Result = o.res[0]
			}
		case <-ctx.Done():
			out[i].Err = ctx.Err()
		}
	}
	return out
}

// Test hooks: what tests reach into, kept out of the package's API.

// Kill stops n abruptly, as a crash would: no leadership hand-over.
func Kill(n *Node) { n.kill() }

// Store is n's state machine store.
func Store(n *Node) *boltstore.Store { return n.store }

// RaftNetwork is n's Raft stream layer; tests cut n off with it.
func RaftNetwork(n *Node) *raftlog.PartitionableStreamLayer { return n.stores.Network }

// RaftFirstIndex is the first index still in n's Raft log (after compaction).
func RaftFirstIndex(n *Node) (uint64, error) { return n.stores.LogStore.FirstIndex() }

// VotingAllowed reports whether n takes part in elections.
func VotingAllowed(n *Node) bool { return n.votes.allowed() }

// VotesWithheld counts the vote requests n refused while not recognised.
func VotesWithheld(n *Node) uint64 { return n.votes.count.Load() }
