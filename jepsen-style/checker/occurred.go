package checker

import (
	"fmt"
	"time"

	"github.com/factstr/factstr-go/jepsen-style/history"
)

// occurredAt: the leader stamps OccurredAt into the replicated command, so
// every event has a non-zero OccurredAt, the same on every node, and the
// events of one append share it. Clock nemeses may make the stamps jump or
// run backwards between batches; that is allowed and not checked. It needs
// the final reads to carry the stamps (history.Event.At); a history
// recorded without them is skipped.
func (r *run) occurredAt() {
	c := r.checker("occurred-at: non-zero, equal on every node, one per append")
	defer c.done()
	var finals []history.Op
	stamped := false
	for _, o := range r.ops {
		if o.F != history.FFinalRead || o.Type != history.OK {
			continue
		}
		finals = append(finals, o)
		for _, e := range o.Result.Events {
			stamped = stamped || e.At != 0
		}
	}
	if !stamped {
		c.note = "skipped: the final reads carry no OccurredAt"
		return
	}
	const maxReports = 5
	type stamp struct {
		at   int64
		node string
		op   history.Op
	}
	ref := map[uint64]stamp{}
	zero, diverge := map[string]int{}, map[string]int{}
	for _, f := range finals {
		for _, e := range f.Result.Events {
			c.n++
			if e.At == 0 {
				if zero[f.Node]++; zero[f.Node] <= maxReports {
					c.anomaly("occurred-at-zero", f.Call, fmt.Sprintf("%s stores seq %d (%s) without an OccurredAt", f.Node, e.Seq, e.ID), f)
				}
				continue
			}
			s, ok := ref[e.Seq]
			if !ok {
				ref[e.Seq] = stamp{e.At, f.Node, f}
				continue
			}
			if s.at != e.At {
				if diverge[f.Node]++; diverge[f.Node] <= maxReports {
					c.anomaly("occurred-at-divergent", f.Call, fmt.Sprintf("seq %d (%s) occurred at %s on %s but at %s on %s (%v apart): OccurredAt must be stamped once, by the leader, and replicated",
						e.Seq, e.ID, fmtAt(s.at), s.node, fmtAt(e.At), f.Node, time.Duration(e.At-s.at)), s.op, f)
				}
			}
		}
	}
	for node, n := range zero {
		if n > maxReports {
			c.anomaly("occurred-at-zero", 0, fmt.Sprintf("%s: %d events without an OccurredAt in all (%d reported)", node, n, maxReports))
		}
	}
	for node, n := range diverge {
		if n > maxReports {
			c.anomaly("occurred-at-divergent", 0, fmt.Sprintf("%s: %d events whose OccurredAt differs from the reference node's in all (%d reported)", node, n, maxReports))
		}
	}
	// one stamp per acknowledged or resolved append
	torn := 0
	for _, o := range r.committed {
		first, last := o.Result.First, o.Result.Last
		if first == 0 || last < first {
			continue
		}
		s0, ok := ref[first]
		if !ok {
			continue
		}
		for s := first + 1; s <= last; s++ {
			if e, ok := ref[s]; ok && e.at != s0.at {
				if torn++; torn <= maxReports {
					c.anomaly("occurred-at-torn-batch", o.Call, fmt.Sprintf("the events of one append (seq %d–%d) carry different OccurredAt: %s at seq %d, %s at seq %d",
						first, last, fmtAt(s0.at), first, fmtAt(e.at), s), *o)
				}
				break
			}
		}
	}
	if torn > maxReports {
		c.anomaly("occurred-at-torn-batch", 0, fmt.Sprintf("%d appends whose events carry different OccurredAt in all (%d reported)", torn, maxReports))
	}
}

func fmtAt(ns int64) string { return time.Unix(0, ns).UTC().Format(time.RFC3339Nano) }
