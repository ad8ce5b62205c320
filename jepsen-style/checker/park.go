package checker

import (
	"fmt"
	"sort"

	"github.com/factstr/factstr-go/jepsen-style/history"
)

// parking checks the consumers that retry then park (FSubscribe with
// v.park): the handler refuses every batch that holds a poison event
// (history.Poison), so exactly those committed batches must end in the
// name's parked list, read after healing (FParked); every other matching
// fact is handled, in order, with duplicates only after faults; no batch
// is delivered more often in a row than the policy allows before it
// parks; and no poison fact is ever handled.
func (r *run) parking() {
	c := r.checker("parking consumers: what the handler refuses is parked, everything else handled, in order")
	defer c.done()
	policy := map[string]int{}
	deliveries := map[string][]history.Op{}
	parked := map[string]*history.Op{}
	for _, o := range r.ops {
		switch o.F {
		case history.FSubscribe:
			if o.Args.Park > 0 {
				policy[o.Args.Name] = o.Args.Park
			}
		case history.FDeliver:
			deliveries[o.Args.Name] = append(deliveries[o.Args.Name], o)
		case history.FParked:
			if o.Type == history.OK {
				op := o
				parked[o.Args.Name] = &op
			}
		}
	}
	var names []string
	for n := range policy {
		names = append(names, n)
	}
	sort.Strings(names)
	dups := 0
	for _, name := range names {
		ds := deliveries[name]
		// The batches that hold a poison fact, by their first seq.
		poisoned := map[uint64]bool{}
		if r.haveLog {
			for _, e := range r.log {
				if history.Poison(e.ID) {
					b := r.batchOf[e.Seq]
					for s := b[0]; s <= b[1]; s++ {
						poisoned[s] = true
					}
				}
			}
		}
		// Poison is never handled; a poisoned batch is not delivered more
		// than the policy's attempts in a row (a fault may restart the
		// count: a new subscription tries again).
		run, runFirst := 0, uint64(0)
		for _, d := range ds {
			c.n++
			if len(d.Args.Events) == 0 {
				continue
			}
			first := d.Args.Events[0].Seq
			if d.Type == history.OK {
				for _, e := range d.Args.Events {
					if history.Poison(e.ID) {
						c.anomaly("park-handled-poison", d.Call, fmt.Sprintf("%s reports seq %d (a poison event) handled", name, e.Seq), d)
					}
				}
			}
			if first == runFirst {
				run++
			} else {
				run, runFirst = 1, first
			}
			if d.Args.Attempt > policy[name] {
				c.anomaly("park-too-many-attempts", d.Call, fmt.Sprintf("%s delivered seq %d as attempt %d; the policy parks after %d", name, first, d.Args.Attempt, policy[name]), d)
			}
			if run > policy[name] && !r.faultBetween(ds[0].Call, d.Call) {
				c.anomaly("park-too-many-attempts", d.Call, fmt.Sprintf("%s delivered seq %d %d times in a row with no fault; the policy parks after %d", name, first, run, policy[name]), d)
			}
		}
		dups += r.checkConsumer(c, name, "", ds, poisoned)
		if !r.haveLog {
			continue
		}
		p := parked[name]
		if p == nil {
			c.anomaly("park-list-missing", inf, fmt.Sprintf("%s: the final parked list was not read", name))
			continue
		}
		got := map[uint64]bool{}
		for _, e := range p.Result.Events {
			got[e.Seq] = true
			if !poisoned[e.Seq] {
				c.anomaly("park-wrong-event", inf, fmt.Sprintf("%s parked seq %d, which no poison batch holds", name, e.Seq), *p)
			}
		}
		missing := 0
		for s := range poisoned {
			if !got[s] {
				missing++
			}
		}
		if missing > 0 {
			c.anomaly("park-lost", inf, fmt.Sprintf("%s: %d facts of poison batches are not in the parked list (of %d)", name, missing, len(poisoned)), *p)
		}
		c.note = fmt.Sprintf("%d parked facts checked", len(poisoned))
	}
	if dups > 0 {
		c.note += fmt.Sprintf("; %d allowed redeliveries after faults", dups)
	}
}
