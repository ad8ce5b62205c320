package streams

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/factstr/factstr-go/contract"
)

func TestQueryKey(t *testing.T) {
	pred := func(s string) []json.RawMessage { return []json.RawMessage{json.RawMessage(s)} }
	key := func(q contract.EventQuery) string {
		t.Helper()
		k, err := QueryKey(q)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	base := contract.EventQuery{Filters: []contract.EventFilter{{EventTypes: []string{"a"}, PayloadPredicates: pred(`{"x":1,"y":{"z":"w"}}`)}}}
	same := []contract.EventQuery{
		// Key order and white space do not matter, nor the read cursor.
		{Filters: []contract.EventFilter{{EventTypes: []string{"a"}, PayloadPredicates: pred(`{ "y": {"z":"w"}, "x": 1 }`)}}},
		{Filters: base.Filters, MinSequenceNumber: 42},
	}
	for i, q := range same {
		if key(q) != key(base) {
			t.Errorf("case %d: %s != %s", i, key(q), key(base))
		}
	}
	different := []contract.EventQuery{
		{Filters: []contract.EventFilter{{EventTypes: []string{"b"}, PayloadPredicates: pred(`{"x":1,"y":{"z":"w"}}`)}}},
		{Filters: []contract.EventFilter{{EventTypes: []string{"a"}, PayloadPredicates: pred(`{"x":2,"y":{"z":"w"}}`)}}},
		// Absent and empty lists mean different things: any versus none.
		{Filters: []contract.EventFilter{{PayloadPredicates: pred(`{"x":1,"y":{"z":"w"}}`)}}},
		{Filters: []contract.EventFilter{{EventTypes: []string{}, PayloadPredicates: pred(`{"x":1,"y":{"z":"w"}}`)}}},
		{Filters: []contract.EventFilter{{EventTypes: []string{"a"}}}},
		{Filters: []contract.EventFilter{{EventTypes: []string{"a"}, PayloadPredicates: []json.RawMessage{}}}},
		{},
	}
	seen := map[string]int{key(base): -1}
	for i, q := range different {
		k := key(q)
		if j, dup := seen[k]; dup {
			t.Errorf("case %d has the key of case %d: %s", i, j, k)
		}
		seen[k] = i
	}
	if _, err := QueryKey(contract.EventQuery{Filters: []contract.EventFilter{{PayloadPredicates: pred(`{"x":`)}}}); !errors.Is(err, contract.ErrInvalidQuery) {
		t.Fatalf("invalid predicate: %v, want ErrInvalidQuery", err)
	}
}
