package raftlog

import (
	"errors"
	"sync"

	"github.com/hashicorp/raft"
)

// ErrVotingWithheld is returned for a vote or pre-vote request this node
// sends while its guard withholds voting.
var ErrVotingWithheld = errors.New("raftlog: this node may not take part in elections yet")

// VoteRequest is what the guard's predicate is asked about: a vote or
// pre-vote request a candidate sent to this node, or (Outgoing) one this
// node is about to send as a candidate.
type VoteRequest struct {
	Outgoing     bool
	PreVote      bool
	Term         uint64
	LastLogIndex uint64 // the candidate's (incoming only)
}

// VoteGuard wraps a NetworkTransport so that a node takes part in
// elections only as far as allow says: a refused incoming request is
// answered "not granted" without reaching Raft, a refused outgoing one
// fails, so the node never campaigns. Everything else (replication,
// snapshots, heartbeats, TimeoutNow) passes through.
//
// hashicorp/raft keeps a node's term and vote in its stable store; a node
// whose data directory was wiped has lost both and would grant a second
// vote in a term it already voted in, which can elect two leaders in one
// term. Raft itself cannot tell such a node from a new one, so the caller
// decides (cluster: until the replicated state records this data
// directory's incarnation for the node id).
type VoteGuard struct {
	*raft.NetworkTransport
	allow   func(VoteRequest) bool
	refused func(kind string)
	out     chan raft.RPC
	done    chan struct{}
	once    sync.Once
}

// GuardVotes wraps t. allow is called for every vote and pre-vote request,
// in and out, and must be cheap; refused (may be nil) is called for each
// one withheld, with "vote" or "pre-vote".
func GuardVotes(t *raft.NetworkTransport, allow func(VoteRequest) bool, refused func(kind string)) *VoteGuard {
	if refused == nil {
		refused = func(string) {}
	}
	g := &VoteGuard{NetworkTransport: t, allow: allow, refused: refused, out: make(chan raft.RPC), done: make(chan struct{})}
	go g.filter()
	return g
}

// filter answers withheld vote requests itself and hands everything else
// to Raft. A refusal carries term 0: a candidate only acts on a higher
// term than its own, so the answer changes nothing but the tally.
func (g *VoteGuard) filter() {
	in := g.NetworkTransport.Consumer()
	for {
		var rpc raft.RPC
		select {
		case rpc = <-in:
		case <-g.done:
			return
		}
		switch req := rpc.Command.(type) {
		case *raft.RequestVoteRequest:
			if !g.allow(VoteRequest{Term: req.Term, LastLogIndex: req.LastLogIndex}) {
				g.refused("vote")
				rpc.Respond(&raft.RequestVoteResponse{Granted: false}, nil)
				continue
			}
		case *raft.RequestPreVoteRequest:
			if !g.allow(VoteRequest{PreVote: true, Term: req.Term, LastLogIndex: req.LastLogIndex}) {
				g.refused("pre-vote")
				rpc.Respond(&raft.RequestPreVoteResponse{Granted: false}, nil)
				continue
			}
		}
		select {
		case g.out <- rpc:
		case <-g.done:
			return
		}
	}
}

// Consumer implements raft.Transport.
func (g *VoteGuard) Consumer() <-chan raft.RPC { return g.out }

// RequestVote implements raft.Transport: a withheld node never campaigns.
func (g *VoteGuard) RequestVote(id raft.ServerID, target raft.ServerAddress, args *raft.RequestVoteRequest, resp *raft.RequestVoteResponse) error {
	if !g.allow(VoteRequest{Outgoing: true, Term: args.Term}) {
		return ErrVotingWithheld
	}
	return g.NetworkTransport.RequestVote(id, target, args, resp)
}

// RequestPreVote implements raft.WithPreVote.
func (g *VoteGuard) RequestPreVote(id raft.ServerID, target raft.ServerAddress, args *raft.RequestPreVoteRequest, resp *raft.RequestPreVoteResponse) error {
	if !g.allow(VoteRequest{Outgoing: true, PreVote: true, Term: args.Term}) {
		return ErrVotingWithheld
	}
	return g.NetworkTransport.RequestPreVote(id, target, args, resp)
}

// Close implements raft.WithClose: it stops the filter and closes the
// transport. It may be called more than once.
func (g *VoteGuard) Close() error {
	g.once.Do(func() { close(g.done) })
	return g.NetworkTransport.Close()
}

// Compile-time proof that the guard keeps pre-vote and close support.
var (
	_ raft.WithPreVote = (*VoteGuard)(nil)
	_ raft.WithClose   = (*VoteGuard)(nil)
)
