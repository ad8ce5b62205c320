package membership

import (
	"fmt"
	"sync/atomic"
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
// memberView.mu, by the cancel func or by Shutdown.
type subscription struct {
	ch      chan Event
	dropped atomic.Uint64
}

// publishLocked delivers ev to every subscriber without blocking: it runs
// inside memberlist's callbacks, which hold memberlist's node lock, so a
// slow consumer would stall probing and gossip for the whole node. Events a
// full subscriber cannot take are dropped and counted (DroppedEvents), not
// coalesced: a consumer that falls behind must resynchronise from Members,
// which a Raft reconcile loop does periodically anyway. Callers hold v.mu.
func (v *memberView) publishLocked(ev Event) {
	if v.closed {
		return
	}
	for s := range v.subs {
		select {
		case s.ch <- ev:
		default:
			s.dropped.Add(1)
			if n := v.dropped.Add(1); n&(n-1) == 0 {
				// Log at powers of two so a stuck consumer is visible
				// without flooding the log.
				v.logger.Warn("event subscriber is not keeping up; dropping membership events",
					"dropped_total", n, "event", ev.Kind.String(), "member", ev.Member.Meta.NodeID)
			}
		}
	}
}

// subscribe adds a subscriber; see Membership.Subscribe.
func (v *memberView) subscribe() (<-chan Event, func()) {
	s := &subscription{ch: make(chan Event, SubscriberBuffer)}
	v.mu.Lock()
	if v.closed {
		v.mu.Unlock()
		close(s.ch)
		return s.ch, func() {}
	}
	v.subs[s] = struct{}{}
	v.mu.Unlock()

	cancel := func() {
		v.mu.Lock()
		defer v.mu.Unlock()
		if _, ok := v.subs[s]; ok {
			delete(v.subs, s)
			close(s.ch)
		}
	}
	return s.ch, cancel
}

// Subscribe returns a channel of membership events and a func that ends the
// subscription and closes the channel. Delivery never blocks memberlist: the
// channel holds SubscriberBuffer events, and events that do not fit are
// dropped and counted in DroppedEvents. Treat events as prompts to look at
// Members, not as a complete log. The channel is also closed by Shutdown.
func (m *Membership) Subscribe() (<-chan Event, func()) { return m.view.subscribe() }

// DroppedEvents is how many events were dropped, over all subscribers,
// because a subscriber's channel was full.
func (m *Membership) DroppedEvents() uint64 { return m.view.dropped.Load() }
