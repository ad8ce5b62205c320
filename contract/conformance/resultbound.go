package conformance

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/factstr/factstr-go/contract"
)

// RunResultBound checks a store whose Limits.MaxQueryBytes is maxBytes:
// a result over it comes as a first page with contract.ErrResultTooLarge,
// paging with MinSequenceNumber reads every event, and a result under it
// is the ordinary answer. open is called once; maxBytes must leave room for
// four events of maxBytes/4 bytes (contract.ResultBytes), and the store's
// payload limit must accept them.
func RunResultBound(t *testing.T, maxBytes int, open func(t *testing.T) contract.EventStore) {
	t.Helper()
	const perPage = 4
	if maxBytes < perPage*256 {
		t.Fatalf("RunResultBound needs maxBytes >= %d, got %d", perPage*256, maxBytes)
	}
	store := open(t)
	t.Cleanup(func() { _ = store.Close() })
	ctx := context.Background()

	// Each "big" event counts exactly maxBytes/perPage, so a page holds
	// perPage of them and the next one passes the bound.
	eventBytes := maxBytes / perPage
	big := func(i int) contract.NewEvent {
		head := fmt.Sprintf(`{"i":%d,"pad":"`, i)
		pad := eventBytes - contract.ResultBytes("big", nil) - len(head) - len(`"}`)
		return contract.NewEvent{Type: "big", Payload: json.RawMessage(head + strings.Repeat("x", pad) + `"}`)}
	}
	const n = 10
	var bigSeqs, smallSeqs []uint64
	for i := range n {
		r, err := store.Append(ctx, evs(big(i)))
		if err != nil {
			t.Fatalf("append big event %d: %v", i, err)
		}
		bigSeqs = append(bigSeqs, r.FirstSequenceNumber)
		r, err = store.Append(ctx, evs(ev("small", fmt.Sprintf(`{"i":%d}`, i))))
		if err != nil {
			t.Fatalf("append small event %d: %v", i, err)
		}
		smallSeqs = append(smallSeqs, r.FirstSequenceNumber)
	}
	lastBig := bigSeqs[n-1]

	t.Run("over the bound: first page and ErrResultTooLarge", func(t *testing.T) {
		res, err := store.Query(ctx, typeQ("big"))
		if !errors.Is(err, contract.ErrResultTooLarge) {
			t.Fatalf("query of %d events of %d bytes with a bound of %d: got %v, want ErrResultTooLarge", n, eventBytes, maxBytes, err)
		}
		for _, hint := range []string{"MinSequenceNumber", "LastReturnedSequenceNumber", fmt.Sprint(bigSeqs[perPage-1])} {
			if !strings.Contains(err.Error(), hint) {
				t.Errorf("error %q does not say how to page (missing %q)", err, hint)
			}
		}
		if got := seqsOf(res.Events); !slices.Equal(got, bigSeqs[:perPage]) {
			t.Fatalf("first page: got sequences %v, want %v", got, bigSeqs[:perPage])
		}
		if res.LastReturnedSequenceNumber != bigSeqs[perPage-1] {
			t.Errorf("first page LastReturnedSequenceNumber = %d, want %d", res.LastReturnedSequenceNumber, bigSeqs[perPage-1])
		}
		if res.CurrentContextVersion != lastBig {
			t.Errorf("first page CurrentContextVersion = %d, want the newest match %d", res.CurrentContextVersion, lastBig)
		}
	})

	allSeqs := slices.Sorted(slices.Values(append(slices.Clone(bigSeqs), smallSeqs...)))
	for _, tc := range []struct {
		name  string
		query contract.EventQuery
		want  []uint64
	}{
		{"by type (indexed)", typeQ("big"), bigSeqs},
		// From the suite's first event, so that the store need not be new.
		{"every event (a scan)", contract.EventQuery{MinSequenceNumber: bigSeqs[0] - 1}, allSeqs},
	} {
		t.Run("paging with MinSequenceNumber reads everything: "+tc.name, func(t *testing.T) {
			var got []uint64
			q, last := tc.query, tc.want[len(tc.want)-1]
			for page := 0; ; page++ {
				if page > len(tc.want) {
					t.Fatalf("no end after %d pages; read %v", page, got)
				}
				res, err := store.Query(ctx, q)
				if err != nil && !errors.Is(err, contract.ErrResultTooLarge) {
					t.Fatalf("page %d (after %d): %v", page, q.MinSequenceNumber, err)
				}
				size := 0
				for _, e := range res.Events {
					size += contract.ResultBytes(e.Type, e.Payload)
				}
				if size > maxBytes {
					t.Fatalf("page %d holds %d bytes, over the bound of %d", page, size, maxBytes)
				}
				if res.CurrentContextVersion != last {
					t.Errorf("page %d CurrentContextVersion = %d, want %d", page, res.CurrentContextVersion, last)
				}
				got = append(got, seqsOf(res.Events)...)
				if err == nil {
					break
				}
				if res.LastReturnedSequenceNumber <= q.MinSequenceNumber {
					t.Fatalf("page %d made no progress past %d", page, q.MinSequenceNumber)
				}
				q.MinSequenceNumber = res.LastReturnedSequenceNumber
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("pages read sequences %v, want %v", got, tc.want)
			}
		})
	}

	t.Run("under the bound: the whole result", func(t *testing.T) {
		res, err := store.Query(ctx, withMin(typeQ("big"), bigSeqs[n-perPage-1]))
		if err != nil {
			t.Fatalf("query of the last %d big events: %v", perPage, err)
		}
		if got := seqsOf(res.Events); !slices.Equal(got, bigSeqs[n-perPage:]) {
			t.Fatalf("got %v, want %v", got, bigSeqs[n-perPage:])
		}
		res, err = store.Query(ctx, typeQ("small"))
		if err != nil {
			t.Fatalf("query of the small events: %v", err)
		}
		if got := seqsOf(res.Events); !slices.Equal(got, smallSeqs) || res.CurrentContextVersion != smallSeqs[n-1] {
			t.Fatalf("got %v (version %d), want %v (version %d)", got, res.CurrentContextVersion, smallSeqs, smallSeqs[n-1])
		}
	})
}
