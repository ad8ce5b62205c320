package checker

import (
	"strings"
	"testing"
	"time"

	"github.com/factstr/factstr-go/jepsen-style/history"
)

// hb builds histories by hand.
type hb struct {
	ops []history.Op
	id  int
}

func u(v uint64) *uint64 { return &v }

func (b *hb) add(o history.Op) *hb {
	o.ID = b.id
	b.id++
	if o.Worker == "" {
		o.Worker = "w0"
	}
	if o.Node == "" {
		o.Node = "n1"
	}
	b.ops = append(b.ops, o)
	return b
}

func ms(n int64) int64 { return n * 1e6 }

func (b *hb) appendOK(proc int, ctx string, call, ret int64, first uint64, ids ...string) *hb {
	return b.add(history.Op{Proc: proc, F: history.FAppend, Type: history.OK, Call: ms(call), Return: ms(ret),
		Args: history.Value{Ctx: ctx, IDs: ids}, Result: history.Value{First: first, Last: first + uint64(len(ids)) - 1}})
}

func (b *hb) appendIfOK(proc int, ctx string, exp uint64, call, ret int64, first uint64, ids ...string) *hb {
	return b.add(history.Op{Proc: proc, F: history.FAppendIf, Type: history.OK, Call: ms(call), Return: ms(ret),
		Args: history.Value{Ctx: ctx, IDs: ids, Expected: u(exp)}, Result: history.Value{First: first, Last: first + uint64(len(ids)) - 1}})
}

func (b *hb) query(proc int, worker, ctx string, call, ret int64, evs ...history.Event) *hb {
	var cv uint64
	if len(evs) > 0 {
		cv = evs[len(evs)-1].Seq
	}
	return b.add(history.Op{Proc: proc, Worker: worker, F: history.FQuery, Type: history.OK, Call: ms(call), Return: ms(ret),
		Args: history.Value{Ctx: ctx}, Result: history.Value{Events: evs, CV: cv, LR: cv}})
}

func (b *hb) tail(proc int, call, ret int64, cv uint64) *hb {
	return b.add(history.Op{Proc: proc, F: history.FTail, Type: history.OK, Call: ms(call), Return: ms(ret), Result: history.Value{CV: cv}})
}

func (b *hb) final(node string, evs ...history.Event) *hb {
	return b.add(history.Op{Proc: 99, Node: node, F: history.FFinalRead, Type: history.OK, Call: ms(1000), Return: ms(1001), Result: history.Value{Events: evs}})
}

func (b *hb) deliver(name string, inc int, call int64, ok bool, evs ...history.Event) *hb {
	t := history.OK
	if !ok {
		t = history.Fail
	}
	return b.add(history.Op{Proc: 50, Worker: "consumer", F: history.FDeliver, Type: t, Call: ms(call), Return: ms(call),
		Args: history.Value{Name: name, Incarnation: inc, Events: evs}})
}

func ev(seq uint64, id, ctx string) history.Event { return history.Event{Seq: seq, ID: id, Ctx: ctx} }

// good is a correct history: two contexts, a conditional append, reads, a
// tail read, a consumer (with one failed handler call and its redelivery),
// three identical final logs.
func good() *hb {
	e1, e2, e3, e4 := ev(1, "a1", "c1"), ev(2, "a2", "c1"), ev(3, "b1", "c2"), ev(4, "a3", "c1")
	b := &hb{}
	b.appendOK(0, "c1", 0, 10, 1, "a1", "a2").
		appendOK(1, "c2", 5, 20, 3, "b1").
		query(2, "w2", "c1", 12, 14, e1, e2).
		appendIfOK(0, "c1", 2, 30, 40, 4, "a3").
		add(history.Op{Proc: 1, F: history.FAppendIf, Type: history.Fail, Call: ms(41), Return: ms(45),
			Args: history.Value{Ctx: "c1", IDs: []string{"x1"}, Expected: u(2)}, Result: history.Value{Actual: u(4)}}).
		tail(2, 41, 42, 4).
		query(2, "w2", "c1", 50, 52, e1, e2, e4).
		add(history.Op{Proc: 2, Worker: "w2", F: history.FLocalQuery, Type: history.OK, Call: ms(53), Return: ms(54),
			Args: history.Value{Ctx: "c2", MinApplied: 4}, Result: history.Value{Events: []history.Event{e3}, CV: 3, LR: 3}}).
		// live subscribers (live_test.go): StreamAll from 1 ms, StreamTo c1 from 12 ms
		liveSub("live-all", "", 1, 1, 2).live("live-all", 1, 11, e1, e2).live("live-all", 1, 21, e3).live("live-all", 1, 41, e4).
		liveSub("live-c1", "c1", 1, 12, 13).live("live-c1", 1, 41, e4).
		add(history.Op{Proc: 3, Worker: "consumer", F: history.FSubscribe, Type: history.Info, Call: 0, Return: ms(100), Args: history.Value{Name: "d1"}}).
		deliver("d1", 1, 11, true, e1, e2).
		deliver("d1", 1, 21, false, e3).
		deliver("d1", 2, 22, true, e3).
		deliver("d1", 2, 41, true, e4).
		// a consumer group keyed by context: c1's facts by one member, c2's by another
		add(history.Op{Proc: 4, Worker: "group-g1-m1", F: history.FSubscribe, Type: history.Info, Call: 0, Return: ms(100), Args: history.Value{Name: "g1", Group: "ctx"}}).
		deliver("g1", 1, 11, true, e1, e2).
		deliver("g1", 1, 21, true, e3).
		deliver("g1", 1, 41, true, e4).
		// a parking consumer (no poison in this log: it handles everything)
		add(history.Op{Proc: 5, Worker: "consumer-p1", F: history.FSubscribe, Type: history.Info, Call: 0, Return: ms(100), Args: history.Value{Name: "p1", Park: 2}}).
		deliver("p1", 1, 11, true, e1, e2).
		deliver("p1", 1, 21, true, e3).
		deliver("p1", 1, 41, true, e4).
		add(history.Op{Proc: 5, Worker: "consumer-p1", F: history.FParked, Type: history.OK, Call: ms(1002), Return: ms(1003), Args: history.Value{Name: "p1"}}).
		add(history.Op{Proc: -1, Worker: "nemesis", F: history.FMemberCheck, Type: history.OK, Call: ms(60), Return: ms(61),
			Args: history.Value{Fault: "n3 stayed out of the configuration while it kept running"}})
	for _, n := range []string{"n1", "n2", "n3"} {
		b.final(n, stampAt(t0, e1, e2, e3, e4)...) // OccurredAt: occurred.go
	}
	return b
}

func check(t *testing.T, b *hb) *Result {
	t.Helper()
	return Check(b.ops, Options{PorcupineTimeoutSec: 10})
}

func TestGoodHistoryPasses(t *testing.T) {
	r := check(t, good())
	for _, a := range r.Anomalies {
		t.Errorf("unexpected anomaly %s: %s %v", a.Kind, a.Explain, a.Ops)
	}
	if len(r.Checks) < 9 {
		t.Fatalf("only %d checkers ran", len(r.Checks))
	}
	for _, c := range r.Checks {
		if c.Checked == 0 {
			t.Errorf("checker %q checked nothing", c.Name)
		}
	}
}

func wantKind(t *testing.T, r *Result, kind string) {
	t.Helper()
	for _, a := range r.Anomalies {
		if a.Kind == kind {
			if len(a.Explain) == 0 {
				t.Errorf("%s without explanation", kind)
			}
			return
		}
	}
	var got []string
	for _, a := range r.Anomalies {
		got = append(got, a.Kind+": "+a.Explain)
	}
	t.Fatalf("want a %s anomaly, got:\n%s", kind, strings.Join(got, "\n"))
}

func finalsOnly(b *hb) *hb {
	out := &hb{id: b.id}
	for _, o := range b.ops {
		if o.F != history.FFinalRead {
			out.ops = append(out.ops, o)
		}
	}
	return out
}

func TestLostWrite(t *testing.T) {
	b := good()
	b.appendOK(4, "c2", 60, 70, 5, "b2") // acknowledged, not in any final log
	r := check(t, b)
	wantKind(t, r, "lost-write")
}

func TestStaleRead(t *testing.T) {
	b := good()
	// a1,a2 were acknowledged at 10 ms; this read began at 60 ms and saw nothing.
	b.query(5, "w5", "c1", 60, 61)
	r := check(t, b)
	wantKind(t, r, "stale-read")
	wantKind(t, r, "not-linearizable")
	b2 := good()
	b2.tail(6, 60, 61, 2) // the tail was 4 since 40 ms
	wantKind(t, check(t, b2), "stale-read")
}

func TestDoubleAppendIf(t *testing.T) {
	e1, e2 := ev(1, "s1", "seat"), ev(2, "s2", "seat")
	b := &hb{}
	b.appendIfOK(0, "seat", 0, 0, 10, 1, "s1").appendIfOK(1, "seat", 0, 1, 11, 2, "s2")
	b.final("n1", e1, e2)
	r := check(t, b)
	wantKind(t, r, "double-append-if")
	wantKind(t, r, "append-if-precondition")
	wantKind(t, r, "not-linearizable")
}

func TestGapAndDuplicate(t *testing.T) {
	b := finalsOnly(good())
	b.final("n1", ev(1, "a1", "c1"), ev(2, "a2", "c1"), ev(4, "a3", "c1"), ev(5, "b1", "c2"), ev(6, "b1", "c2"))
	r := check(t, b)
	wantKind(t, r, "seq-gap")
	wantKind(t, r, "duplicate-append")
	wantKind(t, r, "wrong-position")
}

func TestDivergentLogs(t *testing.T) {
	b := finalsOnly(good())
	b.final("n1", ev(1, "a1", "c1"), ev(2, "a2", "c1"), ev(3, "b1", "c2"), ev(4, "a3", "c1"))
	b.final("n2", ev(1, "a1", "c1"), ev(2, "a2", "c1"), ev(3, "a3", "c1"), ev(4, "b1", "c2"))
	wantKind(t, check(t, b), "divergent-logs")
}

func TestConsumerGapAndIncomplete(t *testing.T) {
	b := good()
	for i := range b.ops {
		if b.ops[i].F == history.FDeliver && b.ops[i].Args.Incarnation == 2 && b.ops[i].Args.Events[0].Seq == 3 {
			b.ops[i].Args.Events = []history.Event{ev(4, "a3", "c1")} // skip seq 3
			b.ops[i].Call = ms(42)
		}
	}
	b.ops = b.ops[:len(b.ops)-4] // drop the last delivery and the finals
	for _, n := range []string{"n1", "n2", "n3"} {
		b.final(n, ev(1, "a1", "c1"), ev(2, "a2", "c1"), ev(3, "b1", "c2"), ev(4, "a3", "c1"))
	}
	r := check(t, b)
	wantKind(t, r, "consumer-gap")
	wantKind(t, r, "consumer-incomplete")
}

func TestConsumerDuplicateWithoutFault(t *testing.T) {
	b := good()
	b.deliver("d1", 2, 60, true, ev(4, "a3", "c1"))
	wantKind(t, check(t, b), "consumer-duplicate")
	// The same redelivery after a crash is allowed.
	b2 := good()
	b2.add(history.Op{Proc: -1, F: history.FNemesis, Type: history.OK, Call: ms(45), Return: ms(50), Args: history.Value{Fault: "kill n1"}})
	b2.deliver("d1", 3, 60, true, ev(4, "a3", "c1"))
	for _, a := range check(t, b2).Anomalies {
		t.Errorf("unexpected %s: %s", a.Kind, a.Explain)
	}
}

func TestRealTimeAndNonMonotonic(t *testing.T) {
	b := good()
	b.query(2, "w2", "c1", 60, 61, ev(1, "a1", "c1"), ev(2, "a2", "c1")) // w2 saw version 4 at 50 ms
	r := check(t, b)
	wantKind(t, r, "non-monotonic-read")
	b2 := &hb{}
	b2.appendOK(0, "c1", 0, 10, 2, "x").appendOK(1, "c1", 20, 30, 1, "y")
	b2.final("n1", ev(1, "y", "c1"), ev(2, "x", "c1"))
	wantKind(t, check(t, b2), "real-time-order")
}

func TestIndefiniteAppendResolved(t *testing.T) {
	b := good()
	// An append that timed out but committed, then seen by a read: fine.
	b.add(history.Op{Proc: 7, F: history.FAppend, Type: history.Info, Call: ms(60), Return: ms(2000), Args: history.Value{Ctx: "c2", IDs: []string{"b2"}}, Err: "deadline exceeded"})
	b.ops = finalsOnly(b).ops
	for _, n := range []string{"n1", "n2", "n3"} {
		b.final(n, ev(1, "a1", "c1"), ev(2, "a2", "c1"), ev(3, "b1", "c2"), ev(4, "a3", "c1"), ev(5, "b2", "c2"))
	}
	// The consumers did not reach seq 5 in this hand-made history; add it.
	b.deliver("d1", 2, 70, true, ev(5, "b2", "c2")).deliver("g1", 1, 70, true, ev(5, "b2", "c2")).deliver("p1", 1, 70, true, ev(5, "b2", "c2"))
	for _, a := range check(t, b).Anomalies {
		t.Errorf("unexpected %s: %s %v", a.Kind, a.Explain, a.Ops)
	}
}

// t0 is an OccurredAt (Unix ns) for hand-made final logs.
const t0 = int64(1_800_000_000_000_000_000)

// stampAt returns copies of evs with OccurredAt at.
func stampAt(at int64, evs ...history.Event) []history.Event {
	out := make([]history.Event, len(evs))
	for i, e := range evs {
		e.At = at
		out[i] = e
	}
	return out
}

// finalsStamped replaces good()'s final reads: node -> its log.
func finalsStamped(logs map[string][]history.Event) *hb {
	b := finalsOnly(good())
	for _, n := range []string{"n1", "n2", "n3"} {
		b.final(n, logs[n]...)
	}
	return b
}

func TestOccurredAt(t *testing.T) {
	e1, e2, e3, e4 := ev(1, "a1", "c1"), ev(2, "a2", "c1"), ev(3, "b1", "c2"), ev(4, "a3", "c1")
	// clock jumps between appends (−10 min, then +5 min): allowed
	jumpy := append(append(stampAt(t0, e1, e2), stampAt(t0-int64(10*time.Minute), e3)...), stampAt(t0+int64(5*time.Minute), e4)...)
	ok := finalsStamped(map[string][]history.Event{"n1": jumpy, "n2": jumpy, "n3": jumpy})
	for _, a := range check(t, ok).Anomalies {
		t.Errorf("clock jumps between appends: unexpected %s: %s", a.Kind, a.Explain)
	}

	// n3 stamped seq 4 with its own clock: same events, different OccurredAt
	n3 := append(stampAt(t0, e1, e2, e3), stampAt(t0+int64(90*time.Second), e4)...)
	r := check(t, finalsStamped(map[string][]history.Event{"n1": stampAt(t0, e1, e2, e3, e4), "n2": stampAt(t0, e1, e2, e3, e4), "n3": n3}))
	wantKind(t, r, "occurred-at-divergent")
	for _, a := range r.Anomalies {
		if a.Kind == "divergent-logs" {
			t.Errorf("an OccurredAt difference reported as divergent seqs/ids: %s", a.Explain)
		}
	}

	// a node without OccurredAt on one event
	n2 := stampAt(t0, e1, e2, e3, e4)
	n2[2].At = 0
	wantKind(t, check(t, finalsStamped(map[string][]history.Event{"n1": stampAt(t0, e1, e2, e3, e4), "n2": n2, "n3": stampAt(t0, e1, e2, e3, e4)})), "occurred-at-zero")

	// the two events of one append (seq 1–2) with different stamps, on every node
	torn := append(append(stampAt(t0, e1), stampAt(t0+1, e2)...), stampAt(t0+2, e3, e4)...)
	wantKind(t, check(t, finalsStamped(map[string][]history.Event{"n1": torn, "n2": torn, "n3": torn})), "occurred-at-torn-batch")
}

func TestMembershipPromiseBroken(t *testing.T) {
	b := good()
	b.add(history.Op{Proc: -1, Worker: "nemesis", F: history.FMemberCheck, Type: history.Fail, Call: ms(70), Return: ms(71),
		Args:   history.Value{Fault: "n2 stayed out of the configuration while it kept running"},
		Result: history.Value{Fault: "leader n1 lists n2 as nonvoter again"}, Err: "removed node is back in the configuration"})
	wantKind(t, check(t, b), "membership")
}
