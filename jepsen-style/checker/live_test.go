package checker

import (
	"testing"

	"github.com/factstr/factstr-go/jepsen-style/history"
)

// liveSub records a successful live subscribe call (filter "" : StreamAll).
func (b *hb) liveSub(name, filter string, inc int, call, ret int64) *hb {
	return b.add(history.Op{Proc: 60, Worker: "live-" + name, F: history.FLiveSubscribe, Type: history.OK, Call: ms(call), Return: ms(ret),
		Args: history.Value{Name: name, Ctx: filter, Incarnation: inc}})
}

// live records one delivered batch.
func (b *hb) live(name string, inc int, call int64, evs ...history.Event) *hb {
	return b.add(history.Op{Proc: 60, Worker: "live-" + name, F: history.FLive, Type: history.OK, Call: ms(call), Return: ms(call),
		Args: history.Value{Name: name, Incarnation: inc, Events: evs}})
}

// withoutLive drops good()'s deliveries to name (to replace them).
func withoutLive(b *hb, name string) *hb {
	out := &hb{id: b.id}
	for _, o := range b.ops {
		if o.F == history.FLive && o.Args.Name == name {
			continue
		}
		out.ops = append(out.ops, o)
	}
	return out
}

var (
	le1, le2, le3, le4 = ev(1, "a1", "c1"), ev(2, "a2", "c1"), ev(3, "b1", "c2"), ev(4, "a3", "c1")
)

func liveOnly(r *Result) []Anomaly {
	var out []Anomaly
	for _, a := range r.Anomalies {
		if len(a.Kind) > 5 && a.Kind[:5] == "live-" {
			out = append(out, a)
		}
	}
	return out
}

func TestLiveGoodHistory(t *testing.T) {
	r := check(t, good())
	for _, a := range r.Anomalies {
		t.Errorf("unexpected %s: %s", a.Kind, a.Explain)
	}
	for _, c := range r.Checks {
		if c.Name[:4] == "live" && c.Checked != 4 {
			t.Errorf("live checker checked %d deliveries, want 4 (%s)", c.Checked, c.Note)
		}
	}
	// A second incarnation that starts late and sees only what came after
	// it is fine, and so is one that stopped delivering early.
	b := good()
	b.liveSub("live-all", "", 2, 25, 26).live("live-all", 2, 41, le4)
	b.liveSub("live-all", "", 3, 3, 4).live("live-all", 3, 11, le1, le2)
	for _, a := range check(t, b).Anomalies {
		t.Errorf("unexpected %s: %s", a.Kind, a.Explain)
	}
}

func TestLiveDuplicate(t *testing.T) {
	b := good()
	b.live("live-all", 1, 42, le4)
	wantKind(t, check(t, b), "live-duplicate")
}

func TestLiveGap(t *testing.T) {
	b := withoutLive(good(), "live-all")
	b.live("live-all", 1, 11, le1, le2).live("live-all", 1, 41, le4) // seq 3 skipped
	wantKind(t, check(t, b), "live-gap")
	// Missed at the start: a3 (seq 4) was appended at 30 ms, after the
	// subscribe call returned at 26 ms, yet the first delivery is seq 5.
	b2 := finalsOnly(good())
	b2.appendOK(4, "c2", 50, 55, 5, "b2")
	b2.liveSub("live-all", "", 2, 25, 26).live("live-all", 2, 56, ev(5, "b2", "c2"))
	for _, n := range []string{"n1", "n2", "n3"} {
		b2.final(n, le1, le2, le3, le4, ev(5, "b2", "c2"))
	}
	b2.deliver("d1", 2, 57, true, ev(5, "b2", "c2"))
	r := check(t, b2)
	wantKind(t, r, "live-gap")
	if n := len(liveOnly(r)); n != 1 {
		t.Errorf("want exactly one live anomaly, got %d: %v", n, liveOnly(r))
	}
}

func TestLiveWrongFilter(t *testing.T) {
	b := good()
	b.live("live-c1", 1, 22, le3) // b1 is in c2
	wantKind(t, check(t, b), "live-filter")
}

func TestLiveSplitBatch(t *testing.T) {
	b := withoutLive(good(), "live-all")
	b.live("live-all", 1, 11, le1).live("live-all", 1, 12, le2).live("live-all", 1, 21, le3).live("live-all", 1, 41, le4)
	wantKind(t, check(t, b), "live-split-batch")
	b2 := withoutLive(good(), "live-all")
	b2.live("live-all", 1, 21, le1, le2, le3).live("live-all", 1, 41, le4)
	wantKind(t, check(t, b2), "live-merged-batches")
}

func TestLivePastAndOrderAndPhantom(t *testing.T) {
	b := good()
	b.live("live-c1", 1, 11, le1, le2) // acknowledged at 10 ms, subscribe invoked at 12 ms
	wantKind(t, check(t, b), "live-past-delivery")
	b2 := withoutLive(good(), "live-all")
	b2.live("live-all", 1, 21, le3).live("live-all", 1, 22, le1, le2).live("live-all", 1, 41, le4)
	wantKind(t, check(t, b2), "live-order")
	b3 := good()
	b3.live("live-all", 1, 60, ev(5, "zz", "c1"))
	wantKind(t, check(t, b3), "live-phantom")
}
