package boltstore_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/factstr/factstr-go/boltstore"
	"github.com/factstr/factstr-go/contract"
	"github.com/factstr/factstr-go/fsm/command"
)

// allocDuring returns the bytes allocated while fn ran.
func allocDuring(fn func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

func nested(depth int, key, leaf string) string {
	return strings.Repeat(`{"`+key+`":`, depth) + leaf + strings.Repeat("}", depth)
}

// Entries already in a log (proposed by an older node, or straight through
// Apply) are indexed whatever their shape, with memory and work in
// proportion to their size: a replica must never crash-loop on one.
func TestApplyHostilePayloadsBoundedMemory(t *testing.T) {
	key98 := strings.Repeat("k", 98)
	million := strings.Repeat("7", 1_000_000)
	cases := []struct {
		name, payload string
		pred          string // a predicate that must find the event
	}{
		{"the finding: depth 6000, 98-byte keys", nested(6000, key98, `"bottom"`), nested(6000, key98, `"bottom"`)},
		{"depth 10000 in under 1 MiB", nested(10000, "k", `1`), nested(10000, "k", `1.0`)},
		{"many leaves under one long path", nested(2000, key98, "["+strings.Repeat("1,", 100_000)+"2]"), nested(2000, key98, `[2]`)},
		{"a number of a million digits", `{"n":` + million + `}`, `{"n":` + million + `.0}`},
		{"a fraction of a million digits", `{"n":0.` + million + `}`, `{"n":0.` + million + `}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, _ := openStore(t, boltstore.WithLimits(contract.Limits{}))
			var res command.Result
			alloc := allocDuring(func() {
				res = applyOne(t, s, command.Append{OccurredAt: time.Now(),
					Events: []contract.NewEvent{ev("Deep", `{"x":1}`), ev("Deep", c.payload)}})
			})
			if res.Err != nil {
				t.Fatalf("apply: %v", res.Err)
			}
			// The old walk allocated thousands of times the payload's size
			// for these (2.26 GB for the finding's 618 KB); decoding (a map
			// per level), one posting per leaf and bbolt's own copies cost
			// a constant per byte.
			if bound := uint64(256 * len(c.payload)); alloc > bound {
				t.Fatalf("applying a %d-byte payload allocated %d bytes, want at most %d (256x its size)", len(c.payload), alloc, bound)
			}
			t.Logf("payload %d bytes, apply allocated %d bytes (%.1fx)", len(c.payload), alloc, float64(alloc)/float64(len(c.payload)))
			got := mustQuery(t, s, predQ(nil, c.pred))
			if fmt.Sprint(seqs(got.Events)) != "[2]" {
				t.Fatalf("query by the payload's own leaf found %v, want [2]", seqs(got.Events))
			}
		})
	}
}

func TestApplyUnnarrowedContextBudget(t *testing.T) {
	s, _ := openStore(t)
	// {} names no scalar: no index narrows it, so Apply would scan for an
	// object payload.
	unnarrowed := predQ(nil, `{}`)
	appendIf := func(expected uint64) command.Result {
		return applyOne(t, s, command.AppendIf{OccurredAt: time.Now(), Context: unnarrowed, Expected: expected,
			Events: []contract.NewEvent{ev("T", `"scalar"`)}})
	}
	mustAppend(t, s, ev("Obj", `{"a":1}`))
	scalars := make([]contract.NewEvent, 9_999)
	for i := range scalars {
		scalars[i] = ev("T", fmt.Sprint(i))
	}
	mustAppend(t, s, scalars...)
	// The object is the 10,000th event from the head: within the budget
	// (10,000 events examined), the outcome is the
	// contract's: a conflict names the version, the right version appends.
	if res := appendIf(0); !errors.As(res.Err, new(*contract.ConflictError)) {
		t.Fatalf("AppendIf with a stale version inside the budget: %v, want a conflict", res.Err)
	}
	if res := appendIf(1); res.Err != nil {
		t.Fatalf("AppendIf with the right version inside the budget: %v", res.Err)
	}
	// One more scalar puts the object beyond the budget: a deterministic
	// refusal, nothing appended.
	head := mustQuery(t, s, contract.EventQuery{}).CurrentContextVersion
	res := appendIf(1)
	if !errors.Is(res.Err, contract.ErrInvalidQuery) || !strings.Contains(res.Err.Error(), "add an event type") {
		t.Fatalf("AppendIf beyond the scan budget: %v, want ErrInvalidQuery naming what to add", res.Err)
	}
	if got := mustQuery(t, s, contract.EventQuery{}).CurrentContextVersion; got != head {
		t.Fatalf("refused AppendIf moved the head from %d to %d", head, got)
	}
	// The same context through the store's own AppendIf is refused before
	// anything is proposed, whatever the log holds.
	if _, err := s.AppendIf(context.Background(), []contract.NewEvent{ev("T", `1`)}, unnarrowed, head); !errors.Is(err, contract.ErrInvalidQuery) {
		t.Fatalf("embedded AppendIf with an unnarrowed context: %v, want ErrInvalidQuery", err)
	}
	// Query may still scan (it is a read), and a cancelled ctx stops it.
	if got := mustQuery(t, s, unnarrowed); len(got.Events) != 1 || got.CurrentContextVersion != 1 {
		t.Fatalf("Query of the unnarrowed context: %v, version %d; want [1], 1", seqs(got.Events), got.CurrentContextVersion)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Query(ctx, unnarrowed); !errors.Is(err, context.Canceled) {
		t.Fatalf("Query with a cancelled ctx: %v, want context.Canceled", err)
	}
}

// A narrowed context keeps the contract's outcome however far back its
// version is: the budget only bounds scans.
func TestApplyNarrowedContextUnbounded(t *testing.T) {
	s, _ := openStore(t)
	mustAppend(t, s, ev("Seat", `{"seat":"12A"}`))
	filler := make([]contract.NewEvent, 6_000)
	for i := range filler {
		filler[i] = ev("Other", `{"seat":"12B"}`)
	}
	mustAppend(t, s, filler...)
	mustAppend(t, s, filler...)
	q := predQ(nil, `{"seat":"12A"}`)
	if _, err := s.AppendIf(context.Background(), []contract.NewEvent{ev("Seat", `{"seat":"12A","user":"ann"}`)}, q, 1); err != nil {
		t.Fatalf("AppendIf on a narrowed context 12,000 events back: %v", err)
	}
}
