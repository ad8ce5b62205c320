package boltstore_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/factstr/factstr-go/boltstore"
	"github.com/factstr/factstr-go/contract"
	"github.com/factstr/factstr-go/fsm/command"
	"github.com/factstr/factstr-go/internal/streams"
)

func TestLimits(t *testing.T) {
	limits := contract.Limits{MaxPayloadBytes: 64, MaxBatchEvents: 3, MaxTypeBytes: 8}
	big := `{"x":"` + strings.Repeat("a", 64) + `"}`
	tests := []struct {
		name   string
		events []contract.NewEvent
		want   error
	}{
		{"empty batch", nil, contract.ErrEmptyAppend},
		{"invalid JSON", []contract.NewEvent{ev("A", `{}`), ev("A", `{"x":`)}, contract.ErrInvalidEvent},
		{"trailing data", []contract.NewEvent{ev("A", `{}]`)}, contract.ErrInvalidEvent},
		{"empty payload", []contract.NewEvent{{Type: "A"}}, contract.ErrInvalidEvent},
		{"empty type", []contract.NewEvent{ev("A", `{}`), ev("", `{}`)}, contract.ErrInvalidEvent},
		{"oversize payload", []contract.NewEvent{ev("A", `{}`), ev("A", big)}, contract.ErrLimitExceeded},
		{"oversize type", []contract.NewEvent{ev("TOOLONGTYPE", `{}`)}, contract.ErrLimitExceeded},
		{"oversize batch", []contract.NewEvent{ev("A", `1`), ev("A", `2`), ev("A", `3`), ev("A", `4`)}, contract.ErrLimitExceeded},
	}
	s, _ := openStore(t, boltstore.WithLimits(limits))
	mustAppend(t, s, ev("A", `{"seed":true}`))
	ctx := context.Background()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			head, applied := s.Replica().Head(), s.Replica().AppliedIndex()
			if _, err := s.Append(ctx, tc.events); !errors.Is(err, tc.want) {
				t.Errorf("Append: got %v, want %v", err, tc.want)
			}
			// An unconditional context, even one that would conflict:
			// validation comes first.
			if _, err := s.AppendIf(ctx, tc.events, contract.EventQuery{}, 42); !errors.Is(err, tc.want) {
				t.Errorf("AppendIf: got %v, want %v", err, tc.want)
			}
			if s.Replica().Head() != head || s.Replica().AppliedIndex() != applied {
				t.Errorf("head %d → %d, applied %d → %d: a rejected batch changed the store", head, s.Replica().Head(), applied, s.Replica().AppliedIndex())
			}
			if res := mustQuery(t, s, contract.EventQuery{}); len(res.Events) != 1 {
				t.Errorf("store holds %d events, want 1", len(res.Events))
			}
		})
	}
}

func TestInvalidPredicate(t *testing.T) {
	s, _ := openStore(t)
	q := predQ(nil, `{"a":`)
	if _, err := s.Query(context.Background(), q); !errors.Is(err, contract.ErrInvalidQuery) {
		t.Errorf("Query: got %v, want ErrInvalidQuery", err)
	}
	if _, err := s.AppendIf(context.Background(), []contract.NewEvent{ev("A", `{}`)}, q, 0); !errors.Is(err, contract.ErrInvalidQuery) {
		t.Errorf("AppendIf: got %v, want ErrInvalidQuery", err)
	}
	if s.Replica().Head() != 0 {
		t.Errorf("head %d, want 0", s.Replica().Head())
	}
}

// TestApplyRechecksEvents: Apply does not trust the proposer with what the
// store relies on, but leaves the size limits to it.
func TestApplyRechecksEvents(t *testing.T) {
	s, _ := openStore(t, boltstore.WithReplicated())
	at := time.Unix(1700000000, 0)
	huge := `"` + strings.Repeat("x", 2<<20) + `"`
	res, err := s.Apply([]command.Entry{{Index: 1, Commands: []command.Command{
		command.Append{OccurredAt: at, Events: []contract.NewEvent{ev("A", `{}`), ev("", `{}`)}},
		command.Append{OccurredAt: at, Events: []contract.NewEvent{ev("A", `{}`), ev("A", `{`)}},
		command.Append{OccurredAt: at},
		command.Append{Events: []contract.NewEvent{ev("A", `{}`)}},
		command.Append{OccurredAt: at, Events: []contract.NewEvent{ev(strings.Repeat("T", 40000), huge)}},
		command.Append{OccurredAt: at, Events: []contract.NewEvent{ev("\xff", `{}`)}},
		command.Unknown{Code: 0},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	wants := []error{contract.ErrInvalidEvent, contract.ErrInvalidEvent, contract.ErrEmptyAppend, contract.ErrInvalidEvent, nil, contract.ErrInvalidEvent, command.ErrUnknownKind}
	for i, want := range wants {
		if got := res[0][i].Err; !errors.Is(got, want) || (want == nil && got != nil) {
			t.Errorf("command %d: got %v, want %v", i, got, want)
		}
	}
	if s.Replica().Head() != 1 || s.Replica().AppliedIndex() != 1 {
		t.Errorf("head %d applied %d, want 1 and 1", s.Replica().Head(), s.Replica().AppliedIndex())
	}
	got := mustQuery(t, s, typeQ(strings.Repeat("T", 40000)))
	if len(got.Events) != 1 || len(got.Events[0].Payload) != len(huge) {
		t.Errorf("long type and payload: got %d events", len(got.Events))
	}
}

func TestReplicatedRefusesEmbeddedWrites(t *testing.T) {
	s, _ := openStore(t, boltstore.WithReplicated())
	ctx := context.Background()
	noop := func(context.Context, []contract.EventRecord) error { return nil }
	if _, err := s.Append(ctx, []contract.NewEvent{ev("A", `{}`)}); !errors.Is(err, boltstore.ErrReplicated) {
		t.Errorf("Append: %v", err)
	}
	if _, err := s.AppendIf(ctx, []contract.NewEvent{ev("A", `{}`)}, contract.EventQuery{}, 0); !errors.Is(err, boltstore.ErrReplicated) {
		t.Errorf("AppendIf: %v", err)
	}
	if _, err := s.StreamAllDurable(ctx, "d", noop); !errors.Is(err, boltstore.ErrReplicated) {
		t.Errorf("StreamAllDurable: %v", err)
	}
	sub, err := s.StreamAll(ctx, noop)
	if err != nil {
		t.Fatalf("StreamAll on a replica: %v", err)
	}
	sub.Unsubscribe()
}

// TestPersistence: events, batch grouping and durable cursors survive a
// restart, and replay after the restart groups as committed.
func TestPersistence(t *testing.T) {
	s, path := openStore(t)
	ctx := context.Background()
	mustAppend(t, s, ev("A", `{"n":1}`))
	mustAppend(t, s, ev("A", `{"n":2}`), ev("B", `{"n":3}`), ev("A", `{"n":4}`))
	mustAppend(t, s, ev("B", `{"n":5}`))

	got := make(chan []uint64, 16)
	sub, err := s.StreamToDurable(ctx, "d", typeQ("A"), func(_ context.Context, b []contract.EventRecord) error {
		got <- seqs(b)
		if b[len(b)-1].SequenceNumber >= 2 {
			return errors.New("stop here") // the cursor stays at 1
		}
		return nil
	})
	if err == nil {
		sub.Unsubscribe()
		t.Fatal("the handler failed during replay, yet StreamToDurable succeeded")
	}
	if cur, holder, ok, err := s.Replica().Durable("d"); err != nil || !ok || cur != 1 || holder != "" {
		t.Fatalf("durable d = cursor %d holder %q ok %v err %v; want cursor 1, free", cur, holder, ok, err)
	}
	before := mustQuery(t, s, contract.EventQuery{})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Query(ctx, contract.EventQuery{}); !errors.Is(err, contract.ErrClosed) {
		t.Errorf("Query after Close: %v", err)
	}

	s2 := reopen(t, path)
	if !s2.Replica().WasClean() {
		t.Error("WasClean is false after a clean Close")
	}
	if s2.Replica().Head() != 5 {
		t.Errorf("head %d after reopen, want 5", s2.Replica().Head())
	}
	after := mustQuery(t, s2, contract.EventQuery{})
	if b, a := mustJSON(t, before), mustJSON(t, after); b != a {
		t.Errorf("query after reopen differs:\nbefore %s\nafter  %s", b, a)
	}
	var batches [][]uint64
	sub, err = s2.StreamToDurable(ctx, "d", typeQ("A"), func(_ context.Context, b []contract.EventRecord) error {
		batches = append(batches, seqs(b))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sub.Unsubscribe()
	if want := [][]uint64{{2, 4}}; !equal2(batches, want) {
		t.Errorf("replay after reopen: %v, want %v", batches, want)
	}
	batches = nil
	sub, err = s2.StreamAllDurable(ctx, "all", func(_ context.Context, b []contract.EventRecord) error {
		batches = append(batches, seqs(b))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sub.Unsubscribe()
	if want := [][]uint64{{1}, {2, 3, 4}, {5}}; !equal2(batches, want) {
		t.Errorf("replay of everything after reopen: %v, want %v", batches, want)
	}
	if cur, _, _, _ := s2.Replica().Durable("d"); cur != 4 {
		t.Errorf("cursor of d is %d, want 4", cur)
	}
}

// TestOpenReleasesLeases: an embedded store frees the leases a killed
// process left; a replica leaves them to the log.
func TestOpenReleasesLeases(t *testing.T) {
	for _, replicated := range []bool{false, true} {
		t.Run(map[bool]string{false: "embedded", true: "replicated"}[replicated], func(t *testing.T) {
			var opts []boltstore.Option
			if replicated {
				opts = append(opts, boltstore.WithReplicated())
			}
			s, path := openStore(t, opts...)
			res, err := s.Apply([]command.Entry{{Index: s.Replica().AppliedIndex() + 1, Commands: []command.Command{
				command.Acquire{Name: "d", Holder: "node1/7"},
			}}})
			if err != nil || res[0][0].Err != nil {
				t.Fatal(err, res[0][0].Err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s2 := reopen(t, path, opts...)
			_, holder, ok, err := s2.Replica().Durable("d")
			if err != nil || !ok {
				t.Fatal(ok, err)
			}
			want := ""
			if replicated {
				want = "node1/7"
			}
			if holder != want {
				t.Errorf("holder after reopen %q, want %q", holder, want)
			}
		})
	}
}

// TestGroupCommit: concurrent appends all commit, gapless, each batch whole.
func TestGroupCommit(t *testing.T) {
	s, _ := openStore(t)
	const writers, each = 8, 25
	errs := make(chan error, writers)
	results := make(chan contract.AppendResult, writers*each)
	for w := range writers {
		go func() {
			for i := range each {
				n := 1 + (w+i)%3
				events := make([]contract.NewEvent, n)
				for j := range events {
					events[j] = ev("W", `{"w":`+strconv.Itoa(w)+`}`)
				}
				r, err := s.Append(context.Background(), events)
				if err != nil {
					errs <- err
					return
				}
				results <- r
			}
			errs <- nil
		}()
	}
	for range writers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	close(results)
	var ranges []contract.AppendResult
	for r := range results {
		ranges = append(ranges, r)
	}
	slices.SortFunc(ranges, func(a, b contract.AppendResult) int { return int(a.FirstSequenceNumber) - int(b.FirstSequenceNumber) })
	next := uint64(1)
	for _, r := range ranges {
		if r.FirstSequenceNumber != next || r.LastSequenceNumber-r.FirstSequenceNumber+1 != r.CommittedCount {
			t.Fatalf("range %+v, want it to start at %d", r, next)
		}
		next = r.LastSequenceNumber + 1
	}
	if s.Replica().Head() != next-1 {
		t.Errorf("head %d, want %d", s.Replica().Head(), next-1)
	}
	if s.Replica().AppliedIndex() >= uint64(writers*each) {
		t.Logf("no appends shared a commit (applied index %d for %d appends)", s.Replica().AppliedIndex(), writers*each)
	}
}

func TestEmbeddedIdempotencyKey(t *testing.T) {
	s, _ := openStore(t)
	ctx := contract.WithIdempotencyKey(context.Background(), "k1")
	r1, err := s.Append(ctx, []contract.NewEvent{ev("A", `{}`)})
	if err != nil {
		t.Fatal(err)
	}
	r2, err := s.Append(ctx, []contract.NewEvent{ev("A", `{}`), ev("A", `{}`)})
	if err != nil || r2 != r1 {
		t.Fatalf("retry with the same key: %+v %v, want %+v", r2, err, r1)
	}
	if s.Replica().Head() != 1 {
		t.Errorf("head %d, want 1", s.Replica().Head())
	}
	ctx2 := contract.WithIdempotencyKey(context.Background(), "k2")
	_, err = s.AppendIf(ctx2, []contract.NewEvent{ev("A", `{}`)}, typeQ("A"), 0)
	var c1 *contract.ConflictError
	if !errors.As(err, &c1) || c1.Actual != 1 {
		t.Fatalf("AppendIf: %v", err)
	}
	mustAppend(t, s, ev("A", `{}`))
	_, err = s.AppendIf(ctx2, []contract.NewEvent{ev("A", `{}`)}, typeQ("A"), 0)
	var c2 *contract.ConflictError
	if !errors.As(err, &c2) || *c2 != *c1 {
		t.Fatalf("AppendIf retry: %v, want the first conflict %v", err, c1)
	}
}

func mustJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func equal2(a, b [][]uint64) bool {
	return slices.EqualFunc(a, b, func(x, y []uint64) bool { return slices.Equal(x, y) })
}

func TestAbandonIsNotClean(t *testing.T) {
	s, path := openStore(t, boltstore.WithNoSync(true))
	mustAppend(t, s, ev("A", `{}`))
	if err := s.Abandon(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(context.Background(), []contract.NewEvent{ev("A", `{}`)}); !errors.Is(err, contract.ErrClosed) {
		t.Errorf("Append after Abandon: %v", err)
	}
	s2 := reopen(t, path)
	if s2.Replica().WasClean() {
		t.Error("WasClean after Abandon")
	}
	if err := s2.Close(); err != nil {
		t.Fatal(err)
	}
	if s3 := reopen(t, path); !s3.Replica().WasClean() {
		t.Error("WasClean false after a clean Close")
	}
}

// TestReadBatchesIndexedMatchesScan: the indexed path of ReadBatches
// returns exactly what a scan of every batch, filtered, returns: the same
// batches, the same resume position, for every window and limit (in
// batches and in bytes: a batch that would pass the byte bound is left for
// the next read, unless it is the first).
func TestReadBatchesIndexedMatchesScan(t *testing.T) {
	s, _ := openStore(t, boltstore.WithReplicated())
	if _, err := s.Apply(randomEntries(7, 300)); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	head := s.Replica().Head()
	everything, _ := contract.NewMatcher(contract.EventQuery{})
	all, end, err := s.ReadBatches(ctx, 0, head, everything, 1<<30, 0)
	if err != nil || end != head {
		t.Fatalf("full read: end %d head %d err %v", end, head, err)
	}
	batchEnd := map[uint64]uint64{} // seq -> last seq of its committed batch
	for _, b := range all {
		for _, e := range b {
			batchEnd[e.SequenceNumber] = b[len(b)-1].SequenceNumber
		}
	}
	queries := map[string]contract.EventQuery{
		"one type":            typeQ("A"),
		"two types":           typeQ("A", "C"),
		"type and predicate":  predQ([]string{"B"}, `{"k":"a"}`),
		"predicate only":      predQ(nil, `{"n":3}`),
		"two filters":         {Filters: []contract.EventFilter{{EventTypes: []string{"A"}}, {PayloadPredicates: []json.RawMessage{json.RawMessage(`{"k":"c"}`)}}}},
		"nothing can match":   typeQ("Z"),
		"unnarrowable (scan)": predQ(nil, `{}`),
	}
	for name, q := range queries {
		m, err := contract.NewMatcher(q)
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range []struct{ after, upTo uint64 }{{0, head}, {17, head / 2}, {head / 3, head}, {head - 5, head + 10}} {
			for _, lim := range []struct {
				batches int
				bytes   int64
			}{{1, 0}, {3, 0}, {1 << 30, 0}, {1 << 30, 1}, {1 << 30, 1500}, {3, 4000}} {
				// The oracle: every batch from the full read, filtered.
				var (
					want      [][]contract.EventRecord
					wantBytes int64
				)
				wantEnd := min(w.upTo, head)
				for _, b := range all {
					var kept []contract.EventRecord
					for _, e := range b {
						if e.SequenceNumber > w.after && e.SequenceNumber <= w.upTo && contract.Matches(q, e) {
							kept = append(kept, e)
						}
					}
					if len(kept) > 0 {
						n := streams.BatchBytes(kept)
						if len(want) == lim.batches || (lim.bytes > 0 && len(want) > 0 && (wantBytes >= lim.bytes || wantBytes+n > lim.bytes)) {
							wantEnd = batchEnd[want[len(want)-1][0].SequenceNumber]
							break
						}
						want, wantBytes = append(want, kept), wantBytes+n
					}
				}
				got, gotEnd, err := s.ReadBatches(ctx, w.after, w.upTo, m, lim.batches, lim.bytes)
				if err != nil {
					t.Fatal(err)
				}
				if fmt.Sprint(got) != fmt.Sprint(want) || gotEnd != wantEnd {
					t.Fatalf("%s (%d,%d] limit %+v:\n got %d batches, resume %d: %v\nwant %d batches, resume %d: %v", name, w.after, w.upTo, lim, len(got), gotEnd, got, len(want), wantEnd, want)
				}
			}
		}
	}
}
