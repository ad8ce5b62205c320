package contract

import (
	"encoding/json"
	"testing"
)

// fullMatch is Match as it was before payloads were projected: every
// payload decoded whole, every predicate compared against it.
func fullMatch(q EventQuery, typ string, payload []byte) bool {
	if len(q.Filters) == 0 {
		return true
	}
	decoded, derr := DecodeJSON(payload)
	for _, f := range q.Filters {
		if f.EventTypes != nil {
			found := false
			for _, t := range f.EventTypes {
				found = found || t == typ
			}
			if !found {
				continue
			}
		}
		if f.PayloadPredicates == nil {
			return true
		}
		if derr != nil {
			continue
		}
		for _, p := range f.PayloadPredicates {
			pv, err := DecodeJSON(p)
			if err == nil && ValueMatches(pv, decoded) {
				return true
			}
		}
	}
	return false
}

// Match decodes only the payload members its object predicates name; it
// must decide exactly as a whole decode does, for every kind of predicate
// against every kind of payload (objects, arrays, scalars, duplicate keys,
// numbers of equal value, invalid JSON).
func TestMatchProjectionEqualsFullDecode(t *testing.T) {
	preds := []string{
		`{}`, `{"a":1}`, `{"a":1.0}`, `{"a":"x"}`, `{"a":{"b":true}}`, `{"a":[1]}`, `{"a":[]}`, `{"b":null}`,
		`{"a":1,"b":null}`, `[1]`, `[]`, `1`, `"x"`, `null`, `true`, `{"\u00e9":1}`, `{"a":{}}`,
	}
	payloads := []string{
		`{}`, `{"a":1}`, `{"a":10e-1}`, `{"a":"x","b":null}`, `{"a":{"b":true,"c":2}}`, `{"a":[2,1]}`,
		`{"a":1,"a":2}`, `{"a":2,"a":1}`, `{"a":{"b":false},"a":{"b":true}}`, `[1,2]`, `[]`, `1`, `"x"`,
		`null`, `true`, `{"é":1}`, `{"a":[]}`, `{"a":1,"b":null,"pad":"zzz"}`,
		`{"a":1`, `{"a":1}x`, ``, `{"pad":[1,{"x":[2]}],"a":1}`, `{"a":{}}`,
	}
	typesOf := [][]string{nil, {"T"}, {"U"}, {}}
	for _, types := range typesOf {
		for i, p1 := range preds {
			p2 := preds[(i*7+3)%len(preds)]
			for _, q := range []EventQuery{
				{Filters: []EventFilter{{EventTypes: types, PayloadPredicates: []json.RawMessage{json.RawMessage(p1)}}}},
				{Filters: []EventFilter{{EventTypes: types, PayloadPredicates: []json.RawMessage{json.RawMessage(p1), json.RawMessage(p2)}}}},
				{Filters: []EventFilter{{EventTypes: types, PayloadPredicates: []json.RawMessage{json.RawMessage(p1)}}, {PayloadPredicates: []json.RawMessage{json.RawMessage(p2)}}}},
				{Filters: []EventFilter{{EventTypes: types, PayloadPredicates: []json.RawMessage{}}}},
			} {
				m, err := NewMatcher(q)
				if err != nil {
					t.Fatalf("NewMatcher(%v): %v", q, err)
				}
				for _, pl := range payloads {
					if got, want := m.Match("T", json.RawMessage(pl)), fullMatch(q, "T", []byte(pl)); got != want {
						t.Errorf("query %+v, payload %s: Match %v, a whole decode says %v", q, pl, got, want)
					}
				}
			}
		}
	}
}

// The planner reads the matcher's decoded predicates instead of decoding
// them again; they are DecodeJSON's values, filter by filter.
func TestMatcherPredicates(t *testing.T) {
	q := EventQuery{Filters: []EventFilter{
		{EventTypes: []string{"T"}},
		{PayloadPredicates: []json.RawMessage{json.RawMessage(`{"a":1}`), json.RawMessage(`[true]`)}},
	}}
	m, err := NewMatcher(q)
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Predicates(0); got != nil {
		t.Errorf("filter 0 has no predicates, got %v", got)
	}
	got := m.Predicates(1)
	if len(got) != 2 {
		t.Fatalf("filter 1: %d predicates, want 2", len(got))
	}
	for j, raw := range q.Filters[1].PayloadPredicates {
		want, _ := DecodeJSON(raw)
		if !ValueMatches(got[j], want) || !ValueMatches(want, got[j]) {
			t.Errorf("predicate %d: %v, want %v", j, got[j], want)
		}
	}
}
