package boltstore_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/factstr/factstr-go/contract"
)

// TestHubRecentReadsWhatTheStoreReads: the batches the stream hub keeps
// after each commit answer a read exactly as the store does (same batches,
// same records, same resume position), for every range it claims to
// cover, under every filter and read bound; and it covers what was just
// committed, which is what a caught-up subscription reads.
func TestHubRecentReadsWhatTheStoreReads(t *testing.T) {
	s, _ := openStore(t)
	// A live subscription follows the hub: the store hands it what it
	// commits (with none, it publishes heads only).
	sub, err := s.StreamAll(context.Background(), func(context.Context, []contract.EventRecord) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	rng := rand.New(rand.NewPCG(7, 11))
	queries := []contract.EventQuery{
		{},
		typeQ("A"),
		typeQ("B", "C"),
		predQ(nil, `{"k":1}`),
		predQ([]string{"A"}, `{"k":2}`, `{"n":{"x":true}}`),
	}
	var matchers []*contract.Matcher
	for _, q := range queries {
		m, err := contract.NewMatcher(q)
		if err != nil {
			t.Fatal(err)
		}
		matchers = append(matchers, m)
	}
	types := []string{"A", "B", "C"}
	for round := 0; round < 150; round++ {
		before := s.Replica().Hub().Head()
		n := 1 + rng.IntN(4)
		batch := make([]contract.NewEvent, n)
		for i := range batch {
			batch[i] = ev(types[rng.IntN(len(types))], fmt.Sprintf(`{"k":%d,"n":{"x":%v},"pad":%q}`, rng.IntN(3), rng.IntN(2) == 0, strings.Repeat("x", rng.IntN(300))))
		}
		mustAppend(t, s, batch...)
		head := s.Replica().Hub().Head()
		for range 6 {
			mi := rng.IntN(len(matchers))
			m := matchers[mi]
			after := uint64(rng.IntN(int(head) + 1))
			if rng.IntN(2) == 0 {
				after = before // what a caught-up subscription asks for
			}
			upTo := after + uint64(rng.IntN(int(head-after)+1))
			maxBatches := 1 + rng.IntN(5)
			maxBytes := int64(rng.IntN(3)) * 400
			got, gotScanned, ok := s.Replica().Hub().Recent(after, upTo, m, maxBatches, maxBytes)
			if after == before && upTo == head && !ok {
				t.Fatalf("round %d: the hub does not keep the batch just committed (%d, %d]", round, after, upTo)
			}
			if !ok {
				continue
			}
			want, _, err := s.ReadBatches(context.Background(), after, upTo, m, maxBatches, maxBytes)
			if err != nil {
				t.Fatal(err)
			}
			what := fmt.Sprintf("round %d: Recent(%d, %d, query %d, %d batches, %d bytes)", round, after, upTo, mi, maxBatches, maxBytes)
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("%s = %v\nthe store reads %v", what, got, want)
			}
			// The resume position may differ from the store's (it may stop
			// looking earlier), but it never skips a match: everything
			// after the returned batches up to it held none.
			all, _, err := s.ReadBatches(context.Background(), after, upTo, m, 1<<30, 0)
			if err != nil {
				t.Fatal(err)
			}
			lastEnd := after
			if len(got) > 0 {
				lastEnd = got[len(got)-1][len(got[len(got)-1])-1].SequenceNumber
			}
			if gotScanned < lastEnd || gotScanned > upTo {
				t.Fatalf("%s scanned %d, outside [%d, %d]", what, gotScanned, lastEnd, upTo)
			}
			if len(all) > len(got) && all[len(got)][0].SequenceNumber <= gotScanned {
				t.Fatalf("%s scanned %d past the match %d it did not return", what, gotScanned, all[len(got)][0].SequenceNumber)
			}
		}
	}
}
