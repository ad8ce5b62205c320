package membership

import (
	"cmp"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// memberView is this node's view of the members and everyone listening to
// it: the members as the gossip delegate reports them, the channel that
// wakes waiters on every change (WaitBootstrap), and the Subscribe
// channels that get an Event per change.
//
// It is separate from Membership because it is plain state with rules of
// its own (which change is a join, an update, a leave or a failure; when a
// tombstone goes; that a full subscriber loses events rather than blocks),
// and none of them involve memberlist: it is fed decoded members, so it
// can be tested without a network.
//
// memberlist's callbacks call into it while holding memberlist's node lock,
// so nothing here may call memberlist, and nothing here blocks.
type memberView struct {
	self      string        // this node's NodeID: never forgotten
	tombstone time.Duration // how long Dead and Left members stay
	logger    *slog.Logger

	mu      sync.Mutex
	members map[string]*memberState
	subs    map[*subscription]struct{}
	changed chan struct{} // closed and replaced on every member change
	closed  bool          // Shutdown has closed the subscribers

	dropped atomic.Uint64 // events subscribers could not take
}

// memberState is a Member plus what we know about its intent to leave.
type memberState struct {
	Member
	leaving bool
}

func newMemberView(self string, tombstone time.Duration, logger *slog.Logger) *memberView {
	return &memberView{
		self:      self,
		tombstone: tombstone,
		logger:    logger,
		members:   make(map[string]*memberState),
		subs:      make(map[*subscription]struct{}),
		changed:   make(chan struct{}),
	}
}

// list returns every member, in NodeID order, after forgetting the
// tombstones that are due.
func (v *memberView) list() []Member {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.pruneLocked(time.Now())
	out := make([]Member, 0, len(v.members))
	for _, s := range v.members {
		out = append(out, s.Member)
	}
	slices.SortFunc(out, func(a, b Member) int { return cmp.Compare(a.Meta.NodeID, b.Meta.NodeID) })
	return out
}

// lookup returns the member named nodeID.
func (v *memberView) lookup(nodeID string) (Member, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	s, ok := v.members[nodeID]
	if !ok {
		return Member{}, false
	}
	return s.Member, true
}

// alone reports whether no other member is alive.
func (v *memberView) alone() bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	for name, s := range v.members {
		if name != v.self && s.State == StateAlive {
			return false
		}
	}
	return true
}

// changes returns a channel closed on the next change. Read the view
// after taking it, so a change in between is not missed.
func (v *memberView) changes() <-chan struct{} {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.changed
}

// alive records that member (memberlist's node name) is alive: kind is
// EventJoin for a node that became alive and EventUpdate for an alive node
// whose meta changed. A node that was not alive joins, whatever kind says.
func (v *memberView) alive(name string, member Member, leaving bool, kind EventKind) {
	now := member.Since
	v.mu.Lock()
	defer v.mu.Unlock()
	prev, known := v.members[name]
	if known && kind == EventUpdate && prev.State == StateAlive {
		member.Since = prev.Since // still alive since then
	}
	if !known || prev.State != StateAlive {
		kind = EventJoin
	}
	v.members[name] = &memberState{Member: member, leaving: leaving}
	if kind == EventUpdate && prev.Member == member {
		// Only the internal leaving flag changed; Meta as callers see it
		// did not, so there is nothing to report.
		return
	}

	ev := Event{Kind: kind, Member: member}
	if known {
		ev.Prev = prev.Meta
	}
	if ev.IncarnationChanged() {
		// The same NodeID with a new data directory: its Raft vote and term
		// are gone. The Raft layer must not treat it as the old server.
		v.logger.Warn("member came back with a new incarnation: its data directory was wiped or replaced",
			"member", name, "addr", member.Addr, "old_incarnation", prev.Meta.Incarnation,
			"new_incarnation", member.Meta.Incarnation)
	}
	switch {
	case kind == EventJoin && name != v.self:
		v.logger.Info("member joined", "member", name, "addr", member.Addr, "incarnation", member.Meta.Incarnation,
			"cluster_id", member.Meta.ClusterID, "bootstrap_expect", member.Meta.BootstrapExpect)
	case kind == EventUpdate:
		v.logger.Debug("member updated", "member", name, "addr", member.Addr, "cluster_id", member.Meta.ClusterID,
			"has_raft_state", member.Meta.HasRaftState, "leaving", leaving)
	}
	v.pruneLocked(now)
	v.publishLocked(ev)
	v.signalLocked()
}

// gone records that member (memberlist's node name) left or failed, as
// memberlist's NotifyLeave reports both: it left if it gossiped the
// leaving flag at any time before (leaving, or what the view kept), else
// it failed. member's State is set here.
func (v *memberView) gone(name string, member Member, leaving bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	prev, known := v.members[name]
	if known {
		leaving = leaving || prev.leaving
	}
	kind := EventFail
	member.State = StateDead
	if leaving {
		member.State, kind = StateLeft, EventLeave
	}
	v.members[name] = &memberState{Member: member, leaving: leaving}

	ev := Event{Kind: kind, Member: member}
	if known {
		ev.Prev = prev.Meta
	}
	if kind == EventLeave {
		v.logger.Info("member left", "member", name, "addr", member.Addr)
	} else {
		v.logger.Warn("member failed", "member", name, "addr", member.Addr)
	}
	v.publishLocked(ev)
	v.signalLocked()
}

// publish delivers an event that changes no member (a conflict).
func (v *memberView) publish(ev Event) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.publishLocked(ev)
}

// close closes every subscription and wakes every waiter, for Shutdown;
// later subscriptions get a closed channel.
func (v *memberView) close() {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.closed = true
	for s := range v.subs {
		close(s.ch)
	}
	clear(v.subs)
	v.signalLocked()
}

// signalLocked wakes everyone waiting for a member change. Callers hold mu.
func (v *memberView) signalLocked() {
	close(v.changed)
	v.changed = make(chan struct{})
}

// pruneLocked forgets Dead and Left members older than the tombstone
// timeout. This node is never forgotten. Callers hold mu.
func (v *memberView) pruneLocked(now time.Time) {
	for name, s := range v.members {
		if name != v.self && (s.State == StateDead || s.State == StateLeft) &&
			now.Sub(s.Since) > v.tombstone {
			delete(v.members, name)
		}
	}
}
