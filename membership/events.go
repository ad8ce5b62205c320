package membership

import (
	"fmt"
	"sync/atomic"
	"time"
)

// SubscriberBuffer is how many events a subscription holds before new ones
// are dropped.
const SubscriberBuffer = 256

// EventKind says what happened to a member.
type EventKind int

const (
	// EventJoin: a member became alive (first seen, or back after Dead or
	// Left).
	EventJoin EventKind = iota + 1
	// EventUpdate: an alive member changed its Meta.
	EventUpdate
	// EventLeave: a member left on purpose (it called Leave).
	EventLeave
	// EventFail: a member stopped answering and was declared dead.
	EventFail
	// EventConflict: a second node claims a known member's NodeID from
	// another address while the first is still alive. memberlist keeps the
	// first and ignores the second; Member is the rejected claimant, Prev
	// the meta of the member that was kept. See Membership.Conflicts.
	EventConflict
)

func (k EventKind) String() string {
	switch k {
	case EventJoin:
		return "join"
	case EventUpdate:
		return "update"
	case EventLeave:
		return "leave"
	case EventFail:
		return "fail"
	case EventConflict:
		return "conflict"
	default:
		return fmt.Sprintf("EventKind(%d)", int(k))
	}
}

// Event is one change to the member list. Events about this node itself are
// delivered too.
type Event struct {
	Kind   EventKind
	Member Member // the member after the change
	// Prev is the member's Meta as known before this event; zero if the
	// member was unknown. For EventConflict it is the kept member's Meta.
	Prev Meta
}

// IncarnationChanged reports whether the member came back with a different
// data directory than before: its disk was wiped or replaced, so its Raft
// vote and term memory are gone and it must be re-added as a new server, not
// trusted as the old one (the Raft paper, Figure 2: currentTerm and
// votedFor are persistent state a server must not lose).
func (e Event) IncarnationChanged() bool {
	return e.Prev.Incarnation != "" && e.Member.Meta.Incarnation != "" &&
		e.Prev.Incarnation != e.Member.Meta.Incarnation
}

// subscription is one Subscribe call. Its channel is closed, under
// Membership.mu, by the cancel func or by Shutdown.
type subscription struct {
	ch      chan Event
	dropped atomic.Uint64
}

// publishLocked delivers ev to every subscriber without blocking: it runs
// inside memberlist's callbacks, which hold memberlist's node lock, so a
// slow consumer would stall probing and gossip for the whole node. Events a
// full subscriber cannot take are dropped and counted (DroppedEvents), not
// coalesced: a consumer that falls behind must resynchronise from Members,
// which a Raft reconcile loop does periodically anyway. Callers hold m.mu.
func (m *Membership) publishLocked(ev Event) {
	if m.closed {
		return
	}
	for s := range m.subs {
		select {
		case s.ch <- ev:
		default:
			s.dropped.Add(1)
			if n := m.dropped.Add(1); n&(n-1) == 0 {
				// Log at powers of two so a stuck consumer is visible
				// without flooding the log.
				m.logger.Warn("event subscriber is not keeping up; dropping membership events",
					"dropped_total", n, "event", ev.Kind.String(), "member", ev.Member.Meta.NodeID)
			}
		}
	}
}

// Subscribe returns a channel of membership events and a func that ends the
// subscription and closes the channel. Delivery never blocks memberlist: the
// channel holds SubscriberBuffer events, and events that do not fit are
// dropped and counted in DroppedEvents. Treat events as prompts to look at
// Members, not as a complete log. The channel is also closed by Shutdown.
func (m *Membership) Subscribe() (<-chan Event, func()) {
	s := &subscription{ch: make(chan Event, SubscriberBuffer)}
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		close(s.ch)
		return s.ch, func() {}
	}
	m.subs[s] = struct{}{}
	m.mu.Unlock()

	cancel := func() {
		m.mu.Lock()
		defer m.mu.Unlock()
		if _, ok := m.subs[s]; ok {
			delete(m.subs, s)
			close(s.ch)
		}
	}
	return s.ch, cancel
}

// DroppedEvents is how many events were dropped, over all subscribers,
// because a subscriber's channel was full.
func (m *Membership) DroppedEvents() uint64 { return m.dropped.Load() }

// Conflicts is how many times memberlist reported a second node claiming a
// known NodeID from another address. A non-zero, growing value means two
// processes share a NodeID (a misconfiguration, or a restarted pod whose old
// entry is not yet reclaimable); the cluster should refuse the newcomer.
func (m *Membership) Conflicts() uint64 { return m.conflicts.Load() }

// LastConflict is when gossip last reported a node-id conflict (zero if
// never).
func (m *Membership) LastConflict() time.Time {
	if ns := m.lastConflict.Load(); ns != 0 {
		return time.Unix(0, ns)
	}
	return time.Time{}
}
