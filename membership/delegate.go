package membership

import (
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// delegate receives memberlist's callbacks and turns them into what this
// package knows: it hands memberlist the local meta, keeps out nodes that
// are not ours, feeds the member view decoded members, counts conflicts,
// and judges from a joined peer's member list whether that peer holds this
// node's current address.
//
// It is separate from Membership so that memberlist's interfaces do not
// become Membership's methods, and so that the callbacks reach only the
// parts they may touch: it holds no Membership and cannot call memberlist.
//
// memberlist calls NotifyJoin, NotifyUpdate, NotifyLeave, NotifyConflict and
// NotifyAlive while holding its node lock: they must not block and must not
// call back into memberlist.
type delegate struct {
	self      string // this node's NodeID
	logger    *slog.Logger
	meta      *localMeta
	view      *memberView
	conflicts *conflictLog

	// target is the address a join round is contacting now ("": none),
	// set by the join loop, so NotifyMerge can tell that peer's member
	// list from an inbound join's.
	targetMu sync.Mutex
	target   string
	// staleSelf: a peer may not hold this node's current address, so the
	// join loop should re-announce it (see reannounce in join.go).
	staleSelf atomic.Bool
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
	buf := d.meta.encoded()
	if len(buf) > limit {
		// Validate keeps us under memberlist.MetaMaxSize, which is the
		// limit memberlist passes. memberlist panics on oversized meta;
		// gossiping none makes peers ignore us instead (NotifyAlive),
		// which is loud but survivable.
		d.logger.Error("node meta exceeds memberlist's limit; gossiping none", "bytes", len(buf), "limit", limit)
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
func (d *delegate) NotifyJoin(n *memberlist.Node) {
	member, leaving := d.decodeNode(n, StateAlive, time.Now())
	d.view.alive(n.Name, member, leaving, EventJoin)
}

// NotifyUpdate: an alive node's meta changed.
func (d *delegate) NotifyUpdate(n *memberlist.Node) {
	member, leaving := d.decodeNode(n, StateAlive, time.Now())
	d.view.alive(n.Name, member, leaving, EventUpdate)
}

// NotifyLeave: a node left or was declared dead; memberlist does not say
// which, so we use the "leaving" flag it gossiped before leaving.
func (d *delegate) NotifyLeave(n *memberlist.Node) {
	member, leaving := d.decodeNode(n, StateDead, time.Now())
	d.view.gone(n.Name, member, leaving)
}

// NotifyConflict: other claims existing's name from a different address
// while existing is alive (or dead for less than DeadNodeReclaimTime).
// memberlist keeps existing and ignores other.
func (d *delegate) NotifyConflict(existing, other *memberlist.Node) {
	now := time.Now()
	kept, _ := d.decodeNode(existing, StateAlive, now)
	rival, _ := d.decodeNode(other, StateAlive, now)
	total, reports, report := d.conflicts.record(existing.Name, rival.Addr, now)
	self := existing.Name == d.self
	if self {
		// Someone gossips our name at another address. Usually it is our
		// own previous life (a restart with a new IP) that peers have not
		// yet declared dead; the join loop re-announces us so peers take
		// the new address as soon as they may (DeadNodeReclaimTime).
		d.staleSelf.Store(true)
	}
	if !report {
		return
	}
	msg := "node ID conflict: two nodes claim the same NodeID; the second is ignored until the first is gone. If both are running, one is misconfigured"
	if self {
		msg = "node ID conflict: another address claims this node's NodeID; if this node was just restarted with a new address, it will be accepted once peers declare the old one dead"
	}
	d.logger.Error(msg, "node", existing.Name,
		"kept_addr", kept.Addr, "kept_incarnation", kept.Meta.Incarnation,
		"rejected_addr", rival.Addr, "rejected_incarnation", rival.Meta.Incarnation,
		"reports", reports, "conflicts_total", total)
	d.view.publish(Event{Kind: EventConflict, Member: rival, Prev: kept.Meta})
}

// NotifyMerge is called with a peer's whole member list when a join
// push/pull with it completes, before the list is merged; it is the only
// place memberlist v0.7.0 fills in Node.State. We never refuse the merge
// (NotifyAlive filters single nodes); we use the list to learn whether the
// peer we contacted holds this node at its current address. If it does not
// (it still has our previous address, or has forgotten us), the join loop
// re-announces us until it does.
func (d *delegate) NotifyMerge(peers []*memberlist.Node) error {
	d.targetMu.Lock()
	target := d.target
	d.targetMu.Unlock()
	if target == "" {
		return nil // a peer is joining us; its view of us says nothing
	}
	fromTarget := false
	for _, p := range peers {
		if p.Address() == target {
			fromTarget = true
			break
		}
	}
	if !fromTarget {
		return nil // an inbound join that overlapped ours
	}
	me, _ := d.view.lookup(d.self)
	for _, p := range peers {
		if p.Name == d.self {
			if p.Address() == me.Addr && (p.State == memberlist.StateAlive || p.State == memberlist.StateSuspect) {
				return nil
			}
			d.logger.Debug("peer holds a stale entry for this node", "peer", target,
				"their_addr", p.Address(), "their_state", p.State, "our_addr", me.Addr)
			d.staleSelf.Store(true)
			return nil
		}
	}
	// The peer does not know us. Usual right after a first join (the peer
	// sends its state before merging ours); after a restart it means the
	// peer reaped our old entry and still has to accept the new one.
	d.staleSelf.Store(true)
	return nil
}

// contacting tells NotifyMerge which address a join is contacting ("":
// none).
func (d *delegate) contacting(addr string) {
	d.targetMu.Lock()
	d.target = addr
	d.targetMu.Unlock()
}

// decodeNode turns a memberlist node into a Member. The meta was checked by
// NotifyAlive, so a decode error is unexpected; we keep the name then.
func (d *delegate) decodeNode(n *memberlist.Node, state State, now time.Time) (Member, bool) {
	meta, leaving, err := decodeMeta(n.Meta)
	if err != nil {
		d.logger.Error("cannot decode a member's meta", "member", n.Name, "error", err)
		meta = Meta{NodeID: n.Name}
	}
	return Member{Meta: meta, Addr: n.Address(), State: state, Since: now}, leaving
}
