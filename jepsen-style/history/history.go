// Package history is the record of a fault-injection run: every invocation
// and completion of a client operation, every nemesis action, as JSON lines.
package history

import (
	"bufio"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// Entry types.
const (
	Invoke = "invoke"
	OK     = "ok"
	Fail   = "fail" // definitely did not happen
	Info   = "info" // unknown: may or may not have happened (timeout, connection lost)
)

// Operation kinds (F).
const (
	FAppend     = "append"      // blind append of events in one context
	FAppendIf   = "append_if"   // conditional append on a context
	FQuery      = "query"       // linearizable (default) query on a context
	FTail       = "tail"        // linearizable query whose cv is the global tail
	FLocalQuery = "local_query" // Local consistency with a minimum applied sequence
	FDeliver    = "deliver"     // a durable consumer's handler call (ok: handler returned nil)
	FSubscribe  = "subscribe"   // a durable consumer (re)subscribing; completion ends the incarnation
	FFinalRead  = "final_read"  // full log read from one node after healing
	FNemesis    = "nemesis"     // a fault starting (invoke) or ending (ok)
	// FMemberCheck is an expectation about membership the nemesis checked
	// (a removed node stayed out; a re-added node became a caught-up
	// voter): ok or fail, v.fault says what was seen.
	FMemberCheck = "member_check"
	// FLiveSubscribe is a live (non-durable) StreamAll / StreamTo call:
	// v.name, v.ctx (filter, "" for every event), v.inc (incarnation).
	FLiveSubscribe = "live_subscribe"
	// FLive is one batch delivered to a live subscription: v.name, v.inc, v.events.
	FLive = "live"
	// FParked is the final list of a parking consumer's parked events,
	// read after healing: v.name; the result's events.
	FParked = "parked"
)

// Poison reports whether the parking consumer's handler refuses the
// event with this id: about one id in forty, decided by the id alone so
// that the checker knows which events had to be parked.
func Poison(id string) bool {
	h := fnv.New32a()
	h.Write([]byte(id))
	return h.Sum32()%40 == 0
}

// Event is one committed fact as observed: its sequence number and its
// globally unique id (from the payload).
type Event struct {
	Seq uint64 `json:"s"`
	ID  string `json:"id"`
	Ctx string `json:"c,omitempty"`
	// At is OccurredAt in Unix ns; recorded in final reads only.
	At int64 `json:"at,omitempty"`
}

// Value is the argument (on invoke) or result (on completion) of an operation.
type Value struct {
	Ctx         string   `json:"ctx,omitempty"`
	IDs         []string `json:"ids,omitempty"`      // appended event ids
	Expected    *uint64  `json:"expected,omitempty"` // append_if
	First       uint64   `json:"first,omitempty"`
	Last        uint64   `json:"last,omitempty"`
	Actual      *uint64  `json:"actual,omitempty"` // append_if conflict
	Min         uint64   `json:"min,omitempty"`    // query cursor (MinSequenceNumber)
	MinApplied  uint64   `json:"min_applied,omitempty"`
	Events      []Event  `json:"events,omitempty"`
	LR          uint64   `json:"lr,omitempty"`
	CV          uint64   `json:"cv,omitempty"`
	Name        string   `json:"name,omitempty"` // durable name
	Incarnation int      `json:"inc,omitempty"`
	Fault       string   `json:"fault,omitempty"` // nemesis description
	Key         string   `json:"key,omitempty"`   // idempotency key
	// Group is the partition key of a consumer group's subscription
	// (FSubscribe of a member): the name is a group.
	Group string `json:"group,omitempty"`
	// Park is the deliveries a parking consumer tries before it parks a
	// batch (FSubscribe): the name parks what it cannot handle.
	Park int `json:"park,omitempty"`
	// Attempt is a delivery's attempt number (FDeliver), 1 for the first.
	Attempt int `json:"attempt,omitempty"`
}

// Entry is one line of the history.
type Entry struct {
	Index  int    `json:"i"`
	Op     int    `json:"op"`   // links an invocation to its completion
	Time   int64  `json:"t"`    // ns since the run started (monotonic)
	Proc   int    `json:"proc"` // process (client) id; -1 for the nemesis
	Worker string `json:"worker,omitempty"`
	Node   string `json:"node,omitempty"`
	F      string `json:"f"`
	Type   string `json:"type"`
	Value  *Value `json:"v,omitempty"`
	Err    string `json:"err,omitempty"`
}

// Recorder appends entries to a JSONL file; safe for concurrent use.
type Recorder struct {
	mu      sync.Mutex
	start   time.Time
	w       *bufio.Writer
	f       *os.File
	n       int
	nextOp  int
	procs   atomic.Int64
	entries []Entry
}

// NewRecorder writes to path (truncated); path "" keeps entries in memory only.
func NewRecorder(path string) (*Recorder, error) {
	r := &Recorder{start: time.Now()}
	if path != "" {
		f, err := os.Create(path)
		if err != nil {
			return nil, err
		}
		r.f, r.w = f, bufio.NewWriter(f)
	}
	return r, nil
}

// NewProcess returns a process id no other caller of this recorder has:
// Jepsen's "process", one sequential client, which a checker may assume
// never has two operations open at once.
func (r *Recorder) NewProcess() int { return int(r.procs.Add(1)) }

// Start is the run's time origin.
func (r *Recorder) Start() time.Time { return r.start }

// Now is the time since the start in ns.
func (r *Recorder) Now() int64 { return int64(time.Since(r.start)) }

func (r *Recorder) add(e Entry) Entry {
	r.mu.Lock()
	defer r.mu.Unlock()
	e.Index = r.n
	r.n++
	e.Time = r.Now()
	r.entries = append(r.entries, e)
	if r.w != nil {
		b, _ := json.Marshal(e)
		r.w.Write(b)
		r.w.WriteByte('\n')
	}
	return e
}

// Invoke records an invocation and returns its op id.
func (r *Recorder) Invoke(proc int, worker, node, f string, v *Value) int {
	r.mu.Lock()
	op := r.nextOp
	r.nextOp++
	r.mu.Unlock()
	r.add(Entry{Op: op, Proc: proc, Worker: worker, Node: node, F: f, Type: Invoke, Value: v})
	return op
}

// Complete records the completion of op.
func (r *Recorder) Complete(op, proc int, worker, node, f, typ string, v *Value, err error) {
	e := Entry{Op: op, Proc: proc, Worker: worker, Node: node, F: f, Type: typ, Value: v}
	if err != nil {
		e.Err = err.Error()
	}
	r.add(e)
}

// Entries returns a copy of everything recorded so far.
func (r *Recorder) Entries() []Entry {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Entry(nil), r.entries...)
}

// Close flushes the file.
func (r *Recorder) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.w == nil {
		return nil
	}
	if err := r.w.Flush(); err != nil {
		return err
	}
	return r.f.Close()
}

// Read parses a JSONL history.
func Read(rd io.Reader) ([]Entry, error) {
	var out []Entry
	sc := bufio.NewScanner(rd)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for ln := 1; sc.Scan(); ln++ {
		if len(sc.Bytes()) == 0 {
			continue
		}
		var e Entry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return nil, fmt.Errorf("history line %d: %w", ln, err)
		}
		out = append(out, e)
	}
	return out, sc.Err()
}

// Op is an invocation paired with its completion.
type Op struct {
	ID       int
	Proc     int
	Worker   string
	Node     string
	F        string
	Type     string // ok, fail, info; "info" also when no completion was recorded
	Call     int64
	Return   int64 // math.MaxInt64 when no completion was recorded
	Args     Value
	Result   Value
	Err      string
	InvokeIx int
}

// Pair joins invocations with completions, in invocation order.
func Pair(entries []Entry) []Op {
	byOp := map[int]*Op{}
	var order []*Op
	for _, e := range entries {
		if e.Type == Invoke {
			o := &Op{ID: e.Op, Proc: e.Proc, Worker: e.Worker, Node: e.Node, F: e.F, Type: Info, Call: e.Time, Return: 1<<63 - 1, InvokeIx: e.Index}
			if e.Value != nil {
				o.Args = *e.Value
			}
			byOp[e.Op] = o
			order = append(order, o)
			continue
		}
		o := byOp[e.Op]
		if o == nil {
			continue
		}
		o.Type, o.Return, o.Err = e.Type, e.Time, e.Err
		if e.Value != nil {
			o.Result = *e.Value
		}
	}
	sort.SliceStable(order, func(i, j int) bool { return order[i].Call < order[j].Call })
	out := make([]Op, len(order))
	for i, o := range order {
		out[i] = *o
	}
	return out
}

// String describes an op in one line for anomaly reports.
func (o Op) String() string {
	s := fmt.Sprintf("op#%d %s %s by %s on %s [%.3fs", o.ID, o.F, o.Type, o.Worker, o.Node, float64(o.Call)/1e9)
	if o.Return == 1<<63-1 {
		s += "–?]"
	} else {
		s += fmt.Sprintf("–%.3fs]", float64(o.Return)/1e9)
	}
	a, r := o.Args, o.Result
	if a.Ctx != "" {
		s += " ctx=" + a.Ctx
	}
	if a.Expected != nil {
		s += fmt.Sprintf(" expected=%d", *a.Expected)
	}
	if len(a.IDs) > 0 {
		s += fmt.Sprintf(" ids=%v", a.IDs)
	}
	if a.Min > 0 {
		s += fmt.Sprintf(" min=%d", a.Min)
	}
	if a.MinApplied > 0 {
		s += fmt.Sprintf(" min_applied=%d", a.MinApplied)
	}
	if r.First > 0 {
		s += fmt.Sprintf(" → seq %d–%d", r.First, r.Last)
	}
	if r.Actual != nil {
		s += fmt.Sprintf(" → conflict actual=%d", *r.Actual)
	}
	if o.F == FQuery || o.F == FTail || o.F == FLocalQuery {
		if o.Type == OK {
			s += fmt.Sprintf(" → cv=%d lr=%d n=%d", r.CV, r.LR, len(r.Events))
		}
	}
	if o.F == FDeliver && len(r.Events) > 0 {
		s += fmt.Sprintf(" %s#%d seq %d–%d", r.Name, r.Incarnation, r.Events[0].Seq, r.Events[len(r.Events)-1].Seq)
	}
	if o.F == FLive || o.F == FLiveSubscribe {
		s += fmt.Sprintf(" %s#%d", a.Name, a.Incarnation)
		for i, e := range a.Events {
			if i == 8 {
				s += fmt.Sprintf(" …(%d events)", len(a.Events))
				break
			}
			s += fmt.Sprintf(" %d:%s", e.Seq, e.ID)
		}
	}
	if o.Err != "" {
		s += " err=" + o.Err
	}
	return s
}
