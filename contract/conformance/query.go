package conformance

import (
	"testing"

	"github.com/factstr/factstr-go/contract"
)

func queryCases() []testCase {
	return []testCase{
		{"Ascending", testQueryAscending},
		{"MinSequenceNumberExclusive", testQueryMinExclusive},
		{"ContextVersionIgnoresMinSequenceNumber", testQueryVersionIgnoresMin},
		{"EmptyStore", testQueryEmptyStore},
		{"LastReturnedSequenceNumber", testQueryLastReturned},
	}
}

func testQueryAscending(t *testing.T, s contract.EventStore) {
	mustAppend(t, s, ev("A", `{"i":1}`), ev("B", `{"i":2}`))
	mustAppend(t, s, ev("A", `{"i":3}`))
	mustAppend(t, s, ev("B", `{"i":4}`), ev("A", `{"i":5}`), ev("B", `{"i":6}`))
	checkQuery(t, s, contract.EventQuery{}, span(1, 6), 6)
	checkQuery(t, s, typeQ("A"), []uint64{1, 3, 5}, 5)
	checkQuery(t, s, typeQ("B"), []uint64{2, 4, 6}, 6)
	checkQuery(t, s, query(filter(types("B")), filter(types("A"))), span(1, 6), 6)
}

func testQueryMinExclusive(t *testing.T, s contract.EventStore) {
	for i := 0; i < 5; i++ {
		mustAppend(t, s, ev("A", `{}`))
	}
	checkQuery(t, s, withMin(contract.EventQuery{}, 0), span(1, 5), 5)
	checkQuery(t, s, withMin(contract.EventQuery{}, 1), span(2, 5), 5)
	checkQuery(t, s, withMin(contract.EventQuery{}, 2), span(3, 5), 5)
	checkQuery(t, s, withMin(contract.EventQuery{}, 4), []uint64{5}, 5)
	checkQuery(t, s, withMin(contract.EventQuery{}, 5), nil, 5)
	checkQuery(t, s, withMin(contract.EventQuery{}, 9), nil, 5)
	checkQuery(t, s, withMin(typeQ("A"), 3), span(4, 5), 5)
}

func testQueryVersionIgnoresMin(t *testing.T, s contract.EventStore) {
	mustAppend(t, s, ev("A", `{}`)) // 1
	mustAppend(t, s, ev("B", `{}`)) // 2
	mustAppend(t, s, ev("A", `{}`)) // 3
	mustAppend(t, s, ev("B", `{}`)) // 4
	checkQuery(t, s, withMin(typeQ("A"), 0), []uint64{1, 3}, 3)
	checkQuery(t, s, withMin(typeQ("A"), 1), []uint64{3}, 3)
	checkQuery(t, s, withMin(typeQ("A"), 2), []uint64{3}, 3)
	// Past every match: nothing returned, version still the highest match.
	checkQuery(t, s, withMin(typeQ("A"), 3), nil, 3)
	checkQuery(t, s, withMin(typeQ("A"), 100), nil, 3)
	checkQuery(t, s, withMin(typeQ("B"), 2), []uint64{4}, 4)
	checkQuery(t, s, withMin(predQ(`{}`), 4), nil, 4)
}

func testQueryEmptyStore(t *testing.T, s contract.EventStore) {
	for _, q := range []contract.EventQuery{
		{},
		typeQ("A"),
		withMin(contract.EventQuery{}, 5),
		predQ(`{"k":1}`),
		query(filter(types("A"), `{"k":1}`), filter(types("B"))),
	} {
		checkQuery(t, s, q, nil, 0)
	}
}

func testQueryLastReturned(t *testing.T, s contract.EventStore) {
	mustAppend(t, s, ev("A", `{}`), ev("B", `{}`)) // 1, 2
	mustAppend(t, s, ev("A", `{}`), ev("B", `{}`)) // 3, 4
	mustAppend(t, s, ev("C", `{}`))                // 5
	checkQuery(t, s, typeQ("A"), []uint64{1, 3}, 3)
	checkQuery(t, s, typeQ("B"), []uint64{2, 4}, 4)
	checkQuery(t, s, withMin(typeQ("B"), 2), []uint64{4}, 4)
	checkQuery(t, s, contract.EventQuery{}, span(1, 5), 5)
	checkQuery(t, s, withMin(typeQ("C"), 5), nil, 5)
	checkQuery(t, s, typeQ("Z"), nil, 0)
}
