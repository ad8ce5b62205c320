// Package checker decides whether a recorded history is correct for
// FACTSTR's contract: a single gapless, append-only log with conditional
// appends per context, linearizable default reads, and durable consumers.
package checker

import (
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/factstr/factstr-go/jepsen-style/history"
)

const inf = math.MaxInt64

// Anomaly is one thing the checkers found wrong.
type Anomaly struct {
	Kind    string   `json:"kind"`    // e.g. "stale-read", "lost-write"
	Checker string   `json:"checker"` // which checker found it
	Explain string   `json:"explain"` // plain language
	Ops     []string `json:"ops"`     // the operations involved
	At      int64    `json:"at"`      // ns since start, for the report
	Fault   string   `json:"fault,omitempty"`
}

// CheckSummary is what one checker looked at.
type CheckSummary struct {
	Name      string `json:"name"`
	Checked   int    `json:"checked"`
	Anomalies int    `json:"anomalies"`
	Note      string `json:"note,omitempty"`
}

// Result of Check.
type Result struct {
	Anomalies []Anomaly      `json:"anomalies"`
	Checks    []CheckSummary `json:"checks"`
	Notes     []string       `json:"notes,omitempty"`
	// PorcupineInfo holds, per partition, what porcupine needs to draw it.
	Porcupine []PartitionResult `json:"-"`
}

// Kinds reports the set of anomaly kinds found.
func (r *Result) Kinds() map[string]int {
	m := map[string]int{}
	for _, a := range r.Anomalies {
		m[a.Kind]++
	}
	return m
}

// Options tune the checkers.
type Options struct {
	// PorcupineTimeoutSec bounds each porcupine partition (default 30).
	PorcupineTimeoutSec int
	// SkipPorcupine turns the linearizability search off (unit tests of
	// other checkers).
	SkipPorcupine bool
}

// Window is a fault interval.
type Window struct {
	Start, End int64
	Fault      string
}

// state shared by the checkers.
type run struct {
	ops     []history.Op
	res     *Result
	windows []Window

	log     []history.Event // the reference final log (index i: seq i+1 when well-formed)
	haveLog bool
	bySeq   map[uint64]history.Event
	seqsOf  map[string][]uint64 // id -> seqs in the final log
	ctxSeqs map[string][]uint64 // ctx -> ascending seqs in the final log
	batchOf map[uint64][2]uint64

	appenders map[string]*history.Op // id -> the append that wrote it
	committed []*history.Op          // appends known committed (ok, or info found in the log), Result.First/Last filled
}

// Check runs every checker over the paired history.
func Check(ops []history.Op, opt Options) *Result {
	if opt.PorcupineTimeoutSec <= 0 {
		opt.PorcupineTimeoutSec = 30
	}
	r := &run{ops: ops, res: &Result{}, bySeq: map[uint64]history.Event{}, seqsOf: map[string][]uint64{},
		ctxSeqs: map[string][]uint64{}, appenders: map[string]*history.Op{}, batchOf: map[uint64][2]uint64{}}
	r.windows = Windows(ops)
	for i := range r.ops {
		o := &r.ops[i]
		if o.F == history.FAppend || o.F == history.FAppendIf {
			for _, id := range o.Args.IDs {
				r.appenders[id] = o
			}
		}
	}
	r.agreement()
	r.wellFormed()
	r.durability()
	r.occurredAt() // occurred.go
	r.appendIf()
	r.realTime()
	r.reads()
	r.consumers()
	r.parking()    // park.go
	r.live()       // live.go
	r.membership() // membership.go
	if !opt.SkipPorcupine {
		r.porcupine(opt.PorcupineTimeoutSec)
	}
	sort.SliceStable(r.res.Anomalies, func(i, j int) bool { return r.res.Anomalies[i].At < r.res.Anomalies[j].At })
	return r.res
}

// Windows returns the fault intervals recorded by the nemesis.
func Windows(ops []history.Op) []Window {
	var w []Window
	for _, o := range ops {
		if o.F != history.FNemesis {
			continue
		}
		end := o.Return
		desc := o.Args.Fault
		if o.Result.Fault != "" {
			desc = o.Result.Fault
		}
		if o.Type == history.Fail {
			continue
		}
		w = append(w, Window{Start: o.Call, End: end, Fault: desc})
	}
	return w
}

// faultAt names the faults active at t (or that ended within 2 s before it).
func (r *run) faultAt(t int64) string {
	var s []string
	for _, w := range r.windows {
		if t >= w.Start && t <= w.End+faultGrace {
			s = append(s, fmt.Sprintf("%s [%.1fs–%.1fs]", w.Fault, float64(w.Start)/1e9, float64(w.End)/1e9))
		}
	}
	return strings.Join(s, "; ")
}

// faultGrace is how long after a fault its effects may still surface: a
// partitioned node's durable-stream lease is released by the majority
// (gossip failure detection) and the holder only learns of it when it
// reconnects, so its last acknowledged batch is redelivered after healing.
const faultGrace = int64(10e9)

func (r *run) faultBetween(a, b int64) bool {
	for _, w := range r.windows {
		if w.Start <= b && w.End+faultGrace >= a {
			return true
		}
	}
	return false
}

type counter struct {
	r     *run
	name  string
	n     int
	found int
	note  string
}

func (r *run) checker(name string) *counter { return &counter{r: r, name: name} }

func (c *counter) anomaly(kind string, at int64, explain string, ops ...history.Op) {
	a := Anomaly{Kind: kind, Checker: c.name, Explain: explain, At: at, Fault: c.r.faultAt(at)}
	for _, o := range ops {
		a.Ops = append(a.Ops, o.String())
	}
	c.r.res.Anomalies = append(c.r.res.Anomalies, a)
	c.found++
}

func (c *counter) done() {
	c.r.res.Checks = append(c.r.res.Checks, CheckSummary{Name: c.name, Checked: c.n, Anomalies: c.found, Note: c.note})
}

// agreement: every node's final log is identical; the first one read
// successfully is the reference log for the other checkers.
func (r *run) agreement() {
	c := r.checker("agreement: identical final logs on every node")
	defer c.done()
	var finals []history.Op
	for _, o := range r.ops {
		if o.F != history.FFinalRead {
			continue
		}
		if o.Type != history.OK {
			c.anomaly("node-not-recovered", o.Call, fmt.Sprintf("the final read on %s failed after healing: the node did not recover", o.Node), o)
			continue
		}
		finals = append(finals, o)
	}
	if len(finals) == 0 {
		c.anomaly("no-final-log", 0, "no node answered the final read; the log-based checkers could not run")
		return
	}
	// The longest log is the reference: a shorter one lags or lost data.
	ref := finals[0]
	for _, f := range finals[1:] {
		if len(f.Result.Events) > len(ref.Result.Events) {
			ref = f
		}
	}
	r.log, r.haveLog = ref.Result.Events, true
	for _, f := range finals {
		c.n++
		if f.ID == ref.ID {
			continue
		}
		a, b := ref.Result.Events, f.Result.Events
		n := min(len(a), len(b))
		diff := -1
		for i := 0; i < n; i++ {
			if a[i].Seq != b[i].Seq || a[i].ID != b[i].ID || a[i].Ctx != b[i].Ctx { // OccurredAt: occurred.go
				diff = i
				break
			}
		}
		switch {
		case diff >= 0:
			c.anomaly("divergent-logs", f.Call, fmt.Sprintf("split brain: %s and %s disagree at position %d: %s has seq %d id %s, %s has seq %d id %s",
				ref.Node, f.Node, diff+1, ref.Node, a[diff].Seq, a[diff].ID, f.Node, b[diff].Seq, b[diff].ID), ref, f)
		case len(a) != len(b):
			c.anomaly("divergent-logs", f.Call, fmt.Sprintf("%s ends with %d events, %s with %d after healing and a barrier append", ref.Node, len(a), f.Node, len(b)), ref, f)
		}
	}
	for _, e := range r.log {
		r.bySeq[e.Seq] = e
		r.seqsOf[e.ID] = append(r.seqsOf[e.ID], e.Seq)
		r.ctxSeqs[e.Ctx] = append(r.ctxSeqs[e.Ctx], e.Seq)
	}
}

// wellFormed: seqs 1..N without gaps, no duplicates (e.g. a retried
// idempotent append applied twice), no phantom events, nothing from a
// definitely failed append.
func (r *run) wellFormed() {
	c := r.checker("well-formed log: gapless unique seqs, no duplicates, no phantom or aborted events")
	defer c.done()
	if !r.haveLog {
		c.note = "skipped: no final log"
		return
	}
	var prev uint64
	for _, e := range r.log {
		c.n++
		switch {
		case e.Seq == prev:
			c.anomaly("duplicate-seq", 0, fmt.Sprintf("sequence number %d occurs twice in the final log", e.Seq))
		case e.Seq != prev+1:
			c.anomaly("seq-gap", 0, fmt.Sprintf("the final log jumps from seq %d to %d: %d sequence numbers are missing", prev, e.Seq, e.Seq-prev-1))
		}
		prev = e.Seq
	}
	ids := make([]string, 0, len(r.seqsOf))
	for id := range r.seqsOf {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		seqs := r.seqsOf[id]
		w := r.appenders[id]
		if len(seqs) > 1 {
			msg := fmt.Sprintf("event %s was committed %d times (seqs %v)", id, len(seqs), seqs)
			if w != nil {
				msg += "; its append carried one idempotency key, so a retry must not append it again"
				c.anomaly("duplicate-append", w.Call, msg, *w)
			} else {
				c.anomaly("duplicate-append", 0, msg)
			}
		}
		if w == nil && !strings.HasPrefix(id, "barrier") {
			c.anomaly("phantom-event", 0, fmt.Sprintf("event %s at seq %v was never appended by any client", id, seqs))
			continue
		}
		if w != nil && w.Type == history.Fail {
			c.anomaly("aborted-read", w.Return, fmt.Sprintf("event %s is in the log at seq %v although its append failed definitely (%s)", id, seqs, w.Err), *w)
		}
	}
}

// durability: every acknowledged append sits at its returned seqs as one
// contiguous batch; indefinite appends are resolved (all or nothing).
func (r *run) durability() {
	c := r.checker("durability: acknowledged appends present at their seqs, batches contiguous, indefinite appends all-or-nothing")
	defer c.done()
	resolved, absent := 0, 0
	for i := range r.ops {
		o := &r.ops[i]
		if (o.F != history.FAppend && o.F != history.FAppendIf) || o.Type == history.Fail {
			continue
		}
		c.n++
		ids := o.Args.IDs
		if o.Type == history.OK {
			if o.Result.Last < o.Result.First || o.Result.Last-o.Result.First+1 != uint64(len(ids)) {
				c.anomaly("non-contiguous-batch", o.Return, fmt.Sprintf("a batch of %d events was acknowledged with the range %d–%d", len(ids), o.Result.First, o.Result.Last), *o)
			}
			if !r.haveLog {
				r.committed = append(r.committed, o)
				continue
			}
			var missing, moved []string
			for k, id := range ids {
				seqs := r.seqsOf[id]
				want := o.Result.First + uint64(k)
				if len(seqs) == 0 {
					missing = append(missing, id)
				} else if seqs[0] != want {
					moved = append(moved, fmt.Sprintf("%s at %d, acknowledged at %d", id, seqs[0], want))
				}
			}
			if len(missing) > 0 {
				where := "postfix"
				if len(r.log) > 0 && o.Result.First <= r.log[len(r.log)-1].Seq {
					where = "middle"
				}
				c.anomaly("lost-write", o.Return, fmt.Sprintf("acknowledged append (seq %d–%d) lost %d of %d events (%v) from the final log (%s loss)",
					o.Result.First, o.Result.Last, len(missing), len(ids), missing, where), *o)
			}
			if len(moved) > 0 {
				c.anomaly("wrong-position", o.Return, fmt.Sprintf("acknowledged events are not at the acknowledged seqs: %v", moved), *o)
			}
			r.committed = append(r.committed, o)
			r.markBatch(o.Result.First, o.Result.Last)
			continue
		}
		// indefinite
		if !r.haveLog {
			continue
		}
		present := 0
		var first, last uint64
		for _, id := range ids {
			if s := r.seqsOf[id]; len(s) > 0 {
				present++
				if first == 0 || s[0] < first {
					first = s[0]
				}
				last = max(last, s[0])
			}
		}
		switch {
		case present == 0:
			absent++
		case present != len(ids):
			c.anomaly("torn-batch", o.Call, fmt.Sprintf("only %d of %d events of an append with unknown outcome were committed", present, len(ids)), *o)
		default:
			if last-first+1 != uint64(len(ids)) {
				c.anomaly("non-contiguous-batch", o.Call, fmt.Sprintf("the events of one append are spread over seq %d–%d", first, last), *o)
			}
			resolved++
			o.Result.First, o.Result.Last = first, last
			r.committed = append(r.committed, o)
			r.markBatch(first, last)
		}
	}
	c.note = fmt.Sprintf("%d indefinite appends resolved as committed, %d as not committed", resolved, absent)
}

func (r *run) markBatch(first, last uint64) {
	for s := first; s <= last && s-first < 10000; s++ {
		r.batchOf[s] = [2]uint64{first, last}
	}
}

// ctxVersionBefore is the highest seq of ctx below seq in the final log.
func (r *run) ctxVersionBefore(ctx string, seq uint64) uint64 {
	s := r.ctxSeqs[ctx]
	i := sort.Search(len(s), func(i int) bool { return s[i] >= seq })
	if i == 0 {
		return 0
	}
	return s[i-1]
}

// appendIf: at most one success per (ctx, expected); each success's
// predecessor in its context is the expected version; conflict versions
// were real versions of the context.
func (r *run) appendIf() {
	c := r.checker("append_if: at most one success per (context, expected version), preconditions held")
	defer c.done()
	wins := map[string][]history.Op{}
	for _, o := range r.committed {
		if o.F != history.FAppendIf || o.Args.Expected == nil {
			continue
		}
		c.n++
		k := fmt.Sprintf("%s@%d", o.Args.Ctx, *o.Args.Expected)
		wins[k] = append(wins[k], *o)
		if r.haveLog {
			if pred := r.ctxVersionBefore(o.Args.Ctx, o.Result.First); pred != *o.Args.Expected {
				c.anomaly("append-if-precondition", o.Return, fmt.Sprintf("append_if on %s expected version %d but in the final log the context stood at %d before seq %d",
					o.Args.Ctx, *o.Args.Expected, pred, o.Result.First), *o)
			}
		}
	}
	keys := make([]string, 0, len(wins))
	for k := range wins {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if w := wins[k]; len(w) > 1 {
			c.anomaly("double-append-if", w[1].Call, fmt.Sprintf("%d append_if calls with the same context and expected version (%s) all succeeded: a double booking", len(w), k), w...)
		}
	}
	for _, o := range r.ops {
		if o.F != history.FAppendIf || o.Type != history.Fail || o.Result.Actual == nil || !r.haveLog {
			continue
		}
		c.n++
		a := *o.Result.Actual
		if a == 0 {
			continue
		}
		if e, ok := r.bySeq[a]; !ok || e.Ctx != o.Args.Ctx {
			c.anomaly("bogus-conflict", o.Return, fmt.Sprintf("a conflict reported actual version %d for %s, which is not a version of that context", a, o.Args.Ctx), o)
		}
	}
}

// realTime: if append A was acknowledged before append B was invoked, A's
// seqs are below B's.
func (r *run) realTime() {
	c := r.checker("real-time order of acknowledged appends")
	defer c.done()
	var acked []history.Op
	for _, o := range r.ops {
		if (o.F == history.FAppend || o.F == history.FAppendIf) && o.Type == history.OK {
			acked = append(acked, o)
		}
	}
	byRet := append([]history.Op(nil), acked...)
	sort.Slice(byRet, func(i, j int) bool { return byRet[i].Return < byRet[j].Return })
	prefMax := make([]int, len(byRet)) // index of the max Last among byRet[:i+1]
	for i := range byRet {
		prefMax[i] = i
		if i > 0 && byRet[prefMax[i-1]].Result.Last > byRet[i].Result.Last {
			prefMax[i] = prefMax[i-1]
		}
	}
	for _, b := range acked {
		c.n++
		j := sort.Search(len(byRet), func(i int) bool { return byRet[i].Return >= b.Call }) - 1
		if j < 0 {
			continue
		}
		a := byRet[prefMax[j]]
		if a.Result.Last >= b.Result.First {
			c.anomaly("real-time-order", b.Return, fmt.Sprintf("append acknowledged at %.3fs got seq %d–%d, but an append invoked later (%.3fs) got the lower seq %d",
				float64(a.Return)/1e9, a.Result.First, a.Result.Last, float64(b.Call)/1e9, b.Result.First), a, b)
		}
	}
}

// ackIndex answers "the highest seq acknowledged (to ctx, or anywhere)
// before time t".
type ackIndex struct {
	ret  []int64
	last []uint64 // prefix max
	ops  []history.Op
	arg  []int // index in ops of the prefix max
}

func newAckIndex(ops []history.Op) *ackIndex {
	sort.Slice(ops, func(i, j int) bool { return ops[i].Return < ops[j].Return })
	x := &ackIndex{ops: ops}
	var m uint64
	mi := -1
	for i, o := range ops {
		if o.Result.Last > m {
			m, mi = o.Result.Last, i
		}
		x.ret = append(x.ret, o.Return)
		x.last = append(x.last, m)
		x.arg = append(x.arg, mi)
	}
	return x
}

func (x *ackIndex) before(t int64) (uint64, *history.Op) {
	j := sort.Search(len(x.ret), func(i int) bool { return x.ret[i] >= t }) - 1
	if j < 0 || x.arg[j] < 0 {
		return 0, nil
	}
	return x.last[j], &x.ops[x.arg[j]]
}

// reads: contents match the final log; linearizable reads are neither stale
// nor from the future; local reads honour their minimum; reads per worker
// are monotonic.
func (r *run) reads() {
	stale := r.checker("reads: no stale linearizable read (every write acknowledged before the read began is visible)")
	content := r.checker("reads: results are exact slices of the final log (no phantom, missing or future events)")
	mono := r.checker("reads: monotonic per client (and local reads honour their minimum)")
	defer stale.done()
	defer content.done()
	defer mono.done()

	perCtx := map[string][]history.Op{}
	var all []history.Op
	var invoked []history.Op // committed appends by invocation time (future reads)
	for _, o := range r.committed {
		perCtx[o.Args.Ctx] = append(perCtx[o.Args.Ctx], *o)
		if o.Type == history.OK {
			all = append(all, *o)
		}
		invoked = append(invoked, *o)
	}
	idx := map[string]*ackIndex{}
	for k, v := range perCtx {
		var acked []history.Op
		for _, o := range v {
			if o.Type == history.OK {
				acked = append(acked, o)
			}
		}
		idx[k] = newAckIndex(acked)
	}
	global := newAckIndex(all)
	sort.Slice(invoked, func(i, j int) bool { return invoked[i].Call < invoked[j].Call })

	type key struct{ w, ctx string }
	seen := map[key]history.Op{}
	for _, o := range r.ops {
		if o.Type != history.OK || (o.F != history.FQuery && o.F != history.FTail && o.F != history.FLocalQuery) {
			continue
		}
		cv := o.Result.CV
		ctx := o.Args.Ctx
		if o.F == history.FTail {
			ctx = "*"
		}
		// stale
		if o.F != history.FLocalQuery {
			stale.n++
			x := global
			if o.F == history.FQuery {
				x = idx[o.Args.Ctx]
			}
			if x != nil {
				if m, w := x.before(o.Call); m > cv {
					what := "context " + o.Args.Ctx + " version"
					if o.F == history.FTail {
						what = "global tail"
					}
					stale.anomaly("stale-read", o.Call, fmt.Sprintf("stale read: %s on %s at %.3fs saw %s %d, but seq %d had been acknowledged at %.3fs, before the read began",
						o.F, o.Node, float64(o.Call)/1e9, what, cv, m, float64(w.Return)/1e9), o, *w)
				}
			}
		} else {
			mono.n++
			if o.Args.MinApplied > 0 && r.haveLog && o.F == history.FLocalQuery {
				if need := r.ctxVersionBefore(ctx, o.Args.MinApplied+1); cv < need {
					mono.anomaly("local-read-below-min", o.Call, fmt.Sprintf("local read on %s with minimum sequence %d saw %s at version %d, but the context had version %d at that sequence",
						o.Node, o.Args.MinApplied, ctx, cv, need), o)
				}
			}
		}
		// content against the final log
		if r.haveLog {
			content.n++
			if msg := r.checkContent(o, ctx); msg != "" {
				content.anomaly("bad-read", o.Return, msg, o)
			}
			// future: cv must have been written by an append invoked before the read returned
			if cv > 0 {
				j := sort.Search(len(invoked), func(i int) bool { return invoked[i].Call > o.Return })
				var m uint64
				for _, a := range invoked[:j] {
					m = max(m, a.Result.Last)
				}
				if cv > m && !strings.HasPrefix(r.bySeq[cv].ID, "barrier") {
					content.anomaly("future-read", o.Return, fmt.Sprintf("read saw version %d before any append that produced it was invoked (highest invoked: %d)", cv, m), o)
				}
			}
		}
		// monotonic per worker and context
		mono.n++
		k := key{o.Worker, ctx}
		if p, ok := seen[k]; ok && p.Result.CV > cv {
			mono.anomaly("non-monotonic-read", o.Call, fmt.Sprintf("%s read %s at version %d after reading version %d", o.Worker, ctx, cv, p.Result.CV), p, o)
		}
		if p, ok := seen[k]; !ok || cv >= p.Result.CV {
			seen[k] = o
		}
	}
}

func (r *run) checkContent(o history.Op, ctx string) string {
	cv := o.Result.CV
	if ctx == "*" {
		if cv > 0 && r.bySeq[cv].Seq != cv {
			return fmt.Sprintf("tail read returned %d, which is not a sequence number in the final log", cv)
		}
		return ""
	}
	if cv > 0 {
		if e, ok := r.bySeq[cv]; !ok || e.Ctx != ctx {
			return fmt.Sprintf("read returned context version %d for %s, which is not one of its events in the final log", cv, ctx)
		}
	}
	var want []history.Event
	for _, s := range r.ctxSeqs[ctx] {
		if s > o.Args.Min && s <= cv {
			want = append(want, r.bySeq[s])
		}
	}
	got := o.Result.Events
	if len(got) != len(want) {
		return fmt.Sprintf("read of %s (min %d, cv %d) returned %d events; the final log has %d in that range", ctx, o.Args.Min, cv, len(got), len(want))
	}
	for i := range got {
		if got[i].Seq != want[i].Seq || got[i].ID != want[i].ID {
			return fmt.Sprintf("read of %s returned seq %d id %s where the final log has seq %d id %s", ctx, got[i].Seq, got[i].ID, want[i].Seq, want[i].ID)
		}
	}
	var lr uint64
	if len(got) > 0 {
		lr = got[len(got)-1].Seq
	}
	if lr != o.Result.LR {
		return fmt.Sprintf("read returned LastReturnedSequenceNumber %d, its last event is %d", o.Result.LR, lr)
	}
	return ""
}

// consumers: per durable name, deliveries are ordered, atomic, gapless;
// duplicates only where a fault made them allowed; finally every
// matching fact was handled. A consumer group is checked per key (each
// key's facts in order, by whichever member); a parking consumer is
// checked by parking (park.go).
func (r *run) consumers() {
	c := r.checker("durable consumers: every matching fact, in order, atomic batches, duplicates only after faults")
	defer c.done()
	byName := map[string][]history.Op{}
	filter := map[string]string{}
	group := map[string]string{}
	parks := map[string]bool{}
	var names []string
	for _, o := range r.ops {
		switch o.F {
		case history.FDeliver:
			if _, ok := byName[o.Args.Name]; !ok {
				names = append(names, o.Args.Name)
			}
			byName[o.Args.Name] = append(byName[o.Args.Name], o)
		case history.FSubscribe:
			filter[o.Args.Name] = o.Args.Ctx
			if o.Args.Group != "" {
				group[o.Args.Name] = o.Args.Group
			}
			if o.Args.Park > 0 {
				parks[o.Args.Name] = true
			}
		}
	}
	sort.Strings(names)
	dups := 0
	for _, name := range names {
		switch {
		case parks[name]:
			continue // park.go
		case group[name] != "":
			dups += r.checkGroup(c, name, byName[name])
		default:
			dups += r.checkConsumer(c, name, filter[name], byName[name], nil)
		}
	}
	c.note = fmt.Sprintf("%d allowed redeliveries after faults", dups)
}

// checkGroup checks a consumer group's deliveries key by key (the
// workload's key is the context): each key's facts in order, atomic,
// gapless, duplicates only after faults, all handled, whichever member
// handled them.
func (r *run) checkGroup(c *counter, name string, deliveries []history.Op) int {
	byKey := map[string][]history.Op{}
	for _, d := range deliveries {
		for _, e := range d.Args.Events {
			if len(byKey[e.Ctx]) == 0 || byKey[e.Ctx][len(byKey[e.Ctx])-1].ID != d.ID {
				byKey[e.Ctx] = append(byKey[e.Ctx], d)
			}
		}
	}
	keys := map[string]bool{}
	for k := range byKey {
		keys[k] = true
	}
	for _, e := range r.log {
		keys[e.Ctx] = true
	}
	dups := 0
	for _, k := range sortedKeys(keys) {
		var part []history.Op
		for _, d := range byKey[k] {
			d.Args.Events = eventsOf(d.Args.Events, k)
			part = append(part, d)
		}
		dups += r.checkConsumer(c, name+"/"+k, k, part, nil)
	}
	return dups
}

func eventsOf(evs []history.Event, ctx string) []history.Event {
	var out []history.Event
	for _, e := range evs {
		if e.Ctx == ctx {
			out = append(out, e)
		}
	}
	return out
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// checkConsumer checks one durable stream's deliveries (a name, or one
// key of a group): of the facts matching ctx ("" for all) in the final
// log, minus skip (a parking consumer's parked facts), every one handled,
// in order, in whole committed batches, duplicates only after faults. It
// returns the allowed redeliveries.
func (r *run) checkConsumer(c *counter, name, ctx string, deliveries []history.Op, skip map[uint64]bool) int {
	dups := 0
	var expect []uint64 // matching seqs in the final log
	if r.haveLog {
		for _, e := range r.log {
			if (ctx == "" || e.Ctx == ctx) && !skip[e.Seq] {
				expect = append(expect, e.Seq)
			}
		}
	}
	pos := map[uint64]int{}
	for i, s := range expect {
		pos[s] = i
	}
	var cursor uint64 // last seq handled successfully
	handledAt := map[uint64]int64{}
	var prev history.Op
	for _, d := range deliveries {
		c.n++
		ev := d.Args.Events
		if len(ev) == 0 {
			continue
		}
		for i := 1; i < len(ev); i++ {
			if ev[i].Seq <= ev[i-1].Seq {
				c.anomaly("consumer-order", d.Call, fmt.Sprintf("%s received a batch out of order (seq %d after %d)", name, ev[i].Seq, ev[i-1].Seq), d)
			}
		}
		for _, e := range ev {
			if ctx != "" && e.Ctx != ctx {
				c.anomaly("consumer-filter", d.Call, fmt.Sprintf("%s (filter %s) received seq %d of context %s", name, ctx, e.Seq, e.Ctx), d)
			}
		}
		if b, ok := r.batchOf[ev[0].Seq]; ok && r.haveLog {
			var want []uint64
			for s := b[0]; s <= b[1]; s++ {
				if ctx == "" || r.bySeq[s].Ctx == ctx {
					want = append(want, s)
				}
			}
			if len(want) > 0 && (ev[0].Seq != want[0] || ev[len(ev)-1].Seq < want[len(want)-1]) {
				c.anomaly("consumer-torn-batch", d.Call, fmt.Sprintf("%s received seq %d–%d of a batch committed as %d–%d", name, ev[0].Seq, ev[len(ev)-1].Seq, b[0], b[1]), d)
			}
		}
		first := ev[0].Seq
		if r.haveLog && !skip[first] {
			next := uint64(0)
			if i, ok := pos[cursor]; ok && i+1 < len(expect) {
				next = expect[i+1]
			} else if cursor == 0 && len(expect) > 0 {
				next = expect[0]
			} else if !ok && cursor > 0 {
				// the cursor is on a skipped (parked) fact: the next
				// expected one after it
				i := sort.Search(len(expect), func(i int) bool { return expect[i] > cursor })
				if i < len(expect) {
					next = expect[i]
				}
			}
			switch {
			case first <= cursor:
				if t, ok := handledAt[first]; ok && r.faultBetween(t, d.Call) {
					dups++
					if dups <= 20 {
						r.res.Notes = append(r.res.Notes, fmt.Sprintf("allowed redelivery: %s received seq %d again at %.3fs (first handled at %.3fs) after a fault: %s",
							name, first, float64(d.Call)/1e9, float64(t)/1e9, r.faultAt(t)))
					}
				} else {
					c.anomaly("consumer-duplicate", d.Call, fmt.Sprintf("%s received seq %d again after handling it successfully, with no fault in between", name, first), prev, d)
				}
			case next != 0 && first > next:
				c.anomaly("consumer-gap", d.Call, fmt.Sprintf("%s skipped matching facts: after handling up to seq %d it received seq %d; seq %d was due", name, cursor, first, next), prev, d)
			}
		}
		if d.Type == history.OK {
			for _, e := range ev {
				if _, ok := handledAt[e.Seq]; !ok {
					handledAt[e.Seq] = d.Return
				}
			}
			cursor = max(cursor, ev[len(ev)-1].Seq)
		}
		prev = d
	}
	missing := 0
	for _, s := range expect {
		if _, ok := handledAt[s]; !ok {
			missing++
		}
	}
	if r.haveLog && len(expect) > 0 && (cursor < expect[len(expect)-1] || missing > 0) {
		c.anomaly("consumer-incomplete", inf, fmt.Sprintf("%s ended at seq %d; the final log's last matching fact is %d (%d matching facts never handled)", name, cursor, expect[len(expect)-1], missing), prev)
	}
	return dups
}
