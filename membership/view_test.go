package membership

import (
	"io"
	"log/slog"
	"testing"
	"time"
)

var discardLogger = slog.New(slog.NewTextHandler(io.Discard, nil))

// viewMember is member id at addr with incarnation inc, seen at since.
func viewMember(id, addr, inc string, since time.Time) Member {
	return Member{Meta: Meta{NodeID: id, Incarnation: inc}, Addr: addr, State: StateAlive, Since: since}
}

// The view turns what memberlist reports into member states and events:
// which report is a join, an update, a leave or a failure.
func TestMemberViewTransitions(t *testing.T) {
	t0 := time.Unix(1000, 0)
	t1 := t0.Add(time.Second)
	type report struct {
		gone    bool      // NotifyLeave; else NotifyJoin or NotifyUpdate
		kind    EventKind // for an alive report
		member  Member
		leaving bool
	}
	cases := []struct {
		name      string
		reports   []report
		wantKinds []EventKind // the events published, in order
		wantState State       // b's state after
		wantSince time.Time   // b's Since after
		wantPrev  Meta        // the last event's Prev
	}{
		{
			name:      "a new member joins",
			reports:   []report{{kind: EventJoin, member: viewMember("b", "b:1", "i1", t0)}},
			wantKinds: []EventKind{EventJoin}, wantState: StateAlive, wantSince: t0,
		},
		{
			name:      "an update about an unknown member is a join",
			reports:   []report{{kind: EventUpdate, member: viewMember("b", "b:1", "i1", t0)}},
			wantKinds: []EventKind{EventJoin}, wantState: StateAlive, wantSince: t0,
		},
		{
			name: "an update keeps the time it became alive",
			reports: []report{
				{kind: EventJoin, member: viewMember("b", "b:1", "i1", t0)},
				{kind: EventUpdate, member: viewMember("b", "b:2", "i1", t1)},
			},
			wantKinds: []EventKind{EventJoin, EventUpdate}, wantState: StateAlive, wantSince: t0,
			wantPrev: Meta{NodeID: "b", Incarnation: "i1"},
		},
		{
			name: "only the leaving flag changed: no event, then a leave",
			reports: []report{
				{kind: EventJoin, member: viewMember("b", "b:1", "i1", t0)},
				{kind: EventUpdate, member: viewMember("b", "b:1", "i1", t0), leaving: true},
				{gone: true, member: viewMember("b", "b:1", "i1", t1)},
			},
			wantKinds: []EventKind{EventJoin, EventLeave}, wantState: StateLeft, wantSince: t1,
			wantPrev: Meta{NodeID: "b", Incarnation: "i1"},
		},
		{
			name: "gone without the flag is a failure",
			reports: []report{
				{kind: EventJoin, member: viewMember("b", "b:1", "i1", t0)},
				{gone: true, member: viewMember("b", "b:1", "i1", t1)},
			},
			wantKinds: []EventKind{EventJoin, EventFail}, wantState: StateDead, wantSince: t1,
			wantPrev: Meta{NodeID: "b", Incarnation: "i1"},
		},
		{
			name: "back after a failure is a join, with the old meta as Prev",
			reports: []report{
				{kind: EventJoin, member: viewMember("b", "b:1", "i1", t0)},
				{gone: true, member: viewMember("b", "b:1", "i1", t0)},
				{kind: EventUpdate, member: viewMember("b", "b:1", "i2", t1)},
			},
			wantKinds: []EventKind{EventJoin, EventFail, EventJoin}, wantState: StateAlive, wantSince: t1,
			wantPrev: Meta{NodeID: "b", Incarnation: "i1"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v := newMemberView("a", time.Hour, discardLogger)
			events, cancel := v.subscribe()
			defer cancel()
			for _, r := range tc.reports {
				if r.gone {
					v.gone(r.member.Meta.NodeID, r.member, r.leaving)
				} else {
					v.alive(r.member.Meta.NodeID, r.member, r.leaving, r.kind)
				}
			}
			var last Event
			for i, want := range tc.wantKinds {
				select {
				case last = <-events:
				default:
					t.Fatalf("%d events, want %v", i, tc.wantKinds)
				}
				if last.Kind != want {
					t.Fatalf("event %d is %s, want %s", i, last.Kind, want)
				}
			}
			if len(events) != 0 {
				t.Fatalf("%d events more than %v", len(events), tc.wantKinds)
			}
			if last.Prev != tc.wantPrev {
				t.Fatalf("the last event's Prev is %+v, want %+v", last.Prev, tc.wantPrev)
			}
			b, ok := v.lookup("b")
			if !ok || b.State != tc.wantState || !b.Since.Equal(tc.wantSince) {
				t.Fatalf("b is %+v (known %v), want state %s since %v", b, ok, tc.wantState, tc.wantSince)
			}
		})
	}
}

// Dead and Left members go after the tombstone timeout, this node never;
// alone looks at the alive members other than this node.
func TestMemberViewPruneAndAlone(t *testing.T) {
	const tombstone = time.Minute
	v := newMemberView("a", tombstone, discardLogger)
	old := time.Now().Add(-2 * tombstone)
	v.alive("a", viewMember("a", "a:1", "", old), false, EventJoin)
	if !v.alone() {
		t.Fatal("alone is false with only this node")
	}
	v.alive("b", viewMember("b", "b:1", "", old), false, EventJoin)
	v.alive("c", viewMember("c", "c:1", "", old), false, EventJoin)
	if v.alone() {
		t.Fatal("alone is true with two other members alive")
	}
	v.gone("b", viewMember("b", "b:1", "", old), false)       // a tombstone past its timeout
	v.gone("c", viewMember("c", "c:1", "", time.Now()), true) // a fresh one
	v.gone("a", viewMember("a", "a:1", "", old), false)       // this node: never forgotten
	if !v.alone() {
		t.Fatal("alone is false with every other member gone")
	}
	var ids []string
	for _, m := range v.list() {
		ids = append(ids, m.Meta.NodeID+"="+m.State.String())
	}
	if got, want := len(ids), 2; got != want || ids[0] != "a=dead" || ids[1] != "c=left" {
		t.Fatalf("members %v, want [a=dead c=left]", ids)
	}
}

// Every change wakes the waiters; closing the view closes the
// subscriptions, wakes the waiters, and later subscriptions get a closed
// channel.
func TestMemberViewChangesAndClose(t *testing.T) {
	v := newMemberView("a", time.Hour, discardLogger)
	changed := v.changes()
	events, cancel := v.subscribe()
	defer cancel()
	v.alive("b", viewMember("b", "b:1", "", time.Now()), false, EventJoin)
	select {
	case <-changed:
	default:
		t.Fatal("a join did not wake the waiters")
	}
	changed = v.changes()
	v.publish(Event{Kind: EventConflict})
	select {
	case <-changed:
		t.Fatal("a conflict, which changes no member, woke the waiters")
	default:
	}
	v.close()
	select {
	case <-changed:
	default:
		t.Fatal("close did not wake the waiters")
	}
	n := 0
	for range events {
		n++
	}
	if n != 2 {
		t.Fatalf("%d events before the channel closed, want 2", n)
	}
	late, lateCancel := v.subscribe()
	defer lateCancel()
	if _, open := <-late; open {
		t.Fatal("a subscription after close got an open channel")
	}
}
