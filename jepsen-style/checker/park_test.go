package checker

import (
	"testing"

	"github.com/factstr/factstr-go/jepsen-style/history"
)

// Poison ids (history.Poison): p7 and p78; a1, a2, b1, a3 are not.
func TestPoisonIDs(t *testing.T) {
	for id, want := range map[string]bool{"p7": true, "p78": true, "a1": false, "b1": false} {
		if got := history.Poison(id); got != want {
			t.Errorf("Poison(%q) = %v, want %v", id, got, want)
		}
	}
}

// parkHistory: batches [1 a1], [2 p7, 3 a2] (poisoned), [4 b1], [5 p78]
// (poisoned); the parking consumer "p" (two attempts) handles 1 and 4,
// tries 2-3 and 5 twice each, and the final parked list is given.
func parkHistory(parked ...history.Event) *hb {
	e1, e2, e3, e4, e5 := ev(1, "a1", "c1"), ev(2, "p7", "c1"), ev(3, "a2", "c1"), ev(4, "b1", "c2"), ev(5, "p78", "c2")
	b := &hb{}
	b.appendOK(0, "c1", 0, 10, 1, "a1").
		appendOK(0, "c1", 11, 20, 2, "p7", "a2").
		appendOK(1, "c2", 21, 30, 4, "b1").
		appendOK(1, "c2", 31, 40, 5, "p78").
		add(history.Op{Proc: 5, Worker: "consumer-p", F: history.FSubscribe, Type: history.Info, Call: 0, Return: ms(900), Args: history.Value{Name: "p", Park: 2}}).
		add(history.Op{Proc: 5, Worker: "consumer-p", F: history.FDeliver, Type: history.OK, Call: ms(11), Return: ms(11), Args: history.Value{Name: "p", Incarnation: 1, Attempt: 1, Events: []history.Event{e1}}})
	for a := 1; a <= 2; a++ {
		b.add(history.Op{Proc: 5, Worker: "consumer-p", F: history.FDeliver, Type: history.Fail, Call: ms(int64(20 + a)), Return: ms(int64(20 + a)), Args: history.Value{Name: "p", Incarnation: 1, Attempt: a, Events: []history.Event{e2, e3}}})
	}
	b.add(history.Op{Proc: 5, Worker: "consumer-p", F: history.FDeliver, Type: history.OK, Call: ms(31), Return: ms(31), Args: history.Value{Name: "p", Incarnation: 1, Attempt: 1, Events: []history.Event{e4}}})
	for a := 1; a <= 2; a++ {
		b.add(history.Op{Proc: 5, Worker: "consumer-p", F: history.FDeliver, Type: history.Fail, Call: ms(int64(40 + a)), Return: ms(int64(40 + a)), Args: history.Value{Name: "p", Incarnation: 1, Attempt: a, Events: []history.Event{e5}}})
	}
	b.add(history.Op{Proc: 5, Worker: "consumer-p", F: history.FParked, Type: history.OK, Call: ms(1002), Return: ms(1003), Args: history.Value{Name: "p"}, Result: history.Value{Events: parked}})
	for _, n := range []string{"n1", "n2", "n3"} {
		b.final(n, stampAt(t0, e1, e2, e3, e4, e5)...)
	}
	return b
}

func TestParkingGoodPasses(t *testing.T) {
	r := check(t, parkHistory(ev(2, "p7", "c1"), ev(3, "a2", "c1"), ev(5, "p78", "c2")))
	for _, a := range r.Anomalies {
		t.Errorf("unexpected anomaly %s: %s %v", a.Kind, a.Explain, a.Ops)
	}
}

func TestParkingAnomalies(t *testing.T) {
	t.Run("a poisoned batch missing from the parked list", func(t *testing.T) {
		wantKind(t, check(t, parkHistory(ev(2, "p7", "c1"), ev(3, "a2", "c1"))), "park-lost")
	})
	t.Run("a handled fact in the parked list", func(t *testing.T) {
		wantKind(t, check(t, parkHistory(ev(1, "a1", "c1"), ev(2, "p7", "c1"), ev(3, "a2", "c1"), ev(5, "p78", "c2"))), "park-wrong-event")
	})
	t.Run("poison reported handled", func(t *testing.T) {
		b := parkHistory(ev(2, "p7", "c1"), ev(3, "a2", "c1"), ev(5, "p78", "c2"))
		b.add(history.Op{Proc: 5, Worker: "consumer-p", F: history.FDeliver, Type: history.OK, Call: ms(50), Return: ms(50), Args: history.Value{Name: "p", Incarnation: 1, Attempt: 1, Events: []history.Event{ev(5, "p78", "c2")}}})
		wantKind(t, check(t, b), "park-handled-poison")
	})
	t.Run("a third attempt", func(t *testing.T) {
		b := parkHistory(ev(2, "p7", "c1"), ev(3, "a2", "c1"), ev(5, "p78", "c2"))
		b.add(history.Op{Proc: 5, Worker: "consumer-p", F: history.FDeliver, Type: history.Fail, Call: ms(43), Return: ms(43), Args: history.Value{Name: "p", Incarnation: 1, Attempt: 3, Events: []history.Event{ev(5, "p78", "c2")}}})
		wantKind(t, check(t, b), "park-too-many-attempts")
	})
	t.Run("a good fact never handled", func(t *testing.T) {
		b := &hb{}
		for _, o := range parkHistory(ev(2, "p7", "c1"), ev(3, "a2", "c1"), ev(5, "p78", "c2")).ops {
			if o.F == history.FDeliver && o.Type == history.OK && o.Args.Events[0].Seq == 4 {
				continue
			}
			b.add(o)
		}
		wantKind(t, check(t, b), "consumer-incomplete")
	})
}

// groupHistory: facts of c1 (1, 2, 4) and c2 (3); the group "g" hands
// c1 to one member and c2 to another.
func TestGroupPerKeyOrder(t *testing.T) {
	e1, e2, e3, e4 := ev(1, "a1", "c1"), ev(2, "a2", "c1"), ev(3, "b1", "c2"), ev(4, "a3", "c1")
	build := func(deliveries func(b *hb)) *hb {
		b := &hb{}
		b.appendOK(0, "c1", 0, 10, 1, "a1", "a2").
			appendOK(1, "c2", 5, 20, 3, "b1").
			appendOK(0, "c1", 30, 40, 4, "a3").
			add(history.Op{Proc: 4, Worker: "group-g-m1", F: history.FSubscribe, Type: history.Info, Call: 0, Return: ms(900), Args: history.Value{Name: "g", Group: "ctx"}})
		deliveries(b)
		for _, n := range []string{"n1", "n2", "n3"} {
			b.final(n, stampAt(t0, e1, e2, e3, e4)...)
		}
		return b
	}
	// c2's fact handled before c1's earlier ones by another member is fine.
	r := check(t, build(func(b *hb) {
		b.deliver("g", 2, 21, true, e3).deliver("g", 1, 22, true, e1, e2).deliver("g", 1, 41, true, e4)
	}))
	for _, a := range r.Anomalies {
		t.Errorf("unexpected anomaly %s: %s %v", a.Kind, a.Explain, a.Ops)
	}
	t.Run("a key's facts out of order", func(t *testing.T) {
		wantKind(t, check(t, build(func(b *hb) {
			b.deliver("g", 2, 21, true, e3).deliver("g", 1, 22, true, e4).deliver("g", 1, 41, true, e1, e2)
		})), "consumer-gap")
	})
	t.Run("a key's fact handled twice with no fault", func(t *testing.T) {
		wantKind(t, check(t, build(func(b *hb) {
			b.deliver("g", 2, 21, true, e3).deliver("g", 1, 22, true, e1, e2).deliver("g", 1, 41, true, e4).deliver("g", 3, 42, true, e4)
		})), "consumer-duplicate")
	})
	t.Run("a key never handled", func(t *testing.T) {
		wantKind(t, check(t, build(func(b *hb) {
			b.deliver("g", 1, 22, true, e1, e2).deliver("g", 1, 41, true, e4)
		})), "consumer-incomplete")
	})
}
