package contract

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"
)

func deepPayload(depth, keyBytes int) string {
	key := strings.Repeat("k", keyBytes)
	return strings.Repeat(`{"`+key+`":`, depth) + "1" + strings.Repeat("}", depth)
}

func TestValidateEventsShape(t *testing.T) {
	lim := DefaultLimits
	lim.MaxPayloadBytes = 0 // the shape rules alone
	cases := []struct {
		name    string
		payload string
		want    string // "" accepted, else a part of the message
	}{
		{"flat object", `{"a":1,"b":"x","c":[true,false,null]}`, ""},
		{"depth 64", strings.Repeat("[", 64) + strings.Repeat("]", 64), ""},
		{"depth 65", strings.Repeat("[", 65) + strings.Repeat("]", 65), "nested deeper than 64"},
		{"the finding's payload: depth 6000, 98-byte keys", deepPayload(6000, 98), "nested deeper than 64"},
		{"depth 10000 in under 1 MiB", deepPayload(10000, 1), "nested deeper than 64"},
		{"10000 leaves", "[" + strings.Repeat("1,", 9999) + "1]", ""},
		{"10001 leaves", "[" + strings.Repeat("1,", 10000) + "1]", "more than 10000 scalar values"},
		{"keys are not leaves", `{` + strings.Repeat(`"k":{`, 60) + `}` + strings.Repeat("}", 60), ""},
		{"100 digits", "1" + strings.Repeat("0", 99), ""},
		{"101 digits", "1" + strings.Repeat("0", 100), "has 101 digits"},
		{"a million digits", `{"n":` + strings.Repeat("7", 1_000_000) + `}`, "has 1000000 digits"},
		{"digits with a fraction and exponent", "-1." + strings.Repeat("5", 98) + "e-12", "has 101 digits"},
		{"invalid UTF-8 in a string", "{\"a\":\"\xff\"}", "not valid UTF-8"},
		{"invalid UTF-8 in a key", "{\"\xc3\":1}", "not valid UTF-8"},
		{"escaped non-ASCII is fine", `{"a":"\u00e9","é":1}`, ""},
		{"duplicate key", `{"a":1,"b":2,"a":3}`, `the key "a" twice`},
		{"duplicate key spelled with an escape", `{"a":1,"\u0061":2}`, `the key "a" twice`},
		{"duplicate key in a big object", bigObject(40, true), `the key "k0" twice`},
		{"40 distinct keys", bigObject(40, false), ""},
		{"same key in sibling objects", `[{"a":1},{"a":2},{"x":{"a":1},"a":{"a":1}}]`, ""},
		{"escaped quote in a key", `{"a\"b":1,"a":2}`, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := ValidateEvents([]NewEvent{{Type: "T", Payload: json.RawMessage(c.payload)}}, lim)
			if c.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidEvent) {
				t.Fatalf("got %v, want ErrInvalidEvent", err)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("message %q does not say %q", err, c.want)
			}
		})
	}
}

func bigObject(n int, dup bool) string {
	var b strings.Builder
	b.WriteString("{")
	for i := range n {
		fmt.Fprintf(&b, `"k%d":%d,`, i, i)
	}
	if dup {
		b.WriteString(`"k0":0,`)
	}
	b.WriteString(`"last":0}`)
	return b.String()
}

// A check of the finding's payload must cost memory in proportion to it,
// not to depth × key length.
func TestValidateEventsDeepPayloadMemory(t *testing.T) {
	p := json.RawMessage(deepPayload(6000, 98))
	lim := Limits{} // no depth limit: walk it all
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	if err := ValidateEvents([]NewEvent{{Type: "T", Payload: p}}, lim); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	if got, bound := after.TotalAlloc-before.TotalAlloc, uint64(4*len(p)); got > bound {
		t.Fatalf("validating a %d-byte payload of depth 6000 allocated %d bytes, want at most %d", len(p), got, bound)
	}
}

func TestValidateQueryLimits(t *testing.T) {
	pred := func(ps ...string) []json.RawMessage {
		out := make([]json.RawMessage, len(ps))
		for i, p := range ps {
			out[i] = json.RawMessage(p)
		}
		return out
	}
	manyFilters := make([]EventFilter, 257)
	for i := range manyFilters {
		manyFilters[i] = EventFilter{EventTypes: []string{"T"}}
	}
	cases := []struct {
		name string
		q    EventQuery
		want string
	}{
		{"no filters", EventQuery{}, ""},
		{"256 filters", EventQuery{Filters: manyFilters[:256]}, ""},
		{"257 filters", EventQuery{Filters: manyFilters}, "257 filters, the maximum is 256"},
		{"257 predicates", EventQuery{Filters: []EventFilter{{PayloadPredicates: pred(strings.Split(strings.Repeat(`{"a":1};`, 257), ";")[:257]...)}}}, "257 payload predicates"},
		{"oversize predicate", EventQuery{Filters: []EventFilter{{PayloadPredicates: pred(`{"a":"` + strings.Repeat("x", 64<<10) + `"}`)}}}, "bytes, the maximum is 65536"},
		{"deep predicate", EventQuery{Filters: []EventFilter{{PayloadPredicates: pred(deepPayload(100, 1))}}}, "nested deeper than 64"},
		{"long number in a predicate", EventQuery{Filters: []EventFilter{{PayloadPredicates: pred(strings.Repeat("9", 200))}}}, "has 200 digits"},
		{"duplicate key in a predicate", EventQuery{Filters: []EventFilter{{PayloadPredicates: pred(`{"a":1,"a":2}`)}}}, "twice"},
		{"predicate not JSON", EventQuery{Filters: []EventFilter{{PayloadPredicates: pred(`{"a":`)}}}, "not a JSON value"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := ValidateQueryLimits(c.q, DefaultLimits)
			if c.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidQuery) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want ErrInvalidQuery saying %q", err, c.want)
			}
		})
	}
}

func TestValidateContextNarrows(t *testing.T) {
	f := func(types []string, preds ...string) EventFilter {
		ef := EventFilter{EventTypes: types}
		for _, p := range preds {
			ef.PayloadPredicates = append(ef.PayloadPredicates, json.RawMessage(p))
		}
		return ef
	}
	cases := []struct {
		name    string
		filters []EventFilter
		narrows bool
	}{
		{"no filters: the last event", nil, true},
		{"a filter matching everything", []EventFilter{{}}, true},
		{"types", []EventFilter{f([]string{"A"})}, true},
		{"types and a predicate without scalars", []EventFilter{f([]string{"A"}, `{}`)}, true},
		{"scalar predicate", []EventFilter{f(nil, `{"seat":"12A"}`)}, true},
		{"root scalar predicate", []EventFilter{f(nil, `"x"`)}, true},
		{"null is a scalar", []EventFilter{f(nil, `{"a":null}`)}, true},
		{"nested scalar", []EventFilter{f(nil, `{"a":{"b":[{"c":false}]}}`)}, true},
		{"matches nothing", []EventFilter{{EventTypes: []string{}}, {PayloadPredicates: []json.RawMessage{}}}, true},
		{"empty object predicate", []EventFilter{f(nil, `{}`)}, false},
		{"only keys and structure", []EventFilter{f(nil, `{"tags":[], "x":{"y":{}}}`)}, false},
		{"one narrow, one not", []EventFilter{f([]string{"A"}), f(nil, `{"a":1}`, `[]`)}, false},
		{"one not narrow, but another matches everything", []EventFilter{f(nil, `{}`), {}}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := ValidateContext(EventQuery{Filters: c.filters}, DefaultLimits)
			if c.narrows {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidQuery) || !strings.Contains(err.Error(), "add an event type") {
				t.Fatalf("got %v, want ErrInvalidQuery saying what to add", err)
			}
			// The same query is still a valid Query.
			if err := ValidateQuery(EventQuery{Filters: c.filters}); err != nil {
				t.Fatalf("as a Query: %v", err)
			}
		})
	}
}

// oldCanonicalNumber is CanonicalNumber as the indexes on disk were built
// with: the new one must spell every number of moderate length the same.
func oldCanonicalNumber(s string) string {
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		var e int
		if _, err := fmt.Sscan(strings.TrimPrefix(s[i+1:], "+"), &e); err != nil || e > 400 || e < -400 {
			return s
		}
	}
	var r big.Rat
	if _, ok := r.SetString(s); !ok {
		return s
	}
	return r.RatString()
}

func TestCanonicalNumberCompatible(t *testing.T) {
	fixed := []string{"0", "-0", "0.0", "10", "10.0", "1e1", "1E+1", "100e-1", "0.25", "-0.250", "2.5e-1",
		"123456789012345678901234567890", "1e400", "1e401", "1e-400", "0.000001", "-12.5e3", "7e-0",
		"0." + strings.Repeat("0", 300) + "1", "1" + strings.Repeat("0", 500) + ".0"}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		var b strings.Builder
		if rng.IntN(2) == 0 {
			b.WriteByte('-')
		}
		b.WriteString(fmt.Sprint(rng.IntN(1000)))
		if rng.IntN(2) == 0 {
			b.WriteByte('.')
			for range 1 + rng.IntN(12) {
				b.WriteByte(byte('0' + rng.IntN(10)))
			}
		}
		if rng.IntN(2) == 0 {
			fmt.Fprintf(&b, "e%d", rng.IntN(60)-30)
		}
		fixed = append(fixed, b.String())
	}
	for _, s := range fixed {
		if got, want := CanonicalNumber(json.Number(s)), oldCanonicalNumber(s); got != want {
			t.Errorf("CanonicalNumber(%s) = %s, the indexes hold %s", s, got, want)
		}
	}
}

func TestCanonicalNumberLong(t *testing.T) {
	million := strings.Repeat("7", 1_000_000)
	cases := []struct{ a, b string }{
		{million, million + ".000"},
		{million, million[:999_999] + "70e-1"},
		{"0." + strings.Repeat("0", 999_999) + "1", "1e-1000000"},
		{"-" + million, "-" + million + "e0"},
	}
	for _, c := range cases {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		ca, cb := CanonicalNumber(json.Number(c.a)), CanonicalNumber(json.Number(c.b))
		runtime.ReadMemStats(&after)
		if ca != cb {
			t.Errorf("equal numbers of %d and %d bytes spelled differently", len(c.a), len(c.b))
		}
		if !NumbersEqual(json.Number(c.a), json.Number(c.b)) {
			t.Errorf("NumbersEqual is false for equal numbers of %d and %d bytes", len(c.a), len(c.b))
		}
		// Quadratic big-number conversions allocate far more than this.
		if got, bound := after.TotalAlloc-before.TotalAlloc, uint64(8*(len(c.a)+len(c.b))); got > bound {
			t.Errorf("canonicalizing numbers of %d and %d bytes allocated %d bytes, want at most %d", len(c.a), len(c.b), got, bound)
		}
	}
	if CanonicalNumber(json.Number(million)) == CanonicalNumber(json.Number(million+"1")) {
		t.Error("different long numbers share a spelling")
	}
}
