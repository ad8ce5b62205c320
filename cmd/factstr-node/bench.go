package main

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"google.golang.org/grpc/status"

	factstrv1 "github.com/factstr/factstr-go/api/gen/factstr/v1"
	"github.com/factstr/factstr-go/bench/load"
	"github.com/factstr/factstr-go/client"
	"github.com/factstr/factstr-go/contract"
)

const benchUsage = `Drives a running cluster through the Go client and reports ops/s, events/s,
latency percentiles (HdrHistogram) and errors by kind.

  append     Append batches of --batch events (payload --payload-bytes of JSON)
  append-if  AppendIf on one of --contexts contexts with the version each
             worker last saw; conflicts are counted (1 context: high
             contention, 1000: low)
  query      Query one context of one event among --contexts preloaded ones
             (--consistency linearizable or local; --on follower to read on
             followers)
  stream     --subscribers live subscribers (StreamTo) while the workers
             append; reports end-to-end delivery latency
  durable    --consumers durable consumers (StreamToDurable, each its own
             name, from the end) follow while the workers append; reports
             their lag (commit time to handler: p50, p99, max) and the
             events they handle per second; use --rate for a steady load;
             --group-members N runs one consumer group of N members instead

Exits with status 1 when no operation succeeded; operations still
unanswered after a second when the run ends count as unanswered_at_end.`

type benchFlags struct {
	cf            clientFlags
	workload      string
	concurrency   int
	connections   int
	duration      time.Duration
	warmup        time.Duration
	ops           int64
	payloadBytes  int
	batch         int
	contexts      int
	consistency   string
	on            string
	subscribers   int
	consumers     int
	groupMembers  int
	rate          float64
	quiet         bool
	progressEvery time.Duration
}

func benchFlagSet(f *benchFlags) *flag.FlagSet {
	fs := newFlagSet("bench", "bench --workload append|append-if|query|stream|durable [flags]", benchUsage)
	f.cf.register(fs)
	fs.StringVar(&f.workload, "workload", "append", "append, append-if, query, stream or durable")
	fs.IntVar(&f.concurrency, "concurrency", 64, "workers, each with one request in flight")
	fs.BoolVar(&f.cf.anyNode, "writes-to-any-node", false, "send appends round the nodes, so followers forward them to the leader (the client's default sends writes to the node that leads)")
	fs.IntVar(&f.connections, "connections", 4, "client instances (gRPC connections to each target) the workers share")
	fs.DurationVar(&f.duration, "duration", 10*time.Second, "how long to measure")
	fs.DurationVar(&f.warmup, "warmup", time.Second, "how long to run before measuring")
	fs.Int64Var(&f.ops, "ops", 0, "stop after this many operations (0: run for --duration)")
	fs.IntVar(&f.payloadBytes, "payload-bytes", 200, "size of each event's JSON payload")
	fs.IntVar(&f.batch, "batch", 1, "events per append (append, stream)")
	fs.IntVar(&f.contexts, "contexts", 1000, "contexts (append-if: 1 is high contention; query: preloaded contexts)")
	fs.StringVar(&f.consistency, "consistency", "linearizable", "query and stream reads: linearizable or local")
	fs.StringVar(&f.on, "on", "any", "send requests to: any (every --addr), leader or follower (found through admin status; an --addr whose node has that role, else the member's advertised address)")
	fs.IntVar(&f.subscribers, "subscribers", 10, "stream: live subscribers")
	fs.IntVar(&f.consumers, "consumers", 1, "durable: durable consumers, each on a name of its own")
	fs.IntVar(&f.groupMembers, "group-members", 0, "durable: instead of --consumers, this many members of one consumer group (partitioned by the appending worker)")
	fs.Float64Var(&f.rate, "rate", 0, "operations per second over all workers (0: as fast as they go)")
	fs.BoolVar(&f.quiet, "quiet", false, "no progress lines on stderr")
	fs.DurationVar(&f.progressEvery, "progress-every", time.Second, "interval of progress lines")
	return fs
}

// errNothingSucceeded ends a bench run in which no operation succeeded
// (exit status 1): a report of zero ops/s is not a measurement.
var errNothingSucceeded = errors.New("no operation succeeded")

func cmdBench(ctx context.Context, args []string) error {
	var f benchFlags
	fs := benchFlagSet(&f)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	switch f.workload {
	case "append", "append-if", "query", "stream", "durable":
	default:
		return usagef("--workload %q: want append, append-if, query, stream or durable", f.workload)
	}
	if f.concurrency < 1 || f.connections < 1 || f.batch < 1 || f.contexts < 1 || f.consumers < 1 {
		return usagef("--concurrency, --connections, --batch, --contexts and --consumers must be at least 1")
	}
	if f.groupMembers < 0 || f.groupMembers > contract.MaxGroupMembers {
		return usagef("--group-members must be 0 to %d", contract.MaxGroupMembers)
	}
	targets, err := f.targets(ctx)
	if err != nil {
		return err
	}
	conns := make([]*client.Client, f.connections)
	for i := range conns {
		cf := f.cf
		cf.addr = targets
		cf.timeout = 30 * time.Second
		if conns[i], err = cf.dial(ctx); err != nil {
			return err
		}
		defer conns[i].Close()
	}
	var progress io.Writer = os.Stderr
	if f.quiet {
		progress = nil
	}
	opts := load.Options{
		Name: f.workload, Concurrency: f.concurrency, Duration: f.duration, Ops: f.ops, Warmup: f.warmup,
		Progress: progress, ProgressEvery: f.progressEvery, Classify: classifyErr, NotFailures: []string{"conflict"},
		Rate: f.rate,
	}
	if progress != nil {
		fmt.Fprintf(os.Stderr, "bench %s against %s: %d workers over %d connections\n", f.workload, strings.Join(targets, ","), f.concurrency, f.connections)
	}
	run := runID()
	var cutOff atomic.Int64
	var res load.Result
	switch f.workload {
	case "append":
		res = load.Run(ctx, opts, countCutOff(f.appendOp(conns, run), &cutOff))
	case "append-if":
		op, extra := f.appendIfOp(conns, run)
		res = load.Run(ctx, opts, countCutOff(op, &cutOff))
		res.Extra = extra()
	case "query":
		if err := f.preload(ctx, conns[0], run); err != nil {
			return err
		}
		res = load.Run(ctx, opts, countCutOff(f.queryOp(conns, run), &cutOff))
	case "stream":
		res, err = f.stream(ctx, conns, opts, run, &cutOff)
		if err != nil {
			return err
		}
	case "durable":
		res, err = f.durable(ctx, conns, opts, run, &cutOff)
		if err != nil {
			return err
		}
	}
	if n := cutOff.Load(); n > 0 {
		if res.Errors == nil {
			res.Errors = map[string]int64{}
		}
		res.Errors["unanswered_at_end"] += n
		res.Failures += n
	}
	res.Name = "factstr " + f.workload
	if f.cf.json {
		err = load.PrintJSON(os.Stdout, res)
	} else {
		load.Print(os.Stdout, res)
	}
	if err == nil && res.Ops == 0 {
		err = fmt.Errorf("%w in %s against %s (%d failed)", errNothingSucceeded, time.Duration(res.Seconds*float64(time.Second)).Round(time.Millisecond), strings.Join(targets, ","), res.Failures)
	}
	return err
}

// countCutOff counts the operations that failed for want of a node but
// that load.Run does not count because the run's end cut them off: against
// nodes that stopped answering or have no leader, every operation retries
// or waits until the end of the run, and the report would otherwise say
// "errors none". An operation cut off counts when it failed UNAVAILABLE or
// had gone unanswered for a second or more (healthy ones take
// milliseconds); load.Run still drops the ones merely in flight.
func countCutOff(op load.Op, n *atomic.Int64) load.Op {
	const unanswered = time.Second
	return func(ctx context.Context, w int) (int, error) {
		start := time.Now()
		k, err := op(ctx, w)
		if err != nil {
			dl, ok := ctx.Deadline()
			cut := ctx.Err() != nil || (ok && time.Until(dl) < 100*time.Millisecond)
			if cut && (classifyErr(err) == "unavailable" || time.Since(start) >= unanswered) {
				n.Add(1)
			}
		}
		return k, err
	}
}

// targets resolves --on to node addresses. The members' advertised gRPC
// addresses may not be reachable from here (in compose they are service
// names on a private network), so an --addr whose node answered with the
// wanted role is used first, matched by node id; a member's advertised
// address only for roles no --addr has.
func (f *benchFlags) targets(ctx context.Context) ([]string, error) {
	addrs, err := f.cf.addrs()
	if err != nil {
		return nil, err
	}
	if f.on == "any" {
		return addrs, nil
	}
	if f.on != "leader" && f.on != "follower" {
		return nil, usagef("--on %q: want any, leader or follower", f.on)
	}
	cf := f.cf
	cf.addr = addrs
	c, err := cf.dial(ctx)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		byID := map[string]string{} // node id -> the --addr it answered on
		var st *factstrv1.StatusResponse
		for i, a := range addrs {
			sctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			s, err := c.AdminAt(i).Status(sctx, &factstrv1.StatusRequest{})
			cancel()
			if err != nil {
				continue
			}
			byID[s.GetNodeId()] = a
			if st == nil && s.GetLeaderId() != "" {
				st = s
			}
		}
		if st != nil {
			if out := pickRole(f.on, st, byID); len(out) > 0 {
				return out, nil
			}
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("--on %s: no such node found through %s", f.on, strings.Join(addrs, ","))
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// pickRole returns the addresses of the voters with the role (leader or
// follower) in st: the --addr a node answered on (byID) where there is
// one, else, when no --addr has the role, the members' advertised ones.
func pickRole(role string, st *factstrv1.StatusResponse, byID map[string]string) []string {
	var given, advertised []string
	for _, m := range st.GetMembers() {
		leader := m.GetId() == st.GetLeaderId()
		if (role == "leader") != leader || m.GetSuffrage() != "voter" {
			continue
		}
		if a, ok := byID[m.GetId()]; ok {
			given = append(given, a)
		} else if m.GetGrpcAddr() != "" {
			advertised = append(advertised, m.GetGrpcAddr())
		}
	}
	if len(given) > 0 {
		return given
	}
	return advertised
}

func (f *benchFlags) readCtx(ctx context.Context) context.Context {
	if f.consistency == "local" {
		return contract.WithReadOptions(ctx, contract.ReadOptions{Consistency: contract.Local})
	}
	return ctx
}

func (f *benchFlags) appendOp(conns []*client.Client, run string) load.Op {
	return func(ctx context.Context, w int) (int, error) {
		evs := make([]contract.NewEvent, f.batch)
		for i := range evs {
			evs[i] = contract.NewEvent{Type: "bench-" + run, Payload: load.Payload(f.payloadBytes, map[string]any{"w": w})}
		}
		r, err := conns[w%len(conns)].Append(ctx, evs)
		return int(r.CommittedCount), err
	}
}

// appendIfOp appends to a random context with the version last learned for
// it (from a success, or from a conflict's actual version), as a command
// handler that caches its decision state would.
func (f *benchFlags) appendIfOp(conns []*client.Client, run string) (load.Op, func() map[string]float64) {
	versions := make([]atomic.Uint64, f.contexts)
	typ := "bench-ctx-" + run
	return func(ctx context.Context, w int) (int, error) {
			i := rand.IntN(f.contexts)
			key := fmt.Sprintf("c%d", i)
			q := contract.EventQuery{Filters: []contract.EventFilter{{
				EventTypes: []string{typ}, PayloadPredicates: []json.RawMessage{json.RawMessage(`{"ctx":"` + key + `"}`)},
			}}}
			evs := make([]contract.NewEvent, f.batch)
			for j := range evs {
				evs[j] = contract.NewEvent{Type: typ, Payload: load.Payload(f.payloadBytes, map[string]any{"ctx": key, "w": w})}
			}
			r, err := conns[w%len(conns)].AppendIf(ctx, evs, q, versions[i].Load())
			var conflict *contract.ConflictError
			switch {
			case err == nil:
				versions[i].Store(r.LastSequenceNumber)
			case errors.As(err, &conflict):
				versions[i].Store(conflict.Actual)
			}
			return int(r.CommittedCount), err
		}, func() map[string]float64 {
			return map[string]float64{"contexts": float64(f.contexts)}
		}
}

// preload writes one event for each of --contexts read contexts.
func (f *benchFlags) preload(ctx context.Context, c *client.Client, run string) error {
	const per = 100
	for i := 0; i < f.contexts; i += per {
		var evs []contract.NewEvent
		for j := i; j < min(i+per, f.contexts); j++ {
			evs = append(evs, contract.NewEvent{Type: "bench-read-" + run, Payload: load.Payload(f.payloadBytes, map[string]any{"ctx": fmt.Sprintf("r%d", j)})})
		}
		if _, err := c.Append(ctx, evs); err != nil {
			return fmt.Errorf("preload: %w", err)
		}
	}
	return nil
}

func (f *benchFlags) queryOp(conns []*client.Client, run string) load.Op {
	typ := "bench-read-" + run
	return func(ctx context.Context, w int) (int, error) {
		q := contract.EventQuery{Filters: []contract.EventFilter{{
			EventTypes: []string{typ}, PayloadPredicates: []json.RawMessage{json.RawMessage(fmt.Sprintf(`{"ctx":"r%d"}`, rand.IntN(f.contexts)))},
		}}}
		r, err := conns[w%len(conns)].Query(f.readCtx(ctx), q)
		if err == nil && len(r.Events) != 1 {
			return 0, fmt.Errorf("query returned %d events, want 1", len(r.Events))
		}
		return len(r.Events), err
	}
}

// stream runs --subscribers live subscriptions while the workers append
// events stamped with their send time, and measures the delivery latency.
func (f *benchFlags) stream(ctx context.Context, conns []*client.Client, opts load.Options, run string, cutOff *atomic.Int64) (load.Result, error) {
	typ := "bench-stream-" + run
	q := contract.EventQuery{Filters: []contract.EventFilter{{EventTypes: []string{typ}}}}
	type subStats struct {
		mu        sync.Mutex
		hist      *hdrhistogram.Histogram
		delivered int64
	}
	stats := make([]*subStats, f.subscribers)
	var subs []contract.Subscription
	defer func() {
		for _, s := range subs {
			s.Unsubscribe()
		}
	}()
	var measuring atomic.Bool
	for i := range stats {
		st := &subStats{hist: load.NewHistogram()}
		stats[i] = st
		sub, err := conns[i%len(conns)].StreamTo(f.readCtx(ctx), q, func(_ context.Context, batch []contract.EventRecord) error {
			now := time.Now().UnixNano()
			if !measuring.Load() {
				return nil
			}
			st.mu.Lock()
			defer st.mu.Unlock()
			for _, ev := range batch {
				var p struct {
					T int64 `json:"t"`
				}
				if json.Unmarshal(ev.Payload, &p) == nil && p.T > 0 {
					_ = st.hist.RecordValue(max((now-p.T)/1000, 1))
					st.delivered++
				}
			}
			return nil
		})
		if err != nil {
			return load.Result{}, fmt.Errorf("subscriber %d: %w", i, err)
		}
		subs = append(subs, sub)
	}
	var written atomic.Int64
	op := func(ctx context.Context, w int) (int, error) {
		evs := make([]contract.NewEvent, f.batch)
		for i := range evs {
			evs[i] = contract.NewEvent{Type: typ, Payload: load.Payload(f.payloadBytes, map[string]any{"t": time.Now().UnixNano(), "w": w})}
		}
		r, err := conns[w%len(conns)].Append(ctx, evs)
		if err == nil && measuring.Load() {
			written.Add(int64(r.CommittedCount))
		}
		return int(r.CommittedCount), err
	}
	// Warm up without counting deliveries, then measure.
	warm := opts
	warm.Warmup, opts.Warmup = 0, 0
	if warm.Duration = f.warmup; warm.Duration > 0 {
		warm.Progress = nil
		load.Run(ctx, warm, op)
		time.Sleep(500 * time.Millisecond) // let the warm-up deliveries drain
	}
	measuring.Store(true)
	res := load.Run(ctx, opts, countCutOff(op, cutOff))
	want := written.Load() * int64(f.subscribers)
	drain := time.Now().Add(10 * time.Second)
	var delivered int64
	for {
		delivered = 0
		for _, st := range stats {
			st.mu.Lock()
			delivered += st.delivered
			st.mu.Unlock()
		}
		if delivered >= want || time.Now().After(drain) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	measuring.Store(false)
	h := load.NewHistogram()
	for _, st := range stats {
		st.mu.Lock()
		h.Merge(st.hist)
		st.mu.Unlock()
	}
	l := load.LatencyOf(h)
	res.Extra = map[string]float64{
		"subscribers":              float64(f.subscribers),
		"delivered_events":         float64(delivered),
		"missing_events":           float64(max(want-delivered, 0)),
		"delivered_events_per_sec": float64(delivered) / res.Seconds,
		"delivery_p50_ms":          l.P50,
		"delivery_p90_ms":          l.P90,
		"delivery_p99_ms":          l.P99,
		"delivery_p99_9_ms":        l.P999,
		"delivery_max_ms":          l.Max,
	}
	return res, nil
}

// classifyErr names an error's kind: conflicts, gRPC codes, contract errors.
func classifyErr(err error) string {
	var conflict *contract.ConflictError
	if errors.As(err, &conflict) {
		return "conflict"
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "deadline_exceeded"
	}
	if st, ok := status.FromError(errors.Unwrap(err)); ok && st.Code() != 0 {
		return strings.ToLower(st.Code().String())
	}
	if st, ok := status.FromError(err); ok {
		return strings.ToLower(st.Code().String())
	}
	return load.DefaultClassify(err)
}

func runID() string {
	b := make([]byte, 4)
	_, _ = crand.Read(b)
	return hex.EncodeToString(b)
}
