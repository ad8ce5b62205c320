package history

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
)

func u64(v uint64) *uint64 { return &v }

// record writes a small history covering every Value field the checkers
// read, completed out of invocation order.
func record(t *testing.T, r *Recorder) {
	t.Helper()
	a := r.Invoke(1, "w0", "n1", FAppendIf, &Value{Ctx: "c0", IDs: []string{"w0-1", "w0-2"}, Expected: u64(0), Key: "w0-k2"})
	q := r.Invoke(2, "w1", "any", FQuery, &Value{Ctx: "c0", Min: 3})
	r.Complete(q, 2, "w1", "any", FQuery, OK, &Value{Events: []Event{{Seq: 1, ID: "w0-1", Ctx: "c0"}}, LR: 1, CV: 1}, nil)
	r.Complete(a, 1, "w0", "n1", FAppendIf, Fail, &Value{Actual: u64(7)}, errors.New("conflict"))
	n := r.Invoke(-1, "nemesis", "", FNemesis, &Value{Fault: "kill"})
	r.Complete(n, -1, "nemesis", "", FNemesis, OK, &Value{Fault: "SIGKILL n2"}, nil)
	r.Invoke(3, "final", "n1", FFinalRead, &Value{MinApplied: 9})
}

func TestRecorderNumbersEntriesAndOps(t *testing.T) {
	r, err := NewRecorder("")
	if err != nil {
		t.Fatal(err)
	}
	record(t, r)
	es := r.Entries()
	if len(es) != 7 {
		t.Fatalf("%d entries, want 7", len(es))
	}
	wantOps := []int{0, 1, 1, 0, 2, 2, 3}
	wantTypes := []string{Invoke, Invoke, OK, Fail, Invoke, OK, Invoke}
	for i, e := range es {
		if e.Index != i {
			t.Errorf("entry %d has index %d", i, e.Index)
		}
		if e.Op != wantOps[i] || e.Type != wantTypes[i] {
			t.Errorf("entry %d: op %d type %s, want op %d type %s", i, e.Op, e.Type, wantOps[i], wantTypes[i])
		}
		if i > 0 && e.Time < es[i-1].Time {
			t.Errorf("entry %d at %d before entry %d at %d", i, e.Time, i-1, es[i-1].Time)
		}
	}
	if es[3].Err != "conflict" || *es[3].Value.Actual != 7 {
		t.Errorf("failed append_if completion: %+v", es[3])
	}
	// Entries is a copy: changing it does not change the recorder.
	es[0].F = "changed"
	if r.Entries()[0].F != FAppendIf {
		t.Error("Entries shares its slice with the recorder")
	}
	if err := r.Close(); err != nil {
		t.Fatalf("Close of an in-memory recorder: %v", err)
	}
}

func TestRecorderFileRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "history.jsonl")
	r, err := NewRecorder(path)
	if err != nil {
		t.Fatal(err)
	}
	record(t, r)
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, err := Read(f)
	if err != nil {
		t.Fatal(err)
	}
	if want := r.Entries(); !reflect.DeepEqual(got, want) {
		t.Fatalf("read back\n%+v\nwant\n%+v", got, want)
	}
}

func TestNewRecorderBadPath(t *testing.T) {
	if _, err := NewRecorder(filepath.Join(t.TempDir(), "missing", "h.jsonl")); err == nil {
		t.Fatal("NewRecorder in a missing directory succeeded")
	}
}

func TestRecorderConcurrent(t *testing.T) {
	r, _ := NewRecorder("")
	const procs, each = 8, 50
	var wg sync.WaitGroup
	for p := 0; p < procs; p++ {
		wg.Add(1)
		go func(p int) {
			defer wg.Done()
			for i := 0; i < each; i++ {
				op := r.Invoke(p, "w", "n1", FAppend, nil)
				r.Complete(op, p, "w", "n1", FAppend, OK, nil, nil)
			}
		}(p)
	}
	wg.Wait()
	es := r.Entries()
	if len(es) != 2*procs*each {
		t.Fatalf("%d entries, want %d", len(es), 2*procs*each)
	}
	invoked := map[int]int{}
	for i, e := range es {
		if e.Index != i {
			t.Fatalf("entry %d has index %d", i, e.Index)
		}
		if e.Type == Invoke {
			if _, dup := invoked[e.Op]; dup {
				t.Fatalf("op id %d invoked twice", e.Op)
			}
			invoked[e.Op] = e.Proc
		} else if p, ok := invoked[e.Op]; !ok || p != e.Proc {
			t.Fatalf("completion of op %d by proc %d before its invocation (or by another proc %d)", e.Op, e.Proc, p)
		}
	}
}

// TestNewProcessIsUniquePerRecorder: process ids are the recorder's, so two
// runs in one process (the runner's tests) each start from 1, and concurrent
// callers never share an id.
func TestNewProcessIsUniquePerRecorder(t *testing.T) {
	r, _ := NewRecorder("")
	const callers, each = 8, 100
	ids := make(chan int, callers*each)
	var wg sync.WaitGroup
	for c := 0; c < callers; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				ids <- r.NewProcess()
			}
		}()
	}
	wg.Wait()
	close(ids)
	seen := map[int]bool{}
	for id := range ids {
		if id < 1 || id > callers*each || seen[id] {
			t.Fatalf("process id %d repeated or out of 1..%d", id, callers*each)
		}
		seen[id] = true
	}
	other, _ := NewRecorder("")
	if got := other.NewProcess(); got != 1 {
		t.Fatalf("a new recorder's first process is %d, want 1", got)
	}
}

func TestRead(t *testing.T) {
	for _, tc := range []struct {
		name    string
		in      string
		wantOps []int
		wantErr string
	}{
		{name: "empty", in: ""},
		{name: "blank lines skipped", in: "\n{\"i\":0,\"op\":4,\"f\":\"append\",\"type\":\"invoke\"}\n\n{\"i\":1,\"op\":4,\"f\":\"append\",\"type\":\"ok\"}\n", wantOps: []int{4, 4}},
		{name: "no trailing newline", in: `{"i":0,"op":2,"f":"query","type":"invoke"}`, wantOps: []int{2}},
		{name: "malformed line named", in: "{\"i\":0,\"op\":1,\"f\":\"query\",\"type\":\"invoke\"}\n{\"i\":1,\n", wantErr: "history line 2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			es, err := Read(strings.NewReader(tc.in))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var ops []int
			for _, e := range es {
				ops = append(ops, e.Op)
			}
			if !reflect.DeepEqual(ops, tc.wantOps) {
				t.Fatalf("ops %v, want %v", ops, tc.wantOps)
			}
		})
	}
}

func TestPair(t *testing.T) {
	entries := []Entry{
		{Index: 0, Op: 0, Time: 30, Proc: 1, Worker: "w0", Node: "n1", F: FAppend, Type: Invoke, Value: &Value{Ctx: "c0", IDs: []string{"a"}}},
		{Index: 1, Op: 1, Time: 10, Proc: 2, Worker: "w1", Node: "n2", F: FQuery, Type: Invoke, Value: &Value{Ctx: "c1"}},
		{Index: 2, Op: 9, Time: 15, Proc: 3, F: FQuery, Type: OK}, // completion without invocation: dropped
		{Index: 3, Op: 1, Time: 40, Proc: 2, F: FQuery, Type: OK, Value: &Value{CV: 5, LR: 5}},
		{Index: 4, Op: 2, Time: 30, Proc: 4, F: FTail, Type: Invoke},
		{Index: 5, Op: 2, Time: 50, Proc: 4, F: FTail, Type: Fail, Err: "unavailable"},
	}
	ops := Pair(entries)
	type got struct {
		ID             int
		Type           string
		Call, Return   int64
		ArgCtx, Err    string
		CV             uint64
		InvokeIx, Proc int
	}
	var g []got
	for _, o := range ops {
		g = append(g, got{o.ID, o.Type, o.Call, o.Return, o.Args.Ctx, o.Err, o.Result.CV, o.InvokeIx, o.Proc})
	}
	want := []got{
		// sorted by call time; equal call times keep invocation order
		{1, OK, 10, 40, "c1", "", 5, 1, 2},
		{0, Info, 30, math.MaxInt64, "c0", "", 0, 0, 1}, // never completed: unknown, open-ended
		{2, Fail, 30, 50, "", "unavailable", 0, 4, 4},
	}
	if !reflect.DeepEqual(g, want) {
		t.Fatalf("Pair:\n got %+v\nwant %+v", g, want)
	}
	if ops[1].Worker != "w0" || ops[1].Node != "n1" || ops[1].F != FAppend || !reflect.DeepEqual(ops[1].Args.IDs, []string{"a"}) {
		t.Fatalf("invocation fields not carried: %+v", ops[1])
	}
}

func TestOpString(t *testing.T) {
	var evs []Event
	for i := 1; i <= 10; i++ {
		evs = append(evs, Event{Seq: uint64(i), ID: "e"})
	}
	for _, tc := range []struct {
		name string
		op   Op
		want []string
		not  []string
	}{
		{
			name: "append ok",
			op: Op{ID: 3, F: FAppend, Type: OK, Worker: "w0", Node: "n1", Call: 1.5e9, Return: 2.25e9,
				Args: Value{Ctx: "c0", IDs: []string{"w0-1", "w0-2"}}, Result: Value{First: 4, Last: 5}},
			want: []string{"op#3 append ok by w0 on n1 [1.500s–2.250s]", " ctx=c0", " ids=[w0-1 w0-2]", " → seq 4–5"},
		},
		{
			name: "append_if conflict",
			op:   Op{F: FAppendIf, Type: Fail, Return: 1, Args: Value{Expected: u64(2)}, Result: Value{Actual: u64(6)}, Err: "conflict"},
			want: []string{" expected=2", " → conflict actual=6", " err=conflict"},
		},
		{
			name: "pending",
			op:   Op{F: FAppend, Type: Info, Call: 1e9, Return: math.MaxInt64},
			want: []string{"[1.000s–?]"},
			not:  []string{"→"},
		},
		{
			name: "query ok",
			op:   Op{F: FQuery, Type: OK, Args: Value{Min: 3}, Result: Value{CV: 9, LR: 8, Events: evs[:2]}},
			want: []string{" min=3", " → cv=9 lr=8 n=2"},
		},
		{
			name: "query failed has no result",
			op:   Op{F: FLocalQuery, Type: Fail, Args: Value{MinApplied: 4}, Err: "timeout"},
			want: []string{" min_applied=4", " err=timeout"},
			not:  []string{"cv="},
		},
		{
			name: "deliver",
			op:   Op{F: FDeliver, Type: OK, Result: Value{Name: "all", Incarnation: 2, Events: evs[2:5]}},
			want: []string{" all#2 seq 3–5"},
		},
		{
			name: "live batch truncated after 8 events",
			op:   Op{F: FLive, Type: OK, Args: Value{Name: "live-all", Incarnation: 1, Events: evs}},
			want: []string{" live-all#1 1:e 2:e", " 8:e …(10 events)"},
			not:  []string{" 9:e"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.op.String()
			for _, w := range tc.want {
				if !strings.Contains(s, w) {
					t.Errorf("%q lacks %q", s, w)
				}
			}
			for _, n := range tc.not {
				if strings.Contains(s, n) {
					t.Errorf("%q has %q", s, n)
				}
			}
		})
	}
}
