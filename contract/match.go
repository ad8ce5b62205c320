package contract

import (
	"encoding/json"
	"fmt"
	"math/big"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/factstr/factstr-go/internal/jsontext"
)

// Matches reports whether rec matches q's filters. It is the oracle for every
// store. MinSequenceNumber is a read cursor, not part of matching, and is
// ignored here. A query with a predicate that is not JSON matches nothing;
// stores reject such queries up front (ValidateQuery).
func Matches(q EventQuery, rec EventRecord) bool {
	m, err := NewMatcher(q)
	if err != nil {
		return false
	}
	return m.Match(rec.Type, rec.Payload)
}

// Matcher is a query compiled once (predicates decoded) for matching many
// events.
type Matcher struct {
	all     bool
	filters []compiledFilter
	query   EventQuery // what it was compiled from, for stores that plan with indexes
	// keys are the top-level keys of every object predicate: Match decodes
	// only those members of a payload (jsontext.Project), which is all an
	// object predicate looks at, and a predicate of another kind never
	// matches an object.
	keys map[string]struct{}
}

type compiledFilter struct {
	types      map[string]struct{} // nil: any type
	preds      []any               // nil: any payload
	anyPayload bool
}

// NewMatcher compiles q. It fails when a payload predicate is not JSON.
func NewMatcher(q EventQuery) (*Matcher, error) {
	m := &Matcher{all: len(q.Filters) == 0, query: cloneQuery(q)}
	for i, f := range q.Filters {
		cf := compiledFilter{anyPayload: f.PayloadPredicates == nil}
		if err := checkFilterTypes(i, f.EventTypes); err != nil {
			return nil, err
		}
		if f.EventTypes != nil {
			cf.types = make(map[string]struct{}, len(f.EventTypes))
			for _, t := range f.EventTypes {
				cf.types[t] = struct{}{}
			}
		}
		if f.PayloadPredicates != nil {
			cf.preds = make([]any, 0, len(f.PayloadPredicates))
			for j, p := range f.PayloadPredicates {
				v, err := DecodeJSON(p)
				if err != nil {
					return nil, fmt.Errorf("%w: filter %d payload predicate %d is not a JSON value: %v", ErrInvalidQuery, i, j, err)
				}
				cf.preds = append(cf.preds, v)
				if obj, ok := v.(map[string]any); ok {
					if m.keys == nil {
						m.keys = make(map[string]struct{}, len(obj))
					}
					for k := range obj {
						m.keys[k] = struct{}{}
					}
				}
			}
		}
		m.filters = append(m.filters, cf)
	}
	return m, nil
}

// Query returns the query m was compiled from (a copy), so that a store can
// narrow candidates with its indexes before matching.
func (m *Matcher) Query() EventQuery { return cloneQuery(m.query) }

func cloneQuery(q EventQuery) EventQuery {
	out := EventQuery{MinSequenceNumber: q.MinSequenceNumber}
	if q.Filters != nil {
		out.Filters = make([]EventFilter, len(q.Filters))
		for i, f := range q.Filters {
			if f.EventTypes != nil {
				out.Filters[i].EventTypes = append([]string{}, f.EventTypes...)
			}
			if f.PayloadPredicates != nil {
				out.Filters[i].PayloadPredicates = make([]json.RawMessage, len(f.PayloadPredicates))
				for j, p := range f.PayloadPredicates {
					out.Filters[i].PayloadPredicates[j] = append(json.RawMessage{}, p...)
				}
			}
		}
	}
	return out
}

// Predicates returns the decoded payload predicates of filter i (nil when
// the filter has none), as DecodeJSON gives them, so that a store planning
// with indexes need not decode them again. They are shared: callers must
// not modify them.
func (m *Matcher) Predicates(i int) []any { return m.filters[i].preds }

// MatchesEverything reports whether the query has no filters.
func (m *Matcher) MatchesEverything() bool { return m.all }

// NeedsPayload reports whether matching can depend on the payload.
func (m *Matcher) NeedsPayload() bool {
	for _, f := range m.filters {
		if !f.anyPayload {
			return true
		}
	}
	return false
}

// Match reports whether an event with this type and payload matches. The
// payload is decoded only when a filter needs it.
func (m *Matcher) Match(eventType string, payload json.RawMessage) bool {
	if m.all {
		return true
	}
	var decoded any
	var decodedOK, tried bool
	for _, f := range m.filters {
		if f.types != nil {
			if _, ok := f.types[eventType]; !ok {
				continue
			}
		}
		if f.anyPayload {
			return true
		}
		if !tried {
			tried = true
			v, err := jsontext.Project(payload, m.keys)
			decoded, decodedOK = v, err == nil
		}
		if !decodedOK {
			continue
		}
		for _, p := range f.preds {
			if ValueMatches(p, decoded) {
				return true
			}
		}
	}
	return false
}

// DecodeJSON decodes one JSON value, keeping numbers as json.Number so they
// compare by value without float rounding. Trailing data is an error. It
// decodes exactly as json.Valid and a json.Decoder with UseNumber do, in
// one pass (internal/jsontext).
func DecodeJSON(raw []byte) (any, error) {
	return jsontext.Decode(raw)
}

// checkFilterTypes refuses event types of filter i that are not valid
// UTF-8: no stored type can equal one.
func checkFilterTypes(i int, types []string) error {
	for _, t := range types {
		if !utf8.ValidString(t) {
			return fmt.Errorf("%w: filter %d has an event type that is not valid UTF-8", ErrInvalidQuery, i)
		}
	}
	return nil
}

// ValueMatches reports whether the decoded predicate is a JSON subset of the
// decoded payload value: scalars by equality (numbers by value), objects when
// every predicate key exists and matches, arrays when every predicate element
// matches some payload element (order does not matter). A scalar never
// matches an array.
func ValueMatches(pred, val any) bool {
	switch p := pred.(type) {
	case map[string]any:
		v, ok := val.(map[string]any)
		if !ok {
			return false
		}
		for k, pv := range p {
			vv, ok := v[k]
			if !ok || !ValueMatches(pv, vv) {
				return false
			}
		}
		return true
	case []any:
		v, ok := val.([]any)
		if !ok {
			return false
		}
		for _, pe := range p {
			found := false
			for _, ve := range v {
				if ValueMatches(pe, ve) {
					found = true
					break
				}
			}
			if !found {
				return false
			}
		}
		return true
	case json.Number:
		v, ok := val.(json.Number)
		return ok && NumbersEqual(p, v)
	case string:
		v, ok := val.(string)
		return ok && v == p
	case bool:
		v, ok := val.(bool)
		return ok && v == p
	case nil:
		return val == nil
	default:
		return false
	}
}

// NumbersEqual compares two JSON numbers by value: 10 equals 10.0 and 1e1.
func NumbersEqual(a, b json.Number) bool {
	if a == b {
		return true
	}
	return CanonicalNumber(a) == CanonicalNumber(b)
}

// CanonicalNumber returns one spelling for every JSON number of equal value
// (an exact rational, such as "10" or "1/4"), so indexes can key on it.
//
// Its cost is linear in the spelling's length: exact rational arithmetic is
// done only on a number whose significant digits and exponent are both
// small; a longer number's spelling is its normalized decimal (digits, 'e',
// exponent), which is as exact and cannot be confused with a rational.
func CanonicalNumber(n json.Number) string {
	s := string(n)
	// An exponent beyond float64's range would make big.Rat allocate huge
	// integers; such numbers keep their spelling.
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		if e, err := strconv.Atoi(strings.TrimPrefix(s[i+1:], "+")); err != nil || e > 400 || e < -400 {
			return s
		}
	}
	neg, digits, exp, ok := normalizeDecimal(s)
	if !ok {
		// Not a JSON number (an exported caller's input): the old rules.
		var r big.Rat
		if _, ok := r.SetString(s); !ok {
			return s
		}
		return r.RatString()
	}
	if digits == "" {
		return "0"
	}
	sign := ""
	if neg {
		sign = "-"
	}
	short := sign + digits + "e" + strconv.Itoa(exp)
	if len(digits) > maxRatDigits || exp > maxRatDigits || exp < -maxRatDigits {
		return short
	}
	var r big.Rat
	if _, ok := r.SetString(short); !ok {
		return s
	}
	return r.RatString()
}

// maxRatDigits bounds the significant digits and the exponent of a number
// CanonicalNumber spells as a rational: big.Rat's decimal conversions are
// quadratic, cheap below this and seconds for a million digits.
const maxRatDigits = 1000

// normalizeDecimal splits a JSON number into its sign, its significant
// digits (no leading or trailing zeros; "" for zero) and the exponent that
// makes value = digits × 10^exp. ok is false when s is not a JSON number
// or its exponent does not fit an int.
func normalizeDecimal(s string) (neg bool, digits string, exp int, ok bool) {
	i := 0
	if i < len(s) && s[i] == '-' {
		neg, i = true, 1
	}
	intStart := i
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	intPart := s[intStart:i]
	if intPart == "" {
		return false, "", 0, false
	}
	var frac string
	if i < len(s) && s[i] == '.' {
		i++
		fracStart := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		frac = s[fracStart:i]
		if frac == "" {
			return false, "", 0, false
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		e, err := strconv.Atoi(strings.TrimPrefix(s[i+1:], "+"))
		if err != nil {
			return false, "", 0, false
		}
		exp, i = e, len(s)
	}
	if i != len(s) {
		return false, "", 0, false
	}
	// value = (intPart frac) × 10^(exp - len(frac)), without building the
	// concatenation when one part is empty after trimming.
	all := intPart + frac
	exp -= len(frac)
	trimmed := strings.TrimLeft(all, "0")
	if trimmed == "" {
		return neg, "", 0, true
	}
	end := len(trimmed)
	for end > 0 && trimmed[end-1] == '0' {
		end--
	}
	exp += len(trimmed) - end
	return neg, trimmed[:end], exp, true
}
