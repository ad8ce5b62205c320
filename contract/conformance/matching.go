package conformance

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/factstr/factstr-go/contract"
)

func matchingCases() []testCase {
	return []testCase{
		{"ScalarPredicate", testMatchScalar},
		{"NestedObject", testMatchNested},
		{"ArrayOrderInsensitive", testMatchArrayOrder},
		{"ArrayOfObjects", testMatchArrayOfObjects},
		{"OrAcrossPredicates", testMatchOrPredicates},
		{"OrAcrossFilters", testMatchOrFilters},
		{"TypeAndPredicate", testMatchTypeAndPredicate},
		{"EmptyEventTypesMatchesNothing", testMatchEmptyTypes},
		{"EmptyPayloadPredicatesMatchesNothing", testMatchEmptyPredicates},
		{"NilAndEmptyFiltersMatchEverything", testMatchNoFilters},
		{"NumbersByValue", testMatchNumbers},
		{"LargeNumbersExact", testMatchLargeNumbers},
		{"ScalarNeverMatchesArray", testMatchScalarVsArray},
		{"StringIsNotNumber", testMatchStringVsNumber},
		{"NullPredicate", testMatchNull},
		{"EmptyObjectPredicate", testMatchEmptyObject},
		{"InvalidPredicate", testMatchInvalidPredicate},
		{"InvalidPredicateInAppendIfAndStreams", testMatchInvalidPredicateElsewhere},
	}
}

// seed appends each event as its own batch: event i gets sequence number i+1.
func seed(t testing.TB, s contract.EventStore, events ...contract.NewEvent) {
	t.Helper()
	for _, e := range events {
		mustAppend(t, s, e)
	}
}

// expectMatch checks that q (MinSequenceNumber 0) matches exactly want.
func expectMatch(t testing.TB, s contract.EventStore, q contract.EventQuery, want ...uint64) {
	t.Helper()
	var version uint64
	if len(want) > 0 {
		version = want[len(want)-1]
	}
	checkQuery(t, s, q, want, version)
}

func testMatchScalar(t *testing.T, s contract.EventStore) {
	seed(t, s,
		ev("A", `{"id":"a","n":1}`), // 1
		ev("A", `{"id":"b","n":2}`), // 2
		ev("A", `{"id":"a","n":2}`), // 3
		ev("A", `"a"`),              // 4
		ev("A", `{"id":true}`),      // 5
	)
	expectMatch(t, s, predQ(`{"id":"a"}`), 1, 3)
	expectMatch(t, s, predQ(`{"id":"a","n":2}`), 3)
	expectMatch(t, s, predQ(`{"n":2}`), 2, 3)
	expectMatch(t, s, predQ(`"a"`), 4)
	expectMatch(t, s, predQ(`{"id":true}`), 5)
	expectMatch(t, s, predQ(`{"id":"c"}`))
	expectMatch(t, s, predQ(`{"missing":"a"}`))
}

func testMatchNested(t *testing.T, s contract.EventStore) {
	seed(t, s,
		ev("A", `{"user":{"id":7,"name":"x","address":{"city":"Oslo","zip":"0150"}}}`), // 1
		ev("A", `{"user":{"id":8,"address":{"city":"Bergen"}}}`),                       // 2
		ev("A", `{"user":7}`), // 3
		ev("A", `{"id":7}`),   // 4
	)
	expectMatch(t, s, predQ(`{"user":{"id":7}}`), 1)
	expectMatch(t, s, predQ(`{"user":{"address":{"city":"Oslo"}}}`), 1)
	expectMatch(t, s, predQ(`{"user":{"address":{}}}`), 1, 2)
	expectMatch(t, s, predQ(`{"user":{"id":7,"missing":1}}`))
	expectMatch(t, s, predQ(`{"user":{"address":{"city":"Oslo","zip":"9999"}}}`))
	// A nested predicate does not match a key found at another depth.
	expectMatch(t, s, predQ(`{"user":{"city":"Oslo"}}`))
}

func testMatchArrayOrder(t *testing.T, s contract.EventStore) {
	seed(t, s,
		ev("A", `{"tags":["a","b","c"]}`), // 1
		ev("A", `{"tags":["c"]}`),         // 2
		ev("A", `{"tags":["b","a"]}`),     // 3
		ev("A", `[1,2,3]`),                // 4
	)
	expectMatch(t, s, predQ(`{"tags":["b","a"]}`), 1, 3)
	expectMatch(t, s, predQ(`{"tags":["a","b"]}`), 1, 3)
	expectMatch(t, s, predQ(`{"tags":["c","a"]}`), 1)
	expectMatch(t, s, predQ(`{"tags":["c"]}`), 1, 2)
	expectMatch(t, s, predQ(`{"tags":["d"]}`))
	expectMatch(t, s, predQ(`[3,1]`), 4)
}

func testMatchArrayOfObjects(t *testing.T, s contract.EventStore) {
	seed(t, s,
		ev("A", `{"items":[{"sku":"x","qty":1},{"sku":"y","qty":2}]}`), // 1
		ev("A", `{"items":[{"sku":"y","qty":3}]}`),                     // 2
		ev("A", `{"items":[{"sku":"z","qty":2}]}`),                     // 3
	)
	expectMatch(t, s, predQ(`{"items":[{"sku":"y"}]}`), 1, 2)
	expectMatch(t, s, predQ(`{"items":[{"sku":"y","qty":2}]}`), 1)
	expectMatch(t, s, predQ(`{"items":[{"qty":2}]}`), 1, 3)
	// No single element has both fields.
	expectMatch(t, s, predQ(`{"items":[{"sku":"x","qty":2}]}`))
	// Two predicate elements may match two different payload elements.
	expectMatch(t, s, predQ(`{"items":[{"sku":"y"},{"sku":"x"}]}`), 1)
}

func testMatchOrPredicates(t *testing.T, s contract.EventStore) {
	seed(t, s,
		ev("A", `{"k":1}`), // 1
		ev("A", `{"k":2}`), // 2
		ev("A", `{"k":3}`), // 3
		ev("B", `{"k":1}`), // 4
	)
	expectMatch(t, s, predQ(`{"k":1}`, `{"k":2}`), 1, 2, 4)
	expectMatch(t, s, query(filter(types("A"), `{"k":3}`, `{"k":1}`)), 1, 3)
	expectMatch(t, s, predQ(`{"k":9}`, `{"k":3}`), 3)
}

func testMatchOrFilters(t *testing.T, s contract.EventStore) {
	seed(t, s,
		ev("A", `{"k":0}`), // 1
		ev("B", `{"k":1}`), // 2
		ev("B", `{"k":2}`), // 3
		ev("C", `{"k":1}`), // 4
	)
	expectMatch(t, s, query(filter(types("A")), filter(types("B"), `{"k":1}`)), 1, 2)
	expectMatch(t, s, query(filter(types("C")), filter(nil, `{"k":2}`)), 3, 4)
	expectMatch(t, s, query(filter(types("Z")), filter(types("B"))), 2, 3)
}

func testMatchTypeAndPredicate(t *testing.T, s contract.EventStore) {
	seed(t, s,
		ev("A", `{"k":1}`), // 1
		ev("A", `{"k":2}`), // 2
		ev("B", `{"k":1}`), // 3
		ev("C", `{"k":1}`), // 4
	)
	expectMatch(t, s, query(filter(types("A"), `{"k":1}`)), 1)
	expectMatch(t, s, query(filter(types("A", "B"), `{"k":1}`)), 1, 3)
	expectMatch(t, s, query(filter(types("B"), `{"k":2}`)))
	expectMatch(t, s, typeQ("A", "C"), 1, 2, 4)
}

func testMatchEmptyTypes(t *testing.T, s contract.EventStore) {
	seed(t, s, ev("A", `{"k":1}`), ev("B", `{"k":1}`))
	expectMatch(t, s, query(contract.EventFilter{EventTypes: []string{}}))
	expectMatch(t, s, query(filter([]string{}, `{"k":1}`)))
	// Only that filter matches nothing; the other filter still matches.
	expectMatch(t, s, query(contract.EventFilter{EventTypes: []string{}}, filter(types("B"))), 2)
}

func testMatchEmptyPredicates(t *testing.T, s contract.EventStore) {
	seed(t, s, ev("A", `{"k":1}`), ev("B", `null`))
	expectMatch(t, s, query(contract.EventFilter{PayloadPredicates: []json.RawMessage{}}))
	expectMatch(t, s, query(contract.EventFilter{EventTypes: []string{"A"}, PayloadPredicates: []json.RawMessage{}}))
	expectMatch(t, s, query(contract.EventFilter{PayloadPredicates: []json.RawMessage{}}, filter(types("B"))), 2)
}

func testMatchNoFilters(t *testing.T, s contract.EventStore) {
	seed(t, s, ev("A", `{"k":1}`), ev("B", `null`), ev("C", `[1]`))
	expectMatch(t, s, contract.EventQuery{Filters: nil}, 1, 2, 3)
	expectMatch(t, s, contract.EventQuery{Filters: []contract.EventFilter{}}, 1, 2, 3)
	expectMatch(t, s, query(contract.EventFilter{}), 1, 2, 3)
}

func testMatchNumbers(t *testing.T, s contract.EventStore) {
	seed(t, s,
		ev("A", `{"n":10}`),   // 1
		ev("A", `{"n":10.0}`), // 2
		ev("A", `{"n":1e1}`),  // 3
		ev("A", `{"n":10.5}`), // 4
		ev("A", `{"n":"10"}`), // 5
		ev("A", `{"n":-10}`),  // 6
		ev("A", `{"n":0}`),    // 7
	)
	expectMatch(t, s, predQ(`{"n":10}`), 1, 2, 3)
	expectMatch(t, s, predQ(`{"n":10.0}`), 1, 2, 3)
	expectMatch(t, s, predQ(`{"n":1.0E+1}`), 1, 2, 3)
	expectMatch(t, s, predQ(`{"n":100e-1}`), 1, 2, 3)
	expectMatch(t, s, predQ(`{"n":10.50}`), 4)
	expectMatch(t, s, predQ(`{"n":-1e1}`), 6)
	expectMatch(t, s, predQ(`{"n":-0}`), 7)
	expectMatch(t, s, predQ(`{"n":0.0}`), 7)
}

func testMatchLargeNumbers(t *testing.T, s contract.EventStore) {
	// Beyond float64 precision: these differ by one and must not be equal.
	seed(t, s,
		ev("A", `{"n":12345678901234567890}`),  // 1
		ev("A", `{"n":12345678901234567891}`),  // 2
		ev("A", `{"n":0.1000000000000000001}`), // 3
	)
	expectMatch(t, s, predQ(`{"n":12345678901234567890}`), 1)
	expectMatch(t, s, predQ(`{"n":12345678901234567891}`), 2)
	expectMatch(t, s, predQ(`{"n":1.2345678901234567891e19}`), 2)
	expectMatch(t, s, predQ(`{"n":0.1}`))
}

func testMatchScalarVsArray(t *testing.T, s contract.EventStore) {
	seed(t, s,
		ev("A", `{"tags":["a","b"]}`), // 1
		ev("A", `{"tags":"a"}`),       // 2
		ev("A", `["a"]`),              // 3
		ev("A", `{"n":[1]}`),          // 4
	)
	expectMatch(t, s, predQ(`{"tags":"a"}`), 2)
	expectMatch(t, s, predQ(`"a"`))
	expectMatch(t, s, predQ(`{"n":1}`))
	expectMatch(t, s, predQ(`{"tags":["a"]}`), 1)
}

func testMatchStringVsNumber(t *testing.T, s contract.EventStore) {
	seed(t, s,
		ev("A", `{"n":1}`),      // 1
		ev("A", `{"n":"1"}`),    // 2
		ev("A", `{"b":true}`),   // 3
		ev("A", `{"b":"true"}`), // 4
	)
	expectMatch(t, s, predQ(`{"n":1}`), 1)
	expectMatch(t, s, predQ(`{"n":"1"}`), 2)
	expectMatch(t, s, predQ(`{"b":true}`), 3)
	expectMatch(t, s, predQ(`{"b":"true"}`), 4)
}

func testMatchNull(t *testing.T, s contract.EventStore) {
	seed(t, s,
		ev("A", `{"v":null}`),  // 1
		ev("A", `{"v":0}`),     // 2
		ev("A", `{"w":1}`),     // 3
		ev("A", `null`),        // 4
		ev("A", `{"v":false}`), // 5
		ev("A", `{"v":""}`),    // 6
	)
	// A null value matches only null, and a missing key is not null.
	expectMatch(t, s, predQ(`{"v":null}`), 1)
	expectMatch(t, s, predQ(`null`), 4)
}

func testMatchEmptyObject(t *testing.T, s contract.EventStore) {
	seed(t, s,
		ev("A", `{"a":1}`),  // 1
		ev("A", `{}`),       // 2
		ev("A", `5`),        // 3
		ev("A", `"s"`),      // 4
		ev("A", `[{}]`),     // 5
		ev("A", `null`),     // 6
		ev("A", `{"o":{}}`), // 7
	)
	expectMatch(t, s, predQ(`{}`), 1, 2, 7)
}

func testMatchInvalidPredicate(t *testing.T, s contract.EventStore) {
	mustAppend(t, s, ev("A", `{"k":1}`))
	for _, q := range []contract.EventQuery{
		predQ(`{"a":`),
		predQ(`not json`),
		predQ(``),
		predQ(`1]`),
		predQ(`{"a":1}}`),
		query(filter(types("A")), filter(types("B"), `{"k":1}`, `{"k"`)),
	} {
		res, err := doQuery(s, q)
		if !errors.Is(err, contract.ErrInvalidQuery) {
			t.Errorf("Query %s: got %d events, error %v; want an error matching contract.ErrInvalidQuery", fmtQuery(q), len(res.Events), err)
		}
	}
}

func testMatchInvalidPredicateElsewhere(t *testing.T, s contract.EventStore) {
	mustAppend(t, s, ev("A", `{"k":1}`))
	q := predQ(`{"a":`)
	res, err := doAppendIf(s, evs(ev("A", `{}`)), q, 0)
	if !errors.Is(err, contract.ErrInvalidQuery) {
		t.Errorf("AppendIf with context %s: got %+v, error %v; want an error matching contract.ErrInvalidQuery", fmtQuery(q), res, err)
	}
	rec := NewRecorder(nil)
	calls := []struct {
		name string
		call func() (contract.Subscription, error)
	}{
		{"StreamTo", func() (contract.Subscription, error) { return s.StreamTo(t.Context(), q, rec.Handle) }},
		{"StreamTo (catch-up)", func() (contract.Subscription, error) { return s.StreamTo(t.Context(), withMin(q, 1), rec.Handle) }},
		{"StreamToDurable", func() (contract.Subscription, error) { return s.StreamToDurable(t.Context(), "d", q, rec.Handle) }},
	}
	for _, c := range calls {
		sub, err := c.call()
		if err == nil && sub != nil {
			sub.Unsubscribe()
		}
		if !errors.Is(err, contract.ErrInvalidQuery) {
			t.Errorf("%s with query %s: got error %v; want an error matching contract.ErrInvalidQuery", c.name, fmtQuery(q), err)
		}
	}
	checkQuery(t, s, contract.EventQuery{}, []uint64{1}, 1)
	if n := len(rec.Batches()); n != 0 {
		t.Errorf("rejected stream calls delivered %d batches", n)
	}
}
