package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/factstr/factstr-go/client"
	"github.com/factstr/factstr-go/contract"
	"github.com/factstr/factstr-go/internal/server"
	"github.com/factstr/factstr-go/internal/testgrpc"
	"github.com/factstr/factstr-go/jepsen-style/checker"
	"github.com/factstr/factstr-go/jepsen-style/history"
	"github.com/factstr/factstr-go/memstore"
)

// serveStore serves an in-memory store over gRPC on loopback, the API a
// node serves, and returns a dialled client: the workload, the consumers
// and the final phase run against it as against a cluster.
func serveStore(t *testing.T) *client.Client {
	t.Helper()
	store := memstore.New()
	t.Cleanup(func() { _ = store.Close() })
	addr := testgrpc.Serve(t, func(srv *grpc.Server) {
		server.NewEventStore(store, nil).Register(srv)
		server.NewDurables(store).Register(srv)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl, err := client.Dial(ctx, []string{addr}, client.WithRetryTimeout(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cl.Close() })
	return cl
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestClassifyWrite(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"conflict", &contract.ConflictError{Expected: 1, Actual: 2}, history.Fail},
		{"wrapped conflict", fmt.Errorf("append: %w", &contract.ConflictError{Expected: 1, Actual: 2}), history.Fail},
		{"empty append", contract.ErrEmptyAppend, history.Fail},
		{"invalid event", fmt.Errorf("x: %w", contract.ErrInvalidEvent), history.Fail},
		{"limit exceeded", contract.ErrLimitExceeded, history.Fail},
		{"timeout", context.DeadlineExceeded, history.Info},
		{"cancelled", context.Canceled, history.Info},
		{"closed", contract.ErrClosed, history.Info},
		{"anything else", errors.New("connection reset"), history.Info},
	} {
		if got := classifyWrite(tc.err); got != tc.want {
			t.Errorf("%s: classifyWrite = %s, want %s", tc.name, got, tc.want)
		}
	}
}

func TestPayloadsAndQueries(t *testing.T) {
	w := &worker{name: "w3", n: 7}
	evs, ids := w.events("c2", 3)
	if !reflect.DeepEqual(ids, []string{"w3-8", "w3-9", "w3-10"}) || w.n != 10 {
		t.Fatalf("ids %v (n %d), want w3-8..w3-10", ids, w.n)
	}
	var recs []contract.EventRecord
	for i, e := range evs {
		if e.Type != eventType {
			t.Fatalf("event type %q", e.Type)
		}
		recs = append(recs, contract.EventRecord{SequenceNumber: uint64(20 + i), Type: e.Type, Payload: e.Payload})
	}
	recs = append(recs, contract.EventRecord{SequenceNumber: 30, Type: "barrier", Payload: json.RawMessage(`not json`)})
	want := []history.Event{{Seq: 20, ID: "w3-8", Ctx: "c2"}, {Seq: 21, ID: "w3-9", Ctx: "c2"}, {Seq: 22, ID: "w3-10", Ctx: "c2"}, {Seq: 30}}
	if got := toEvents(recs); !reflect.DeepEqual(got, want) {
		t.Fatalf("toEvents = %+v, want %+v", got, want)
	}
	if got := toEvents(nil); got == nil || len(got) != 0 {
		t.Fatalf("toEvents(nil) = %#v, want an empty slice", got)
	}

	m, err := contract.NewMatcher(ctxQuery("c2"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		typ, payload string
		want         bool
	}{
		{eventType, `{"ctx":"c2","id":"x"}`, true},
		{eventType, `{"ctx":"c20","id":"x"}`, false},
		{eventType, `{"ctx":"c1","id":"x"}`, false},
		{"barrier", `{"ctx":"c2","id":"x"}`, false},
	} {
		if got := m.Match(tc.typ, json.RawMessage(tc.payload)); got != tc.want {
			t.Errorf("ctxQuery(c2) matches %s %s: %v, want %v", tc.typ, tc.payload, got, tc.want)
		}
	}
}

func TestPickCtxSkewed(t *testing.T) {
	w := &worker{rng: rand.New(rand.NewSource(3)), ctxs: []string{"c0", "c1", "c2", "c3", "c4", "c5"}}
	n := map[string]int{}
	for i := 0; i < 6000; i++ {
		n[w.pickCtx()]++
	}
	if len(n) != 6 {
		t.Fatalf("contexts picked: %v", n)
	}
	// min of two uniform picks: P(c_k) = (11-2k)/36, c0 about 11 times c5.
	for k := 1; k < 6; k++ {
		if n[fmt.Sprintf("c%d", k)] >= n[fmt.Sprintf("c%d", k-1)] {
			t.Fatalf("c%d picked as often as c%d: %v", k, k-1, n)
		}
	}
}

// TestWorkloadAgainstStore runs the workload's workers against a correct
// store and checks what they recorded: every invocation completes, the
// arguments follow the worker's bookkeeping, and the checkers find no
// anomaly in the history with the final phase's barrier and final read.
func TestWorkloadAgainstStore(t *testing.T) {
	cl := serveStore(t)
	ctx := testCtx(t)
	rec, _ := history.NewRecorder("")
	ctxs := []string{"c0", "c1", "c2"}
	var workers []*worker
	for i := 0; i < 3; i++ {
		workers = append(workers, &worker{name: fmt.Sprintf("w%d", i), node: "n1", cl: cl, rec: rec, rng: rand.New(rand.NewSource(int64(i))),
			proc: rec.NewProcess(), ctxs: ctxs, timeout: 5 * time.Second, mix: mix{appendIf: 35, append: 15, query: 25, tail: 10}, seen: map[string]uint64{}})
	}
	var wg sync.WaitGroup
	for _, w := range workers {
		wg.Add(1)
		go func(w *worker) {
			defer wg.Done()
			for k := 0; k < 120; k++ {
				w.step(ctx)
			}
		}(w)
	}
	wg.Wait()

	c := &cluster{cfg: Config{Nodes: 1}, rec: rec, admin: []*client.Client{cl}}
	barrier, err := c.appendBarrier(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	c.finalReads(ctx, barrier)

	entries := rec.Entries()
	final := longestFinalRead(entries)
	if len(final) == 0 || final[len(final)-1].Seq != barrier || final[len(final)-1].Ctx != "barrier" {
		t.Fatalf("final read ends with %+v, want the barrier at %d", final[len(final)-1], barrier)
	}
	if catchUpTarget(final, "") != barrier {
		t.Fatalf("catch-up target %d, want the barrier %d", catchUpTarget(final, ""), barrier)
	}
	for _, e := range final {
		if e.At == 0 {
			t.Fatalf("final read event %+v has no OccurredAt", e)
		}
	}

	ops := history.Pair(entries)
	kinds := map[string]map[string]int{}
	keys := map[string]bool{}
	for _, o := range ops {
		if o.Return == 1<<63-1 {
			t.Fatalf("op never completed: %s", o)
		}
		if kinds[o.F] == nil {
			kinds[o.F] = map[string]int{}
		}
		kinds[o.F][o.Type]++
		switch o.F {
		case history.FAppend, history.FAppendIf:
			if o.Args.Key == "" || keys[o.Args.Key] {
				t.Fatalf("append without a unique idempotency key: %s", o)
			}
			keys[o.Args.Key] = true
			if o.Type == history.OK && o.Result.Last-o.Result.First+1 != uint64(len(o.Args.IDs)) {
				t.Fatalf("acknowledged range does not fit the ids: %s", o)
			}
			if o.F == history.FAppendIf && o.Args.Expected == nil {
				t.Fatalf("append_if without an expected version: %s", o)
			}
			if o.Type == history.Fail && (o.Result.Actual == nil || o.Err == "") {
				t.Fatalf("failed append without the conflicting version: %s", o)
			}
		case history.FQuery, history.FLocalQuery:
			if o.Args.Ctx == "" || o.Type != history.OK {
				t.Fatalf("read: %s", o)
			}
		}
	}
	for _, f := range []string{history.FAppend, history.FAppendIf, history.FQuery, history.FTail, history.FLocalQuery, history.FFinalRead} {
		if kinds[f][history.OK] == 0 {
			t.Errorf("no successful %s in %v", f, kinds)
		}
	}
	// Three workers on three contexts conflict now and then; a correct
	// store answers every other call.
	if kinds[history.FAppendIf][history.Fail] == 0 {
		t.Errorf("no append_if conflict in %v", kinds)
	}
	for f, k := range kinds {
		if k[history.Info] > 0 || (f != history.FAppendIf && k[history.Fail] > 0) {
			t.Errorf("%s: unexpected outcomes %v", f, k)
		}
	}

	res := checker.Check(ops, checker.Options{SkipPorcupine: true})
	if len(res.Anomalies) > 0 {
		for _, a := range res.Anomalies {
			t.Errorf("[%s] %s %v", a.Kind, a.Explain, a.Ops)
		}
	}
}

// TestWorkerFollowsConflicts: after a conflict the worker expects the
// version the store reported, so its next conditional append succeeds.
func TestWorkerFollowsConflicts(t *testing.T) {
	cl := serveStore(t)
	ctx := testCtx(t)
	rec, _ := history.NewRecorder("")
	other := &worker{name: "o", rng: rand.New(rand.NewSource(1))}
	evs, _ := other.events("c0", 2)
	if _, err := cl.Append(ctx, evs); err != nil {
		t.Fatal(err)
	}
	w := &worker{name: "w0", cl: cl, rec: rec, rng: rand.New(rand.NewSource(1)), proc: rec.NewProcess(), ctxs: []string{"c0"},
		timeout: 5 * time.Second, mix: mix{appendIf: 100}, seen: map[string]uint64{}}
	w.step(ctx)
	w.step(ctx)
	ops := history.Pair(rec.Entries())
	if len(ops) != 2 {
		t.Fatalf("%d ops", len(ops))
	}
	first, second := ops[0], ops[1]
	if first.Type != history.Fail || *first.Args.Expected != 0 || first.Result.Actual == nil || *first.Result.Actual != 2 {
		t.Fatalf("first append_if: %s", first)
	}
	if second.Type != history.OK || *second.Args.Expected != 2 || second.Result.First != 3 {
		t.Fatalf("second append_if: %s", second)
	}
	if first.Proc != second.Proc {
		t.Fatalf("a definite failure changed the process: %d then %d", first.Proc, second.Proc)
	}
	if w.seen["c0"] != second.Result.Last || w.maxSeen != second.Result.Last {
		t.Fatalf("seen %v maxSeen %d after appending through %d", w.seen, w.maxSeen, second.Result.Last)
	}
}

// TestWorkerExpectsWhatItRead: a conditional append after a read expects
// the context version the read returned.
func TestWorkerExpectsWhatItRead(t *testing.T) {
	cl := serveStore(t)
	ctx := testCtx(t)
	rec, _ := history.NewRecorder("")
	other := &worker{name: "o"}
	evs, _ := other.events("c0", 3)
	if _, err := cl.Append(ctx, evs); err != nil {
		t.Fatal(err)
	}
	w := &worker{name: "w0", cl: cl, rec: rec, rng: rand.New(rand.NewSource(1)), proc: rec.NewProcess(), ctxs: []string{"c0"},
		timeout: 5 * time.Second, mix: mix{query: 100}, seen: map[string]uint64{}}
	w.step(ctx)
	w.mix = mix{appendIf: 100}
	w.step(ctx)
	ops := history.Pair(rec.Entries())
	if len(ops) != 2 || ops[0].F != history.FQuery || ops[0].Result.CV != 3 || len(ops[0].Result.Events) != 3 {
		t.Fatalf("query: %v", ops)
	}
	if o := ops[1]; o.F != history.FAppendIf || o.Type != history.OK || *o.Args.Expected != 3 {
		t.Fatalf("append_if after the read: %s", o)
	}
}

// TestConsumerUnsubscribe records the end of an incarnation once, with
// the reason, and stops the subscription.
func TestConsumerUnsubscribe(t *testing.T) {
	rec, _ := history.NewRecorder("")
	sub := &fakeSub{}
	co := &consumer{name: "all", rec: rec}
	co.subProc = 5
	co.subOp = rec.Invoke(5, "consumer-all", "", history.FSubscribe, &history.Value{Name: "all", Incarnation: 1})
	co.sub = sub
	co.unsubscribe("forced resubscribe")
	co.unsubscribe("run ended")
	if sub.n != 1 {
		t.Fatalf("Unsubscribe called %d times", sub.n)
	}
	ops := history.Pair(rec.Entries())
	if len(ops) != 1 || ops[0].Type != history.OK || ops[0].Err != "forced resubscribe" || ops[0].Proc != 5 {
		t.Fatalf("ops %v", ops)
	}
}

// fakeSub ends when it is unsubscribed, never by itself.
type fakeSub struct {
	n    int
	done chan struct{}
}

func (*fakeSub) ID() uint64 { return 1 }
func (f *fakeSub) Unsubscribe() {
	f.n++
	if f.done == nil {
		f.done = make(chan struct{})
		close(f.done)
	}
}

func (f *fakeSub) Done() <-chan struct{} { return f.done }
func (*fakeSub) Err() error              { return nil }

// TestWorkerUnknownOutcome: an append whose outcome is unknown is recorded
// as info and the worker continues as a new process (the old one may still
// be running that write); a read that fails is a definite failure.
func TestWorkerUnknownOutcome(t *testing.T) {
	cl := serveStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // every call fails before it reaches the store
	rec, _ := history.NewRecorder("")
	w := &worker{name: "w0", cl: cl, rec: rec, rng: rand.New(rand.NewSource(1)), proc: rec.NewProcess(), ctxs: []string{"c0"},
		timeout: time.Second, mix: mix{append: 100}, seen: map[string]uint64{}}
	p0 := w.proc
	w.step(ctx)
	p1 := w.proc
	w.mix = mix{query: 100}
	w.step(ctx)
	ops := history.Pair(rec.Entries())
	if len(ops) != 2 {
		t.Fatalf("%d ops", len(ops))
	}
	if ops[0].F != history.FAppend || ops[0].Type != history.Info || ops[0].Err == "" || ops[0].Proc != p0 {
		t.Fatalf("append: %s (proc %d)", ops[0], ops[0].Proc)
	}
	if p1 == p0 || ops[1].Proc != p1 {
		t.Fatalf("process after an unknown outcome: %d, then %d (was %d)", p1, ops[1].Proc, p0)
	}
	if ops[1].F != history.FQuery || ops[1].Type != history.Fail {
		t.Fatalf("query: %s", ops[1])
	}
	if len(w.seen) != 0 || w.maxSeen != 0 {
		t.Fatalf("failed calls changed the bookkeeping: %v %d", w.seen, w.maxSeen)
	}
}

func batch(seqs ...uint64) []contract.EventRecord {
	var b []contract.EventRecord
	for _, s := range seqs {
		p, _ := json.Marshal(payload{Ctx: "c0", ID: fmt.Sprintf("e%d", s)})
		b = append(b, contract.EventRecord{SequenceNumber: s, Type: eventType, Payload: p})
	}
	return b
}

func TestConsumerHandler(t *testing.T) {
	rec, _ := history.NewRecorder("")
	co := &consumer{name: "all", rec: rec, rng: rand.New(rand.NewSource(1)), subProc: 42}
	failed := make(chan struct{}, 1)
	h := co.handler(3, failed)
	for _, b := range [][]contract.EventRecord{batch(1, 2), batch(), batch(5), batch(4)} {
		if err := h(context.Background(), b); err != nil {
			t.Fatal(err)
		}
	}
	if got := co.lastHandled(); got != 5 {
		t.Fatalf("lastHandled %d, want 5 (a redelivered older batch does not lower it)", got)
	}
	co.failPc = 100
	for i := 0; i < 2; i++ { // the second failure must not block on the full channel
		if err := h(context.Background(), batch(6)); err == nil {
			t.Fatal("injected failure not returned")
		}
	}
	select {
	case <-failed:
	default:
		t.Fatal("failure not signalled")
	}
	if got := co.lastHandled(); got != 5 {
		t.Fatalf("a failed batch advanced lastHandled to %d", got)
	}
	ops := history.Pair(rec.Entries())
	if len(ops) != 6 {
		t.Fatalf("%d deliver ops, want 6", len(ops))
	}
	for i, o := range ops {
		want := history.OK
		if i >= 4 {
			want = history.Fail
		}
		if o.F != history.FDeliver || o.Type != want || o.Proc != 42 || o.Worker != "consumer-all" || o.Args.Name != "all" || o.Args.Incarnation != 3 {
			t.Fatalf("op %d: %s", i, o)
		}
	}
	if got := ops[0].Args.Events; !reflect.DeepEqual(got, []history.Event{{Seq: 1, ID: "e1", Ctx: "c0"}, {Seq: 2, ID: "e2", Ctx: "c0"}}) {
		t.Fatalf("delivered events recorded as %+v", got)
	}
}

// TestConsumerRedelivery subscribes a durable consumer whose handler
// always fails: the failure is signalled, the unsubscription is recorded
// with its reason, and the next incarnation gets the same event again.
func TestConsumerRedelivery(t *testing.T) {
	cl := serveStore(t)
	ctx := testCtx(t)
	rec, _ := history.NewRecorder("")
	co := &consumer{name: "c0", ctx: "c0", cl: cl, rec: rec, rng: rand.New(rand.NewSource(1)), failPc: 100}
	w := &worker{name: "w0", rng: rand.New(rand.NewSource(1))}
	evs, _ := w.events("c0", 1)
	if _, err := cl.Append(ctx, evs); err != nil {
		t.Fatal(err)
	}
	var incs []int
	for len(incs) < 2 {
		// The first delivery may fail inside the subscribe call (the
		// subscription then fails) or after it returned. The store may
		// still hold the name for the previous incarnation for a moment:
		// the runner then subscribes again, as here.
		err := co.subscribe(ctx)
		if errors.Is(err, contract.ErrDurableNameInUse) {
			select {
			case <-ctx.Done():
				t.Fatal("the previous incarnation kept the name")
			case <-time.After(20 * time.Millisecond):
			}
			continue
		}
		co.mu.Lock()
		failed, inc := co.failed, co.inc
		co.mu.Unlock()
		select {
		case <-failed:
		case <-ctx.Done():
			t.Fatalf("incarnation %d: no delivery (subscribe: %v)", inc, err)
		}
		if err == nil {
			co.unsubscribe("handler failed")
		}
		incs = append(incs, inc)
	}
	co.unsubscribe("again") // no subscription: nothing recorded
	subs := map[int]history.Op{}
	delivered := map[int]bool{}
	for _, o := range history.Pair(rec.Entries()) {
		switch o.F {
		case history.FSubscribe:
			if o.Args.Ctx != "c0" || o.Args.Name != "c0" {
				t.Fatalf("subscribe op: %s", o)
			}
			subs[o.Args.Incarnation] = o
		case history.FDeliver:
			if o.Type != history.Fail || len(o.Args.Events) != 1 || o.Args.Events[0].Seq != 1 {
				t.Fatalf("deliver: %s", o)
			}
			delivered[o.Args.Incarnation] = true
		}
	}
	if len(subs) != co.inc {
		t.Fatalf("%d subscribe ops for %d incarnations", len(subs), co.inc)
	}
	for _, inc := range incs {
		s := subs[inc]
		ended := s.Type == history.OK && s.Err == "handler failed" || s.Type == history.Fail && strings.Contains(s.Err, "injected handler failure")
		if !ended || !delivered[inc] {
			t.Fatalf("incarnation %d: %s, delivered %v", inc, s, delivered[inc])
		}
	}
	if subs[incs[0]].Proc == subs[incs[1]].Proc {
		t.Fatal("both incarnations share a process")
	}
}

func TestLiveHandler(t *testing.T) {
	rec, _ := history.NewRecorder("")
	s := &liveSub{name: "live-c0", ctx: "c0", node: "any", rec: rec}
	ended := make(chan struct{})
	h := s.handler(9, 2, ended)
	hctx, cancel := context.WithCancel(context.Background())
	for _, b := range [][]contract.EventRecord{batch(3, 4), batch()} {
		if err := h(hctx, b); err != nil {
			t.Fatal(err)
		}
	}
	// Later calls with another context must not arm a second close.
	other, cancelOther := context.WithCancel(context.Background())
	if err := h(other, batch(5)); err != nil {
		t.Fatal(err)
	}
	cancelOther()
	if err := h(hctx, batch(2)); err != nil { // an older batch does not lower lastSeq
		t.Fatal(err)
	}
	select {
	case <-ended:
		t.Fatal("ended closed before the subscription's context ended")
	default:
	}
	cancel()
	select {
	case <-ended:
	case <-time.After(10 * time.Second):
		t.Fatal("ended not closed when the handler context ended")
	}
	s.mu.Lock()
	batches, last := s.batches, s.lastSeq
	s.mu.Unlock()
	if batches != 4 || last != 5 {
		t.Fatalf("batches %d lastSeq %d, want 4 and 5", batches, last)
	}
	ops := history.Pair(rec.Entries())
	if len(ops) != 4 {
		t.Fatalf("%d ops", len(ops))
	}
	for _, o := range ops {
		if o.F != history.FLive || o.Type != history.OK || o.Proc != 9 || o.Worker != "live-live-c0" || o.Node != "any" ||
			o.Args.Name != "live-c0" || o.Args.Ctx != "c0" || o.Args.Incarnation != 2 {
			t.Fatalf("live op: %s", o)
		}
	}
	if e := ops[0].Args.Events; len(e) != 2 || e[0].Seq != 3 || e[1].ID != "e4" {
		t.Fatalf("first batch recorded as %+v", e)
	}
}

func TestLiveSubscribeRecorded(t *testing.T) {
	cl := serveStore(t)
	ctx := testCtx(t)
	rec, _ := history.NewRecorder("")
	s := &liveSub{name: "live-all", node: "n1", cl: cl, rec: rec}
	sub, _, err := s.subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sub.Unsubscribe()
	_ = cl.Close()
	if _, _, err := s.subscribe(ctx); err == nil {
		t.Fatal("subscribe on a closed client succeeded")
	}
	ops := history.Pair(rec.Entries())
	if len(ops) != 2 || s.inc != 2 || s.subs != 1 {
		t.Fatalf("%d ops, inc %d, subs %d", len(ops), s.inc, s.subs)
	}
	for i, want := range []string{history.OK, history.Fail} {
		o := ops[i]
		if o.F != history.FLiveSubscribe || o.Type != want || o.Args.Name != "live-all" || o.Args.Incarnation != i+1 {
			t.Fatalf("op %d: %s", i, o)
		}
	}
	if ops[1].Err == "" {
		t.Fatal("failed subscribe recorded without its error")
	}
}

// appendIDs appends one batch per id list, in context ctx, with those ids.
func appendIDs(t *testing.T, cl *client.Client, ctx string, batches ...[]string) {
	t.Helper()
	for _, ids := range batches {
		var evs []contract.NewEvent
		for _, id := range ids {
			p, _ := json.Marshal(payload{Ctx: ctx, ID: id})
			evs = append(evs, contract.NewEvent{Type: eventType, Payload: p})
		}
		if _, err := cl.Append(testCtx(t), evs); err != nil {
			t.Fatal(err)
		}
	}
}

// TestParkingConsumer: the parking consumer fails exactly the batch that
// holds a poison id (p7), twice, the store parks it and the consumer
// moves on; the final parked list read into the history holds it.
func TestParkingConsumer(t *testing.T) {
	if !history.Poison("p7") || history.Poison("a1") || history.Poison("a2") {
		t.Fatal("the poison ids of this test changed")
	}
	cl := serveStore(t)
	ctx := testCtx(t)
	rec, _ := history.NewRecorder("")
	appendIDs(t, cl, "c0", []string{"a1"}, []string{"p7", "a2"}, []string{"a3"})
	co := &consumer{name: "park", cl: cl, rec: rec, rng: rand.New(rand.NewSource(1)), park: 2}
	if err := co.subscribe(ctx); err != nil {
		t.Fatal(err)
	}
	for co.lastHandled() < 4 {
		select {
		case <-ctx.Done():
			t.Fatalf("the parking consumer passed only %d", co.lastHandled())
		case <-time.After(20 * time.Millisecond):
		}
	}
	c := &cluster{rec: rec}
	c.readParked(ctx, co)
	co.unsubscribe("done")
	var attempts []int
	var parked []uint64
	for _, o := range history.Pair(rec.Entries()) {
		switch {
		case o.F == history.FSubscribe && o.Args.Park != 2:
			t.Errorf("subscribe recorded without the policy: %s", o)
		case o.F == history.FDeliver && o.Args.Events[0].Seq == 2:
			if o.Type != history.Fail {
				t.Errorf("the poison batch was handled: %s", o)
			}
			attempts = append(attempts, o.Args.Attempt)
		case o.F == history.FParked:
			for _, e := range o.Result.Events {
				parked = append(parked, e.Seq)
			}
		}
	}
	if !reflect.DeepEqual(attempts, []int{1, 2}) || !reflect.DeepEqual(parked, []uint64{2, 3}) {
		t.Fatalf("the poison batch was tried %v and the parked list holds %v; want attempts [1 2] and parked [2 3]", attempts, parked)
	}
}

// TestGroupConsumers: two members of a group share the work; together
// they handle every event, and each delivery is recorded under its member.
func TestGroupConsumers(t *testing.T) {
	cl := serveStore(t)
	ctx := testCtx(t)
	rec, _ := history.NewRecorder("")
	shared := &groupProgress{}
	var members []*consumer
	for _, m := range []string{"m1", "m2"} {
		co := &consumer{name: "group", group: "ctx", member: m, shared: shared, cl: cl, rec: rec, rng: rand.New(rand.NewSource(1))}
		if err := co.subscribe(ctx); err != nil {
			t.Fatal(err)
		}
		members = append(members, co)
	}
	var seqs []uint64
	for i, k := range []string{"c0", "c1", "c2", "c3", "c0", "c1"} {
		appendIDs(t, cl, k, []string{fmt.Sprintf("g%d", i)})
		seqs = append(seqs, uint64(i+1))
	}
	for !shared.all(seqs) {
		select {
		case <-ctx.Done():
			t.Fatal("the group did not handle every event")
		case <-time.After(20 * time.Millisecond):
		}
	}
	for _, co := range members {
		co.unsubscribe("done")
	}
	workers := map[string]bool{}
	for _, o := range history.Pair(rec.Entries()) {
		if o.F == history.FSubscribe && o.Args.Group != "ctx" {
			t.Errorf("a member subscribed without its group key: %s", o)
		}
		if o.F == history.FDeliver {
			workers[o.Worker] = true
		}
	}
	for w := range workers {
		if w != "group-group-m1" && w != "group-group-m2" {
			t.Errorf("delivery recorded under %q", w)
		}
	}
}
