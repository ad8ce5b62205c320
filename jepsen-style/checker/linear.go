package checker

import (
	"fmt"
	"hash/fnv"
	"os"
	"sort"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/factstr/factstr-go/jepsen-style/history"
)

// The porcupine model of FACTSTR (fault-suite design, part c): an
// append-only log with per-context versions, kept to a constant-size state
// (a version and a hash chained over the (seq, id) pairs). The history is
// partitioned: one partition per context (state: V[k], Hk[k]) and one
// global partition of all committed appends and tail reads (state: T, H).
// Each partition is a projection of the single-log specification, so the
// check is sound but not complete; the other checkers cover the coupling.

type pState struct {
	V uint64 // context version (or global tail)
	H uint64 // hash chained over (seq, id)
}

type pInput struct {
	Kind     string // append, append_if, query, tail
	Ctx      string
	IDs      []string
	Expected uint64
	Min      uint64
}

type pOutput struct {
	Committed bool // append: it committed at First..Last
	First     uint64
	Last      uint64
	Conflict  bool
	Actual    uint64
	CV        uint64
	Hash      uint64 // of the returned events (query, min 0)
	Unknown   bool   // committed, but acknowledged to nobody
}

func chain(h, seq uint64, id string) uint64 {
	f := fnv.New64a()
	var b [8]byte
	for i := range b {
		b[i] = byte(h >> (8 * i))
	}
	f.Write(b[:])
	for i := range b {
		b[i] = byte(seq >> (8 * i))
	}
	f.Write(b[:])
	f.Write([]byte(id))
	return f.Sum64()
}

func chainIDs(h, first uint64, ids []string) uint64 {
	for i, id := range ids {
		h = chain(h, first+uint64(i), id)
	}
	return h
}

func hashEvents(evs []history.Event) uint64 {
	var h uint64
	for _, e := range evs {
		h = chain(h, e.Seq, e.ID)
	}
	return h
}

func ctxModel() porcupine.Model {
	return porcupine.Model{
		Init: func() interface{} { return pState{} },
		Step: func(st, in, out interface{}) (bool, interface{}) {
			s, i, o := st.(pState), in.(pInput), out.(pOutput)
			switch i.Kind {
			case history.FAppend, history.FAppendIf:
				if o.Conflict {
					return i.Expected != s.V && o.Actual == s.V, s
				}
				if o.First <= s.V || o.Last-o.First+1 != uint64(len(i.IDs)) {
					return false, s
				}
				if i.Kind == history.FAppendIf && i.Expected != s.V {
					return false, s
				}
				return true, pState{V: o.Last, H: chainIDs(s.H, o.First, i.IDs)}
			case history.FQuery:
				if o.CV != s.V {
					return false, s
				}
				if i.Min == 0 && o.Hash != s.H {
					return false, s
				}
				return true, s
			}
			return false, s
		},
		DescribeOperation: describe,
		DescribeState:     func(st interface{}) string { s := st.(pState); return fmt.Sprintf("v=%d h=%x", s.V, s.H&0xffff) },
	}
}

func globalModel() porcupine.Model {
	return porcupine.Model{
		Init: func() interface{} { return pState{} },
		Step: func(st, in, out interface{}) (bool, interface{}) {
			s, i, o := st.(pState), in.(pInput), out.(pOutput)
			switch i.Kind {
			case history.FAppend, history.FAppendIf:
				if o.First != s.V+1 || o.Last-o.First+1 != uint64(len(i.IDs)) {
					return false, s
				}
				return true, pState{V: o.Last, H: chainIDs(s.H, o.First, i.IDs)}
			case history.FTail:
				return o.CV == s.V, s
			}
			return false, s
		},
		DescribeOperation: describe,
		DescribeState:     func(st interface{}) string { s := st.(pState); return fmt.Sprintf("tail=%d", s.V) },
	}
}

func describe(in, out interface{}) string {
	i, o := in.(pInput), out.(pOutput)
	switch i.Kind {
	case history.FAppend:
		return fmt.Sprintf("append(%s,%d) → %d–%d", i.Ctx, len(i.IDs), o.First, o.Last)
	case history.FAppendIf:
		if o.Conflict {
			return fmt.Sprintf("append_if(%s,exp=%d) → conflict %d", i.Ctx, i.Expected, o.Actual)
		}
		return fmt.Sprintf("append_if(%s,exp=%d) → %d–%d", i.Ctx, i.Expected, o.First, o.Last)
	case history.FQuery:
		return fmt.Sprintf("query(%s,min=%d) → cv=%d", i.Ctx, i.Min, o.CV)
	case history.FTail:
		return fmt.Sprintf("tail() → %d", o.CV)
	}
	return i.Kind
}

// PartitionResult is porcupine's verdict on one partition.
type PartitionResult struct {
	Name   string
	Ops    int
	Result porcupine.CheckResult
	model  porcupine.Model
	info   porcupine.LinearizationInfo
}

// WriteVisualization writes porcupine's HTML for a partition.
func (p PartitionResult) WriteVisualization(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return porcupine.Visualize(p.model, p.info, f)
}

func (r *run) porcupine(timeoutSec int) {
	c := r.checker("linearizability (porcupine; per-context partitions + global tail partition)")
	defer c.done()
	if !r.haveLog {
		c.note = "skipped: no final log to resolve indefinite appends"
		return
	}
	committed := map[int]bool{}
	for _, o := range r.committed {
		committed[o.ID] = true
	}
	parts := map[string][]porcupine.Operation{}
	var global []porcupine.Operation
	src := map[string][]history.Op{}
	for _, o := range r.ops {
		var in pInput
		var out pOutput
		ret := o.Return
		switch o.F {
		case history.FAppend, history.FAppendIf:
			in = pInput{Kind: o.F, Ctx: o.Args.Ctx, IDs: o.Args.IDs}
			if o.Args.Expected != nil {
				in.Expected = *o.Args.Expected
			}
			switch {
			case o.Type == history.Fail && o.Result.Actual != nil:
				out = pOutput{Conflict: true, Actual: *o.Result.Actual}
			case committed[o.ID]:
				out = pOutput{Committed: true, First: o.Result.First, Last: o.Result.Last}
				if o.Type != history.OK {
					ret = inf
				}
			default:
				continue // failed, or indefinite and not in the log: it never happened
			}
		case history.FQuery:
			if o.Type != history.OK {
				continue
			}
			in = pInput{Kind: o.F, Ctx: o.Args.Ctx, Min: o.Args.Min}
			out = pOutput{CV: o.Result.CV, Hash: hashEvents(o.Result.Events)}
		case history.FTail:
			if o.Type != history.OK {
				continue
			}
			in = pInput{Kind: o.F}
			out = pOutput{CV: o.Result.CV}
		default:
			continue
		}
		op := porcupine.Operation{ClientId: o.Proc, Input: in, Call: o.Call, Output: out, Return: ret}
		if o.F != history.FTail {
			parts[o.Args.Ctx] = append(parts[o.Args.Ctx], op)
			src[o.Args.Ctx] = append(src[o.Args.Ctx], o)
		}
		if o.F != history.FQuery && !out.Conflict {
			global = append(global, op)
			src["*"] = append(src["*"], o)
		}
	}
	names := make([]string, 0, len(parts))
	for k := range parts {
		names = append(names, k)
	}
	sort.Strings(names)
	run := func(name string, m porcupine.Model, ops []porcupine.Operation) {
		c.n += len(ops)
		res, info := porcupine.CheckOperationsVerbose(m, ops, time.Duration(timeoutSec)*time.Second)
		r.res.Porcupine = append(r.res.Porcupine, PartitionResult{Name: name, Ops: len(ops), Result: res, model: m, info: info})
		switch res {
		case porcupine.Illegal:
			c.anomaly("not-linearizable", 0, fmt.Sprintf("porcupine found no linearization of partition %s (%d operations); see porcupine-%s.html for the longest linearizable prefixes", name, len(ops), name), tailOps(src[name], 6)...)
		case porcupine.Unknown:
			c.anomaly("linearizability-inconclusive", 0, fmt.Sprintf("porcupine timed out after %ds on partition %s (%d operations)", timeoutSec, name, len(ops)))
		}
	}
	for _, k := range names {
		run("ctx-"+k, ctxModel(), parts[k])
	}
	run("global", globalModel(), global)
}

func tailOps(ops []history.Op, n int) []history.Op {
	if len(ops) > n {
		return ops[len(ops)-n:]
	}
	return ops
}
