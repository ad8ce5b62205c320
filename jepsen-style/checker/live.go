package checker

import (
	"fmt"
	"sort"
	"strings"

	"github.com/factstr/factstr-go/jepsen-style/history"
)

// live is checker 9, live (non-durable) subscriptions. The contract
// (package contract's documentation, and the Live and CatchUp cases of
// contract/conformance):
// StreamAll / StreamTo deliver only batches committed after the call
// returns, each committed batch as one delivery filtered to the matching
// events, in commit order; the Go client resumes a lost stream itself after
// the last delivered sequence number (a catch-up, "without gap or
// duplicate"), so one subscription (one incarnation in the history) is
// gapless from its start to its last delivery. A new StreamAll / StreamTo
// call (a new incarnation) has no continuity with the previous one.
//
// Per incarnation it checks:
//   - content: every delivered event is in the final log at that seq;
//   - filter: a StreamTo delivers only events of its context;
//   - atomicity: a delivery is exactly the matching part of one committed
//     batch (batches as identified by the durability checker);
//   - order and at-most-once: seqs strictly increase across deliveries;
//   - no past: nothing whose append was acknowledged before the subscribe
//     call was invoked is delivered (a batch committed while the call ran
//     may or may not be);
//   - no gap: every matching fact up to the last delivery is delivered if
//     it is at or after the first delivery, or if its append was invoked
//     after the subscribe call returned (it then committed after it).
//
// A subscription that stops delivering (the client gave up) is not a gap:
// nothing after its last delivery is required.
func (r *run) live() {
	c := r.checker("live subscriptions: each batch once, atomic, filtered, ordered; nothing acknowledged before the subscribe call; no gaps")
	defer c.done()
	type key struct {
		name string
		inc  int
	}
	subs := map[key]history.Op{}
	dels := map[key][]history.Op{}
	var keys []key
	for _, o := range r.ops {
		switch o.F {
		case history.FLiveSubscribe:
			k := key{o.Args.Name, o.Args.Incarnation}
			subs[k] = o
		case history.FLive:
			k := key{o.Args.Name, o.Args.Incarnation}
			if _, ok := dels[k]; !ok {
				keys = append(keys, k)
			}
			dels[k] = append(dels[k], o)
		}
	}
	if len(subs) == 0 && len(dels) == 0 {
		c.note = "no live subscriptions in this history"
		return
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].name != keys[j].name {
			return keys[i].name < keys[j].name
		}
		return keys[i].inc < keys[j].inc
	})
	okSubs := 0
	for _, s := range subs {
		if s.Type == history.OK {
			okSubs++
		}
	}
	batches := 0
	for _, k := range keys {
		ds := dels[k]
		sub, haveSub := subs[k]
		filter := ""
		if haveSub {
			filter = sub.Args.Ctx
		} else if len(ds) > 0 {
			filter = ds[0].Args.Ctx
		}
		label := fmt.Sprintf("%s#%d", k.name, k.inc)
		if filter != "" {
			label += " (StreamTo " + filter + ")"
		} else {
			label += " (StreamAll)"
		}
		matches := func(e history.Event) bool { return filter == "" || e.Ctx == filter }
		if !haveSub || sub.Type != history.OK {
			c.anomaly("live-unexpected-delivery", ds[0].Call, fmt.Sprintf("%s delivered %d batches but its subscribe call did not succeed", label, len(ds)), ds[0])
		}
		delivered := map[uint64]history.Op{}
		var last uint64
		var first uint64
		var prev history.Op
		for _, d := range ds {
			c.n++
			batches++
			ev := d.Args.Events
			if len(ev) == 0 {
				c.anomaly("live-empty-batch", d.Call, fmt.Sprintf("%s was handed an empty batch", label), d)
				continue
			}
			// at most once, in order
			for i, e := range ev {
				switch {
				case delivered[e.Seq].F != "":
					c.anomaly("live-duplicate", d.Call, fmt.Sprintf("%s delivered seq %d (%s) twice", label, e.Seq, e.ID), delivered[e.Seq], d)
				case e.Seq <= last:
					what := "an earlier delivery"
					if i > 0 {
						what = "the same batch"
					}
					c.anomaly("live-order", d.Call, fmt.Sprintf("%s delivered seq %d after seq %d (in %s): not in commit order", label, e.Seq, last, what), prev, d)
				}
				if delivered[e.Seq].F == "" {
					delivered[e.Seq] = d
				}
				last = max(last, e.Seq)
			}
			if first == 0 {
				first = ev[0].Seq
			}
			prev = d
			if !r.haveLog {
				continue
			}
			// content and filter
			bad := false
			for _, e := range ev {
				le, ok := r.bySeq[e.Seq]
				if !ok || le.ID != e.ID {
					want := "nothing"
					if ok {
						want = le.ID
					}
					c.anomaly("live-phantom", d.Call, fmt.Sprintf("%s delivered seq %d as %s; the final log has %s at that seq", label, e.Seq, e.ID, want), d)
					bad = true
					continue
				}
				if !matches(le) {
					c.anomaly("live-filter", d.Call, fmt.Sprintf("%s delivered seq %d (%s) of context %q, which does not match its filter", label, e.Seq, e.ID, le.Ctx), d)
					bad = true
				}
			}
			if bad {
				continue
			}
			// atomicity: exactly the matching part of one committed batch
			b, known := r.liveBatch(ev[0])
			if !known {
				if len(ev) > 1 {
					c.note = "some deliveries come from batches the history cannot delimit"
				}
			} else {
				var want []uint64
				for s := b[0]; s <= b[1]; s++ {
					if e, ok := r.bySeq[s]; ok && matches(e) {
						want = append(want, s)
					}
				}
				got := make([]uint64, len(ev))
				for i, e := range ev {
					got[i] = e.Seq
				}
				if fmt.Sprint(got) != fmt.Sprint(want) {
					kind := "live-split-batch"
					if ev[len(ev)-1].Seq > b[1] {
						kind = "live-merged-batches"
					}
					c.anomaly(kind, d.Call, fmt.Sprintf("%s delivered seqs %v in one call; the batch committed as seq %d–%d has the matching seqs %v: each committed batch must be one delivery",
						label, got, b[0], b[1], want), d)
				}
			}
			// nothing acknowledged before the subscribe call was invoked
			if haveSub {
				if a := r.appenders[ev[0].ID]; a != nil && a.Type == history.OK && a.Return < sub.Call {
					c.anomaly("live-past-delivery", d.Call, fmt.Sprintf("%s delivered seq %d, whose append was acknowledged at %.3fs, before the subscribe call at %.3fs: a live stream delivers only batches committed after the call",
						label, ev[0].Seq, float64(a.Return)/1e9, float64(sub.Call)/1e9), *a, sub, d)
				}
			}
		}
		// gaps: every matching fact up to the last delivery that is after
		// the first delivery or whose append began after subscribing.
		if !r.haveLog || first == 0 {
			continue
		}
		var missing []string
		var missOp *history.Op
		for _, e := range r.log {
			if e.Seq > last {
				break
			}
			if !matches(e) {
				continue
			}
			if _, ok := delivered[e.Seq]; ok {
				continue
			}
			due := e.Seq >= first
			if !due && haveSub && sub.Type == history.OK {
				if a := r.appenders[e.ID]; a != nil && a.Call > sub.Return {
					due = true
				}
			}
			if due {
				if len(missing) < 10 {
					missing = append(missing, fmt.Sprintf("%d:%s", e.Seq, e.ID))
				} else if len(missing) == 10 {
					missing = append(missing, "…")
				}
				if missOp == nil {
					missOp = r.appenders[e.ID]
				}
			}
		}
		if len(missing) > 0 {
			ops := []history.Op{}
			if haveSub {
				ops = append(ops, sub)
			}
			if missOp != nil {
				ops = append(ops, *missOp)
			}
			ops = append(ops, ds[0], ds[len(ds)-1])
			c.anomaly("live-gap", ds[0].Call, fmt.Sprintf("%s skipped matching facts %s: it delivered seq %d to %d, and each of these is either inside that range or was appended after the subscribe call returned",
				label, strings.Join(missing, " "), first, last), ops...)
		}
	}
	c.note = strings.TrimPrefix(c.note+fmt.Sprintf("; %d subscribe calls (%d ok), %d incarnations with deliveries, %d batches", len(subs), okSubs, len(keys), batches), "; ")
}

// liveBatch is the committed batch (first, last seq) holding e: from an
// append known committed, or a single event (the runner's barrier).
func (r *run) liveBatch(e history.Event) ([2]uint64, bool) {
	if b, ok := r.batchOf[e.Seq]; ok {
		return b, true
	}
	if strings.HasPrefix(e.ID, "barrier") {
		return [2]uint64{e.Seq, e.Seq}, true
	}
	return [2]uint64{}, false
}
