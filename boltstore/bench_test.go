package boltstore_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/factstr/factstr-go/boltstore"
	"github.com/factstr/factstr-go/contract"
	"github.com/factstr/factstr-go/fsm/command"
)

// The benchmark stores are built once per test process, in a temporary
// directory that TestMain removes.
var benchFixtures struct {
	mu     sync.Mutex
	dir    string
	stores map[int]*benchStore // shared, read-only use
	copies int
}

func TestMain(m *testing.M) {
	code := m.Run()
	benchFixtures.mu.Lock()
	for _, f := range benchFixtures.stores {
		_ = f.s.Close()
	}
	if benchFixtures.dir != "" {
		_ = os.RemoveAll(benchFixtures.dir)
	}
	benchFixtures.mu.Unlock()
	os.Exit(code)
}

var benchTypes = []string{"OrderPlaced", "OrderShipped", "PaymentReceived", "CustomerRegistered"}

// benchStore holds n events: event i (0-based) has type benchTypes[i%4]
// and customer c((i/4) % (n/40)), so each customer has 10 events of each
// type, spread over the whole log.
type benchStore struct {
	s         *boltstore.Store
	n         int
	customers int
	versions  map[int]uint64 // OrderShipped context version per customer, once changed by AppendIf
}

func benchPayload(customer string, i int) json.RawMessage {
	return json.RawMessage(fmt.Sprintf(`{"customer":%q,"order":%d,"amount":%d,"tags":["x","y"]}`, customer, i, i%1000))
}

// benchFixture returns the shared store of n events, for benchmarks that
// only read it.
func benchFixture(b *testing.B, n int) *benchStore {
	b.Helper()
	benchFixtures.mu.Lock()
	defer benchFixtures.mu.Unlock()
	if f, ok := benchFixtures.stores[n]; ok {
		return f
	}
	f := openBenchCopy(b, n, fmt.Sprintf("shared-%d.db", n))
	benchFixtures.stores[n] = f
	return f
}

// freshFixture returns a private copy of the store of n events, removed
// when the benchmark ends, so every run of a writing benchmark starts from
// the same n events instead of from what earlier runs appended.
func freshFixture(b *testing.B, n int) *benchStore {
	b.Helper()
	benchFixtures.mu.Lock()
	benchFixtures.copies++
	name := fmt.Sprintf("copy-%d-%d.db", n, benchFixtures.copies)
	f := openBenchCopy(b, n, name)
	benchFixtures.mu.Unlock()
	b.Cleanup(func() {
		_ = f.s.Close()
		_ = os.Remove(filepath.Join(benchFixtures.dir, name))
	})
	return f
}

// openBenchCopy builds the events once per process with large batches
// through Apply (no fsync), copies that file to name and opens the copy in
// embedded mode with the default fsync per commit. benchFixtures.mu is held.
func openBenchCopy(b *testing.B, n int, name string) *benchStore {
	b.Helper()
	if benchFixtures.dir == "" {
		dir, err := os.MkdirTemp("", "boltstore-bench-")
		if err != nil {
			b.Fatal(err)
		}
		benchFixtures.dir, benchFixtures.stores = dir, make(map[int]*benchStore)
	}
	base := filepath.Join(benchFixtures.dir, fmt.Sprintf("base-%d.db", n))
	if _, err := os.Stat(base); err != nil {
		buildBenchStore(b, base, n)
	}
	path := filepath.Join(benchFixtures.dir, name)
	if err := copyFile(base, path); err != nil {
		b.Fatal(err)
	}
	s, err := boltstore.Open(path, boltstore.WithLogger(quietLogger()))
	if err != nil {
		b.Fatal(err)
	}
	return &benchStore{s: s, n: n, customers: n / 40, versions: make(map[int]uint64)}
}

func buildBenchStore(b *testing.B, path string, n int) {
	start := time.Now()
	s, err := boltstore.Open(path, boltstore.WithReplicated(), boltstore.WithNoSync(true), boltstore.WithLogger(quietLogger()))
	if err != nil {
		b.Fatal(err)
	}
	customers := n / 40
	// Transactions of a few thousand events: bbolt splits nodes only at
	// commit, so one huge transaction would insert into ever larger nodes.
	const perCommand, perEntry = 1000, 2
	at := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	var index uint64
	for i := 0; i < n; {
		e := command.Entry{Index: index + 1}
		for c := 0; c < perEntry && i < n; c++ {
			cmd := command.Append{OccurredAt: at}
			for k := 0; k < perCommand && i < n; k++ {
				cmd.Events = append(cmd.Events, contract.NewEvent{
					Type:    benchTypes[i%4],
					Payload: benchPayload(fmt.Sprintf("c%d", (i/4)%customers), i),
				})
				i++
			}
			e.Commands = append(e.Commands, cmd)
		}
		res, err := s.Apply([]command.Entry{e})
		if err != nil {
			b.Fatal(err)
		}
		for _, r := range res[0] {
			if r.Err != nil {
				b.Fatal(r.Err)
			}
		}
		index++
	}
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	st, _ := os.Stat(path)
	b.Logf("built the %d-event store in %v (%d MiB)", n, time.Since(start).Round(time.Millisecond), st.Size()>>20)
}

func copyFile(from, to string) error {
	src, err := os.Open(from)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := os.Create(to)
	if err != nil {
		return err
	}
	_, err = io.Copy(dst, src)
	if err == nil {
		// Written back now, not by the kernel while the benchmark
		// measures its own fsyncs.
		err = dst.Sync()
	}
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	return err
}

// shippedVersion is the version of the context "OrderShipped of customer
// k": the newest such event.
func (f *benchStore) shippedVersion(k int) uint64 {
	if v, ok := f.versions[k]; ok {
		return v
	}
	lastGroup := k + 9*f.customers
	return uint64(4*lastGroup + 1 + 1)
}

var benchSizes = []struct {
	name string
	n    int
}{{"10k", 10_000}, {"1M", 1_000_000}}

func shippedContext(customer string) contract.EventQuery {
	return contract.EventQuery{Filters: []contract.EventFilter{{
		EventTypes:        []string{"OrderShipped"},
		PayloadPredicates: []json.RawMessage{json.RawMessage(`{"customer":"` + customer + `"}`)},
	}}}
}

func BenchmarkAppend(b *testing.B) {
	ctx := context.Background()
	for _, events := range []int{1, 100} {
		for _, size := range benchSizes {
			b.Run(fmt.Sprintf("%devents/store=%s", events, size.name), func(b *testing.B) {
				f := freshFixture(b, size.n)
				batch := make([]contract.NewEvent, events)
				i := 0
				for b.Loop() {
					for j := range batch {
						// Customers outside the fixture's, so the other
						// benchmarks' contexts do not grow.
						batch[j] = contract.NewEvent{Type: "PaymentReceived", Payload: benchPayload(fmt.Sprintf("new%d", i%5000), f.n+i)}
						i++
					}
					if _, err := f.s.Append(ctx, batch); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(i), "ns/event")
			})
		}
	}
}

// BenchmarkAppendParallel shows the group commit: concurrent fsynced
// appends share commits.
func BenchmarkAppendParallel(b *testing.B) {
	f := freshFixture(b, 10_000)
	b.SetParallelism(8)
	b.ResetTimer()
	var mu sync.Mutex
	n := 0
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			mu.Lock()
			n++
			i := n
			mu.Unlock()
			ev := contract.NewEvent{Type: "PaymentReceived", Payload: benchPayload(fmt.Sprintf("new%d", i%5000), i)}
			if _, err := f.s.Append(context.Background(), []contract.NewEvent{ev}); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkAppendIf: a conditional append whose context is one type and
// one payload predicate, with the correct expected version (no conflict).
func BenchmarkAppendIf(b *testing.B) {
	ctx := context.Background()
	for _, size := range benchSizes {
		b.Run("store="+size.name, func(b *testing.B) {
			f := freshFixture(b, size.n)
			i := 0
			for b.Loop() {
				k := i % f.customers
				customer := fmt.Sprintf("c%d", k)
				ev := contract.NewEvent{Type: "OrderShipped", Payload: benchPayload(customer, f.n+i)}
				res, err := f.s.AppendIf(ctx, []contract.NewEvent{ev}, shippedContext(customer), f.shippedVersion(k))
				if err != nil {
					b.Fatal(err)
				}
				f.versions[k] = res.LastSequenceNumber
				i++
			}
		})
	}
}

// BenchmarkQuery: one context (one type and one payload predicate) with 10
// matching events, read from the start.
func BenchmarkQuery(b *testing.B) {
	ctx := context.Background()
	for _, size := range benchSizes {
		b.Run("store="+size.name, func(b *testing.B) {
			f := benchFixture(b, size.n)
			q := func(k int) contract.EventQuery {
				return contract.EventQuery{Filters: []contract.EventFilter{{
					EventTypes:        []string{"OrderPlaced"},
					PayloadPredicates: []json.RawMessage{json.RawMessage(fmt.Sprintf(`{"customer":"c%d"}`, k))},
				}}}
			}
			if res, err := f.s.Query(ctx, q(f.customers-1)); err != nil || len(res.Events) != 10 {
				b.Fatalf("fixture: %d matches, %v; want 10", len(res.Events), err)
			}
			i := 0
			for b.Loop() {
				res, err := f.s.Query(ctx, q(i%f.customers))
				if err != nil || len(res.Events) != 10 {
					b.Fatalf("%d matches, %v", len(res.Events), err)
				}
				i++
			}
		})
	}
}

// BenchmarkReadBatchesSelective replays 1% of a 100k-event log, as a
// durable stream on one context does: "indexed" narrows with the type
// index, "scan" selects the same events with a predicate the indexes
// cannot narrow (an object without scalar leaves). The ratio is the point.
func BenchmarkReadBatchesSelective(b *testing.B) {
	s, _ := openStore(b, boltstore.WithReplicated())
	const events = 100_000
	var entries []command.Entry
	for i := range events / 100 {
		var cmds []command.Command
		for j := range 100 {
			typ, payload := "common", fmt.Sprintf(`{"n":%d}`, j)
			if j == 0 {
				typ, payload = "rare", `{"o":{}}`
			}
			cmds = append(cmds, command.Append{OccurredAt: epoch, Events: []contract.NewEvent{ev(typ, payload)}})
		}
		entries = append(entries, command.Entry{Index: uint64(i + 1), Commands: cmds})
	}
	if _, err := s.Apply(entries); err != nil {
		b.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		q    contract.EventQuery
	}{{"indexed", typeQ("rare")}, {"scan", predQ(nil, `{"o":{}}`)}} {
		m, err := contract.NewMatcher(tc.q)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(tc.name, func(b *testing.B) {
			for b.Loop() {
				got, _, err := s.ReadBatches(context.Background(), 0, s.Replica().Head(), m, 1<<30, 0)
				if err != nil || len(got) != events/100 {
					b.Fatalf("%d batches, %v", len(got), err)
				}
			}
		})
	}
}

// BenchmarkApplyEntry is the state machine's work for one Raft entry of the
// cluster benchmark's appends: 16 single-event appends (200-byte payload,
// an idempotency key each, as the Go client sends them) in one Apply, on
// a replicated store without fsync, as a cluster node runs it: with a
// commit per Apply, and with commits deferred as a cluster node defers
// them (WithCommitInterval).
func BenchmarkApplyEntry(b *testing.B) {
	for _, tc := range []struct {
		name string
		opts []boltstore.Option
	}{
		{"commit-each", nil},
		{"deferred-50ms", []boltstore.Option{boltstore.WithCommitInterval(50 * time.Millisecond)}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			s, _ := openStore(b, append([]boltstore.Option{boltstore.WithReplicated(), boltstore.WithNoSync(true)}, tc.opts...)...)
			const perEntry = 16
			pad := strings.Repeat("x", 170)
			at := time.Now()
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				cmds := make([]command.Command, perEntry)
				for j := range cmds {
					cmds[j] = command.Append{
						Events:         []contract.NewEvent{{Type: "bench-run", Payload: json.RawMessage(fmt.Sprintf(`{"pad":%q,"w":%d}`, pad, (i*perEntry+j)%64))}},
						IdempotencyKey: fmt.Sprintf("c%016x%012x%016x", 1, 2, i*perEntry+j),
						OccurredAt:     at,
					}
				}
				if _, err := s.Apply([]command.Entry{{Index: uint64(i + 1), Commands: cmds}}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*perEntry), "ns/command")
		})
	}
}

// BenchmarkApplyEntryAppendIf is BenchmarkApplyEntry for the cluster
// benchmark's conditional appends: 16 AppendIfs per entry, each on one of
// 1,000 contexts (type + {"ctx":...}) with the version it has, with
// commits deferred as a cluster node defers them.
func BenchmarkApplyEntryAppendIf(b *testing.B) {
	s, _ := openStore(b, boltstore.WithReplicated(), boltstore.WithNoSync(true), boltstore.WithCommitInterval(50*time.Millisecond))
	const perEntry, contexts = 16, 1000
	pad := strings.Repeat("x", 170)
	at := time.Now()
	versions := make([]uint64, contexts)
	var head uint64
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		cmds := make([]command.Command, perEntry)
		ctxs := make([]int, perEntry)
		for j := range cmds {
			k := (i*perEntry*7 + j*13) % contexts
			ctxs[j] = k
			key := fmt.Sprintf("c%d", k)
			cmds[j] = command.AppendIf{
				Events:         []contract.NewEvent{{Type: "bench-if", Payload: json.RawMessage(fmt.Sprintf(`{"pad":%q,"ctx":%q,"w":%d}`, pad, key, j))}},
				Context:        contract.EventQuery{Filters: []contract.EventFilter{{EventTypes: []string{"bench-if"}, PayloadPredicates: []json.RawMessage{json.RawMessage(`{"ctx":"` + key + `"}`)}}}},
				Expected:       versions[k],
				IdempotencyKey: fmt.Sprintf("c%016x%012x%016x", 1, 2, i*perEntry+j),
				OccurredAt:     at,
			}
		}
		res, err := s.Apply([]command.Entry{{Index: uint64(i + 1), Commands: cmds}})
		if err != nil {
			b.Fatal(err)
		}
		for j, r := range res[0] {
			if r.Err == nil {
				head++
				versions[ctxs[j]] = head
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*perEntry), "ns/command")
}
