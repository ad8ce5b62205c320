// Package conformance is the executable form of the FACTSTR contract: one
// test suite that every contract.EventStore (in-memory, embedded bbolt, the
// Raft cluster in-process, the gRPC client against real processes) must pass
// unchanged.
//
// Use it from a store's tests:
//
//	func TestConformance(t *testing.T) {
//		conformance.Run(t, func(t *testing.T) contract.EventStore {
//			return mystore.New()
//		})
//	}
//
// Every semantic is its own named subtest ("Append/ConsecutiveFromOne",
// "Durable/ReplayFailureResumesAtFailedBatch", ...), so a single rule can be
// run with -run. Waits for something that must happen are bounded by
// WaitTimeout; checks that something must NOT happen wait QuietWindow.
// Subtests run one after another (no t.Parallel), each against a fresh store.
package conformance

import (
	"testing"
	"time"

	"github.com/factstr/factstr-go/contract"
)

const (
	// WaitTimeout bounds every wait for something that must happen (a
	// delivery, a handler context being cancelled, a durable name being
	// freed, a call returning).
	WaitTimeout = 10 * time.Second
	// QuietWindow is how long a check waits for something that must NOT
	// happen (a delivery after Unsubscribe, a batch without matches).
	QuietWindow = 300 * time.Millisecond
)

type testCase struct {
	name string
	fn   func(t *testing.T, s contract.EventStore)
}

type group struct {
	name  string
	cases []testCase
}

func groups() []group {
	return []group{
		{"Append", appendCases()},
		{"AppendIf", appendIfCases()},
		{"Query", queryCases()},
		{"Matching", matchingCases()},
		{"Live", liveCases()},
		{"CatchUp", catchUpCases()},
		{"Durable", durableCases()},
		{"Ending", endingCases()},
		{"DurableStart", startCases()},
		{"DurableAdmin", adminCases()},
		{"Group", groupCases()},
		{"DurablePark", parkCases()},
		{"Close", closeCases()},
		{"Concurrency", concurrencyCases()},
	}
}

// Run runs every semantic of the FACTSTR contract as named subtests against
// stores made by open. Each subtest opens a fresh, empty store and closes it.
//
// open may register its own cleanup (for example removing a data directory)
// with t.Cleanup; Run closes the store before those cleanups run (and
// ignores the ErrClosed of a store a subtest closed itself).
func Run(t *testing.T, open func(t *testing.T) contract.EventStore) {
	t.Helper()
	if open == nil {
		t.Fatal("conformance.Run: open is nil")
	}
	for _, g := range groups() {
		t.Run(g.name, func(t *testing.T) {
			for _, c := range g.cases {
				t.Run(c.name, func(t *testing.T) {
					s := openStore(t, open)
					c.fn(t, s)
				})
			}
		})
	}
}

// openStore opens a store, closes it when the subtest ends, and checks it is
// empty.
func openStore(t *testing.T, open func(t *testing.T) contract.EventStore) contract.EventStore {
	t.Helper()
	s := open(t)
	if s == nil {
		t.Fatal("open returned a nil store")
	}
	// Registered after open's own cleanups, so it runs before them.
	t.Cleanup(func() { _ = s.Close() })
	res, err := doQuery(s, contract.EventQuery{})
	if err != nil {
		t.Fatalf("Query on a freshly opened store failed: %v", err)
	}
	if len(res.Events) != 0 || res.CurrentContextVersion != 0 {
		t.Fatalf("open returned a store that is not empty: Query found %d events, context version %d; every subtest needs a fresh, empty store",
			len(res.Events), res.CurrentContextVersion)
	}
	return s
}
