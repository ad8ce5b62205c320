package cluster

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	peerv1 "github.com/factstr/factstr-go/api/gen/factstr/peer/v1"
	"github.com/factstr/factstr-go/contract"
	"github.com/factstr/factstr-go/fsm/command"
	"github.com/factstr/factstr-go/internal/wire"
)

// The proposer turns concurrent commands into few Raft entries.
//
// Callers submit groups of commands. One goroutine takes every group queued
// so far, up to maxEntryCommands commands and maxEntryBytes bytes (a group
// is never split, and one larger than that goes alone), and proposes them as
// one Raft entry when this node leads, or sends them to the leader over the
// forward stream when it follows. On the leader raft.Apply blocks while
// Raft's leader loop is still writing the previous entry to the log: that
// wait is the pipelining, the next batch gathers meanwhile. A lone command
// on a quiet node is proposed at once; nothing waits on a timer (etcd's
// proposal loop and rqlite's queue make the same choice, without the
// timer rqlite adds).
//
// Every group's done is called exactly once, from the proposer's goroutines,
// and must not block.

const (
	// maxEntryCommands and maxEntryBytes bound one coalesced entry, well
	// below the Raft transport's and gRPC's message limits.
	maxEntryCommands = 1024
	maxEntryBytes    = 1 << 20
	// maxInflightEntries bounds the entries proposed on the leader whose
	// outcome is not known yet.
	maxInflightEntries = 256
)

// group is commands that share one outcome of Raft: a caller's command, or
// a batch a follower forwarded (its answer covers one entry).
type group struct {
	cmds []command.Command
	size int
	// localOnly groups are never forwarded: leader duties, and batches that
	// followers forwarded here (forwarding them on would chain hops).
	localOnly bool
	// gone, if set, reports that the caller stopped waiting: a group still
	// queued then is dropped instead of proposed, so a command its caller
	// gave up on does not take effect long after (a lease nobody holds).
	gone func() bool
	done func(res []command.Result, index uint64, err error)
}

func newGroup(cmds []command.Command, localOnly bool, done func([]command.Result, uint64, error)) *group {
	size := 0
	for _, c := range cmds {
		size += command.SizeHint(c)
	}
	return &group{cmds: cmds, size: size, localOnly: localOnly, done: done}
}

// inflightEntry is an entry handed to Raft whose future the completer waits
// for.
type inflightEntry struct {
	future raft.ApplyFuture
	groups []*group
	count  int
	slot   *watchedEntry // frees the entry's slot at commit or answer
}

type proposer struct {
	cfg    *Config
	raft   *raft.Raft
	stamps *stampWindow // the leader's stamps, for pruning idempotency keys
	fwd    *forwarder
	ctx    context.Context // the node's: ends when it closes

	// slots bounds the entries proposed and not yet committed on the
	// leader. While every slot is taken, commands gather in the queue, so
	// the next entry is larger and the Raft log (and every follower)
	// writes one entry per fsync instead of a train of small ones. A slot
	// is freed when its entry commits (commits), so the next entry's log
	// write overlaps the apply of the one before.
	slots   chan struct{}
	commits *commitWatch
	// fwdSlots bounds the batches a follower has forwarded and not yet
	// had answered. It is wider than slots: the leader coalesces what
	// followers forward into its own entries, so a follower that held
	// its commands back until the previous answer came would only add a
	// whole entry cycle to their wait.
	fwdSlots chan struct{}

	mu      sync.Mutex
	queue   []*group
	stopped bool
	wake    chan struct{}

	inflight chan inflightEntry
}

func newProposer(ctx context.Context, wg *sync.WaitGroup, cfg *Config, r *raft.Raft, stamps *stampWindow, commits *commitWatch,
	leaderClient func() (string, peerv1.PeerServiceClient, error)) *proposer {
	return &proposer{
		cfg:      cfg,
		commits:  commits,
		raft:     r,
		stamps:   stamps,
		ctx:      ctx,
		fwd:      &forwarder{cfg: cfg, raft: r, leaderClient: leaderClient, ctx: ctx, wg: wg},
		wake:     make(chan struct{}, 1),
		inflight: make(chan inflightEntry, maxInflightEntries),
		slots:    make(chan struct{}, cfg.MaxInflightProposals),
		fwdSlots: make(chan struct{}, cfg.MaxInflightForwards),
	}
}

// start runs the proposer until ctx ends; wg tracks its goroutines.
func (p *proposer) start(ctx context.Context, wg *sync.WaitGroup) {
	wg.Add(3)
	go func() {
		defer wg.Done()
		p.fwd.watch(ctx)
	}()
	go func() {
		defer wg.Done()
		p.run(ctx)
	}()
	go func() {
		defer wg.Done()
		p.complete()
	}()
}

// submit queues g. After the proposer stopped, g fails at once.
func (p *proposer) submit(g *group) {
	p.mu.Lock()
	if p.stopped {
		p.mu.Unlock()
		g.done(nil, 0, contract.ErrClosed)
		return
	}
	p.queue = append(p.queue, g)
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

func (p *proposer) queued() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.queue)
}

// take removes the next batch from the queue.
func (p *proposer) take() []*group {
	p.mu.Lock()
	defer p.mu.Unlock()
	n, cmds, bytes := 0, 0, 0
	for _, g := range p.queue {
		if n > 0 && (cmds+len(g.cmds) > maxEntryCommands || bytes+g.size > maxEntryBytes) {
			break
		}
		n++
		cmds += len(g.cmds)
		bytes += g.size
	}
	batch := make([]*group, 0, n)
	for _, g := range p.queue[:n] {
		if g.gone != nil && g.gone() {
			g.done(nil, 0, fmt.Errorf("%w: the caller stopped waiting before the command was proposed", ErrNoLeader))
			continue
		}
		batch = append(batch, g)
	}
	rest := copy(p.queue, p.queue[n:])
	clear(p.queue[rest:])
	p.queue = p.queue[:rest]
	return batch
}

func (p *proposer) run(ctx context.Context) {
	defer func() {
		close(p.inflight)
		p.fwd.close()
		p.mu.Lock()
		p.stopped = true
		queued := p.queue
		p.queue = nil
		p.mu.Unlock()
		for _, g := range queued {
			g.done(nil, 0, contract.ErrClosed)
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case <-p.wake:
		}
		for {
			// The role decides the window; a role that changes before the
			// batch goes out only makes this one batch use the other's.
			sem := p.slots
			if p.raft.State() != raft.Leader {
				sem = p.fwdSlots
			}
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			release := func() { <-sem }
			batch := p.take()
			if len(batch) == 0 {
				release()
				if p.queued() == 0 {
					break
				}
				continue // every group taken had been given up; more wait
			}
			p.dispatch(ctx, batch, release)
		}
	}
}

// dispatch sends batch on, holding one slot that the batch's answer
// releases.
func (p *proposer) dispatch(ctx context.Context, batch []*group, release func()) {
	if p.raft.State() == raft.Leader {
		p.proposeEntry(batch, release)
		return
	}
	var forward []*group
	for _, g := range batch {
		if g.localOnly {
			g.done(nil, 0, fmt.Errorf("%w: %s is no longer the leader", ErrNotLeader, p.cfg.NodeID))
			continue
		}
		forward = append(forward, g)
	}
	if len(forward) == 0 {
		release()
		return
	}
	p.fwd.send(ctx, forward, release)
}

// proposeEntry stamps the leader's clock on appends and proposes batch as
// one Raft entry. Appends are stamped here, whoever sent them: a follower's
// or a client's clock never reaches the log.
func (p *proposer) proposeEntry(batch []*group, release func()) {
	now := p.cfg.Clock().UTC()
	count := 0
	for _, g := range batch {
		count += len(g.cmds)
	}
	cmds := make([]command.Command, 0, count)
	stamped := false
	for _, g := range batch {
		for _, c := range g.cmds {
			var appended bool
			c, appended = stamp(c, now)
			stamped = stamped || appended
			cmds = append(cmds, c)
		}
	}
	if stamped {
		p.stamps.observe(now)
	}
	data := command.Encode(cmds)
	slot := p.commits.add(data, release)
	f := p.raft.Apply(data, p.cfg.ApplyTimeout)
	p.cfg.observePropose(ProposeEntry, len(batch), count)
	p.inflight <- inflightEntry{future: f, groups: batch, count: count, slot: slot}
}

// stamp returns c with the leader's clock now where its kind records a
// time: appended events (appended is true), and when a durable name was
// created, last acknowledged or parked, and a group created. Other kinds
// carry no time, or one the leader chose itself (pruning, removals).
func stamp(c command.Command, now time.Time) (_ command.Command, appended bool) {
	switch c := c.(type) {
	case command.Append:
		c.OccurredAt = now
		return c, true
	case command.AppendIf:
		c.OccurredAt = now
		return c, true
	case command.Acquire:
		c.OccurredAt = now
		return c, false
	case command.Advance:
		c.OccurredAt = now
		return c, false
	case command.Park:
		c.OccurredAt = now
		return c, false
	case command.EnsureGroup:
		c.OccurredAt = now
		return c, false
	}
	return c, false
}

// complete waits for the entries in the order they were proposed (Raft
// applies them in that order) and answers their groups.
func (p *proposer) complete() {
	for e := range p.inflight {
		res, idx, err := entryOutcome(e.future, e.count)
		p.commits.answered(e.slot)
		if err != nil {
			fail(e.groups, err)
			continue
		}
		for _, g := range e.groups {
			g.done(res[:len(g.cmds):len(g.cmds)], idx, nil)
			res = res[len(g.cmds):]
		}
	}
}

// entryOutcome maps an applied entry's future to its results, or to the
// errors callers branch on: ErrNotLeader when the entry never entered the
// log, ErrOutcomeUnknown when it may still commit.
func entryOutcome(f raft.ApplyFuture, count int) ([]command.Result, uint64, error) {
	if err := f.Error(); err != nil {
		switch {
		case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrEnqueueTimeout):
			return nil, 0, fmt.Errorf("%w: %v", ErrNotLeader, err)
		case errors.Is(err, raft.ErrRaftShutdown):
			return nil, 0, contract.ErrClosed
		default:
			// ErrLeadershipLost and anything else after enqueueing: the
			// entry may commit under the next leader.
			return nil, 0, fmt.Errorf("%w: %v", ErrOutcomeUnknown, err)
		}
	}
	switch r := f.Response().(type) {
	case []command.Result:
		if len(r) != count {
			return nil, 0, fmt.Errorf("state machine returned %d results for %d commands", len(r), count)
		}
		return r, f.Index(), nil
	case error:
		return nil, 0, r
	default:
		return nil, 0, fmt.Errorf("state machine returned %T", r)
	}
}

func fail(groups []*group, err error) {
	for _, g := range groups {
		g.done(nil, 0, err)
	}
}

// outcome is what one submitWait receives.
type outcome struct {
	res []command.Result
	idx uint64
	err error
}

// submitOnce submits cmds as one group and waits for its outcome or ctx. A
// ctx that ends first leaves the outcome unknown: the group may still
// commit.
func (p *proposer) submitOnce(ctx context.Context, cmds []command.Command, localOnly bool) ([]command.Result, uint64, error) {
	ch := make(chan outcome, 1)
	g := newGroup(cmds, localOnly, func(res []command.Result, idx uint64, err error) {
		ch <- outcome{res, idx, err}
	})
	g.gone = func() bool { return ctx.Err() != nil }
	p.submit(g)
	select {
	case o := <-ch:
		return o.res, o.idx, o.err
	case <-ctx.Done():
		return nil, 0, fmt.Errorf("%w: %w", ErrOutcomeUnknown, ctx.Err())
	}
}

// applyLocal proposes leader duties (the term's barrier, pruning, lease and
// incarnation records) on this node as leader; they are never forwarded.
func (p *proposer) applyLocal(cmds []command.Command) ([]command.Result, uint64, error) {
	ctx, cancel := context.WithTimeout(p.ctx, p.cfg.ApplyTimeout+time.Second)
	defer cancel()
	return p.submitOnce(ctx, cmds, true)
}

// acceptForwarded proposes a batch a follower forwarded and answers it
// once. The leader trusts nothing in it: every command is checked again
// against this node's limits, commands a client cannot cause are refused
// (each on its own: the other callers' commands in the batch go ahead),
// and appends are stamped with this leader's clock by the proposer.
func (p *proposer) acceptForwarded(req *peerv1.ForwardStreamRequest, answer func(*peerv1.ForwardStreamResponse), closed bool) {
	id := req.GetId()
	reply := func(err error) {
		st, _ := status.FromError(wire.ToPeerStatus(err))
		answer(&peerv1.ForwardStreamResponse{Id: id, Code: uint32(st.Code()), Message: st.Message()})
	}
	if closed {
		reply(contract.ErrClosed)
		return
	}
	if p.raft.State() != raft.Leader {
		_, leader := p.raft.LeaderWithID()
		reply(fmt.Errorf("%w: %s is not the leader (leader: %q)", ErrNotLeader, p.cfg.NodeID, leader))
		return
	}
	cmds, err := command.Decode(req.GetCommands())
	if err != nil {
		answer(&peerv1.ForwardStreamResponse{Id: id, Code: uint32(codes.InvalidArgument), Message: err.Error()})
		return
	}
	results := make([]command.Result, len(cmds))
	valid := make([]command.Command, 0, len(cmds))
	pos := make([]int, 0, len(cmds))
	for i, c := range cmds {
		c, err := checkForwarded(c, req.GetFromNodeId(), p.cfg.Limits)
		if err != nil {
			results[i].Err = err
			continue
		}
		valid = append(valid, c)
		pos = append(pos, i)
	}
	if len(valid) == 0 {
		answer(&peerv1.ForwardStreamResponse{Id: id, Results: command.EncodeResults(results)})
		return
	}
	p.submit(newGroup(valid, true, func(res []command.Result, idx uint64, err error) {
		if err != nil {
			reply(err)
			return
		}
		for j := range res {
			results[pos[j]] = res[j]
		}
		answer(&peerv1.ForwardStreamResponse{Id: id, Results: command.EncodeResults(results), Index: idx})
	}))
}
