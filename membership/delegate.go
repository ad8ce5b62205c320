package membership

import (
	"fmt"
	"time"

	"github.com/hashicorp/memberlist"
)

// delegate receives memberlist's callbacks. It is a separate type so that
// memberlist's interfaces do not become methods of Membership.
//
// memberlist calls NotifyJoin, NotifyUpdate, NotifyLeave, NotifyConflict and
// NotifyAlive while holding its node lock: they must not block and must not
// call back into memberlist.
type delegate struct {
	m *Membership
}

var (
	_ memberlist.Delegate         = (*delegate)(nil)
	_ memberlist.EventDelegate    = (*delegate)(nil)
	_ memberlist.ConflictDelegate = (*delegate)(nil)
	_ memberlist.AliveDelegate    = (*delegate)(nil)
	_ memberlist.MergeDelegate    = (*delegate)(nil)
)

// NodeMeta returns our encoded meta.
func (d *delegate) NodeMeta(limit int) []byte {
	m := d.m
	m.metaMu.Lock()
	buf := m.metaBuf
	m.metaMu.Unlock()
	if len(buf) > limit {
		// Validate keeps us under memberlist.MetaMaxSize, which is the
		// limit memberlist passes. memberlist panics on oversized meta;
		// gossiping none makes peers ignore us instead (NotifyAlive),
		// which is loud but survivable.
		m.logger.Error("node meta exceeds memberlist's limit; gossiping none", "bytes", len(buf), "limit", limit)
		return nil
	}
	return buf
}

// NotifyMsg, GetBroadcasts, LocalState and MergeRemoteState serve user
// messages and state, which we do not use: everything travels in the meta.
func (d *delegate) NotifyMsg([]byte)                           {}
func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (d *delegate) LocalState(join bool) []byte                { return nil }
func (d *delegate) MergeRemoteState(buf []byte, join bool)     {}

// NotifyAlive filters alive messages before memberlist accepts them. A node
// whose meta is not ours (another memberlist application on the same port,
// a broken build) or names a different node is kept out of the member list
// entirely, rather than showing up as a member we cannot use.
func (d *delegate) NotifyAlive(peer *memberlist.Node) error {
	meta, _, err := decodeMeta(peer.Meta)
	if err != nil {
		return err
	}
	if meta.NodeID != peer.Name {
		return fmt.Errorf("meta names node %q, but memberlist calls it %q", meta.NodeID, peer.Name)
	}
	return nil
}

// NotifyJoin: a node became alive, or this node itself at Create.
func (d *delegate) NotifyJoin(n *memberlist.Node) { d.m.observeAlive(n, EventJoin) }

// NotifyUpdate: an alive node's meta changed.
func (d *delegate) NotifyUpdate(n *memberlist.Node) { d.m.observeAlive(n, EventUpdate) }

// NotifyLeave: a node left or was declared dead; memberlist does not say
// which, so we use the "leaving" flag it gossiped before leaving.
func (d *delegate) NotifyLeave(n *memberlist.Node) { d.m.observeGone(n) }

// NotifyConflict: other claims existing's name from a different address
// while existing is alive (or dead for less than DeadNodeReclaimTime).
// memberlist keeps existing and ignores other.
func (d *delegate) NotifyConflict(existing, other *memberlist.Node) {
	d.m.observeConflict(existing, other)
}

// NotifyMerge is called with a peer's whole member list when a join
// push/pull with it completes, before the list is merged; it is the only
// place memberlist v0.7.0 fills in Node.State. We never refuse the merge
// (NotifyAlive filters single nodes); we use the list to learn whether the
// peer we contacted holds this node at its current address. If it does not
// (it still has our previous address, or has forgotten us), the join loop
// re-announces us until it does.
func (d *delegate) NotifyMerge(peers []*memberlist.Node) error {
	d.m.observeMerge(peers)
	return nil
}

func (m *Membership) observeMerge(peers []*memberlist.Node) {
	m.targetMu.Lock()
	target := m.joinTarget
	m.targetMu.Unlock()
	if target == "" {
		return // a peer is joining us; its view of us says nothing
	}
	fromTarget := false
	for _, p := range peers {
		if p.Address() == target {
			fromTarget = true
			break
		}
	}
	if !fromTarget {
		return // an inbound join that overlapped ours
	}
	self := m.LocalMember().Addr
	for _, p := range peers {
		if p.Name == m.name {
			if p.Address() == self && (p.State == memberlist.StateAlive || p.State == memberlist.StateSuspect) {
				return
			}
			m.logger.Debug("peer holds a stale entry for this node", "peer", target,
				"their_addr", p.Address(), "their_state", p.State, "our_addr", self)
			m.staleSelf.Store(true)
			return
		}
	}
	// The peer does not know us. Usual right after a first join (the peer
	// sends its state before merging ours); after a restart it means the
	// peer reaped our old entry and still has to accept the new one.
	m.staleSelf.Store(true)
}

// decodeNode turns a memberlist node into a Member. The meta was checked by
// NotifyAlive, so a decode error is unexpected; we keep the name then.
func (m *Membership) decodeNode(n *memberlist.Node, state State, now time.Time) (Member, bool) {
	meta, leaving, err := decodeMeta(n.Meta)
	if err != nil {
		m.logger.Error("cannot decode a member's meta", "member", n.Name, "error", err)
		meta = Meta{NodeID: n.Name}
	}
	return Member{Meta: meta, Addr: n.Address(), State: state, Since: now}, leaving
}

func (m *Membership) observeAlive(n *memberlist.Node, kind EventKind) {
	now := time.Now()
	member, leaving := m.decodeNode(n, StateAlive, now)

	m.mu.Lock()
	defer m.mu.Unlock()
	prev, known := m.members[n.Name]
	if known && kind == EventUpdate && prev.State == StateAlive {
		member.Since = prev.Since // still alive since then
	}
	if !known || prev.State != StateAlive {
		kind = EventJoin
	}
	m.members[n.Name] = &memberState{Member: member, leaving: leaving}
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
		m.logger.Warn("member came back with a new incarnation: its data directory was wiped or replaced",
			"member", n.Name, "addr", member.Addr, "old_incarnation", prev.Meta.Incarnation,
			"new_incarnation", member.Meta.Incarnation)
	}
	switch {
	case kind == EventJoin && n.Name != m.name:
		m.logger.Info("member joined", "member", n.Name, "addr", member.Addr, "incarnation", member.Meta.Incarnation,
			"cluster_id", member.Meta.ClusterID, "bootstrap_expect", member.Meta.BootstrapExpect)
	case kind == EventUpdate:
		m.logger.Debug("member updated", "member", n.Name, "addr", member.Addr, "cluster_id", member.Meta.ClusterID,
			"has_raft_state", member.Meta.HasRaftState, "leaving", leaving)
	}
	m.pruneLocked(now)
	m.publishLocked(ev)
	m.signalLocked()
}

func (m *Membership) observeGone(n *memberlist.Node) {
	now := time.Now()
	member, leaving := m.decodeNode(n, StateDead, now)

	m.mu.Lock()
	defer m.mu.Unlock()
	prev, known := m.members[n.Name]
	if known {
		leaving = leaving || prev.leaving
	}
	kind := EventFail
	if leaving {
		member.State, kind = StateLeft, EventLeave
	}
	m.members[n.Name] = &memberState{Member: member, leaving: leaving}

	ev := Event{Kind: kind, Member: member}
	if known {
		ev.Prev = prev.Meta
	}
	if kind == EventLeave {
		m.logger.Info("member left", "member", n.Name, "addr", member.Addr)
	} else {
		m.logger.Warn("member failed", "member", n.Name, "addr", member.Addr)
	}
	m.publishLocked(ev)
	m.signalLocked()
}

func (m *Membership) observeConflict(existing, other *memberlist.Node) {
	total := m.conflicts.Add(1)
	now := time.Now()
	m.lastConflict.Store(now.UnixNano())
	kept, _ := m.decodeNode(existing, StateAlive, now)
	rival, _ := m.decodeNode(other, StateAlive, now)
	self := existing.Name == m.name
	if self {
		// Someone gossips our name at another address. Usually it is our
		// own previous life (a restart with a new IP) that peers have not
		// yet declared dead; the join loop re-announces us so peers take
		// the new address as soon as they may (DeadNodeReclaimTime).
		m.staleSelf.Store(true)
	}

	m.mu.Lock()
	defer m.mu.Unlock()
	// memberlist reports a conflict for every alive message about the
	// claimant, many per second; log and publish at powers of two per
	// claimant.
	key := existing.Name + "|" + rival.Addr
	if len(m.conflictSeen) > 1024 {
		clear(m.conflictSeen)
	}
	m.conflictSeen[key]++
	if c := m.conflictSeen[key]; c&(c-1) != 0 {
		return
	}
	msg := "node ID conflict: two nodes claim the same NodeID; the second is ignored until the first is gone. If both are running, one is misconfigured"
	if self {
		msg = "node ID conflict: another address claims this node's NodeID; if this node was just restarted with a new address, it will be accepted once peers declare the old one dead"
	}
	m.logger.Error(msg, "node", existing.Name,
		"kept_addr", kept.Addr, "kept_incarnation", kept.Meta.Incarnation,
		"rejected_addr", rival.Addr, "rejected_incarnation", rival.Meta.Incarnation,
		"reports", m.conflictSeen[key], "conflicts_total", total)
	m.publishLocked(Event{Kind: EventConflict, Member: rival, Prev: kept.Meta})
}
