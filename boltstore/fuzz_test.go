package boltstore_test

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/factstr/factstr-go/boltstore"
	"github.com/factstr/factstr-go/contract"
	"github.com/factstr/factstr-go/fsm/command"
)

// fuzzGen turns fuzz input into events and queries; once the input is used
// up every choice is 0, which always terminates.
type fuzzGen struct {
	b []byte
	i int
}

func (g *fuzzGen) intn(n int) int {
	if g.i >= len(g.b) || n <= 1 {
		return 0
	}
	g.i++
	return int(g.b[g.i-1]) % n
}

var (
	fuzzTypes   = []string{"A", "B", "C"}
	fuzzKeys    = []string{"a", "b", "n", ""}
	fuzzNumbers = []string{"1", "1.0", "10", "1e1", "10.00", "-0", "0", "2.5", "25e-1", "0.1", "-3", "100000000000000000000", "1e400"}
	fuzzStrings = []string{`"1"`, `"a"`, `""`, `"10"`, `"\u0061"`}
)

// value writes a small JSON value; depth bounds nesting.
func (g *fuzzGen) value(sb *strings.Builder, depth int) {
	k := g.intn(8)
	if depth <= 0 && k >= 5 {
		k -= 5
	}
	switch k {
	case 0, 1:
		sb.WriteString(fuzzNumbers[g.intn(len(fuzzNumbers))])
	case 2:
		sb.WriteString(fuzzStrings[g.intn(len(fuzzStrings))])
	case 3:
		sb.WriteString([]string{"true", "false"}[g.intn(2)])
	case 4:
		sb.WriteString("null")
	case 5, 6:
		sb.WriteByte('{')
		n := g.intn(4)
		used := map[string]bool{}
		first := true
		for range n {
			key := fuzzKeys[g.intn(len(fuzzKeys))]
			if used[key] {
				continue
			}
			used[key] = true
			if !first {
				sb.WriteByte(',')
			}
			first = false
			b, _ := json.Marshal(key)
			sb.Write(b)
			sb.WriteString(" : ")
			g.value(sb, depth-1)
		}
		sb.WriteByte('}')
	case 7:
		sb.WriteByte('[')
		for i := range g.intn(4) {
			if i > 0 {
				sb.WriteByte(',')
			}
			g.value(sb, depth-1)
		}
		sb.WriteByte(']')
	}
}

func (g *fuzzGen) json(depth int) json.RawMessage {
	var sb strings.Builder
	g.value(&sb, depth)
	return json.RawMessage(sb.String())
}

// predicate is either a random value or a piece of a stored payload, so
// that queries match often enough to be interesting.
func (g *fuzzGen) predicate(payloads []json.RawMessage) json.RawMessage {
	if len(payloads) == 0 || g.intn(3) == 0 {
		return g.json(2)
	}
	v, err := contract.DecodeJSON(payloads[g.intn(len(payloads))])
	if err != nil {
		return g.json(2)
	}
	b, _ := json.Marshal(g.prune(v))
	return b
}

// prune keeps a random subset of an object's keys or an array's elements,
// so the result is a (usually) matching predicate.
func (g *fuzzGen) prune(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := map[string]any{}
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			if g.intn(3) != 0 {
				out[k] = g.prune(x[k])
			}
		}
		return out
	case []any:
		var out []any
		for _, e := range x {
			if g.intn(2) == 0 {
				out = append(out, g.prune(e))
			}
		}
		if out == nil {
			out = []any{}
		}
		return out
	}
	return v
}

func (g *fuzzGen) query(payloads []json.RawMessage, head uint64) contract.EventQuery {
	var q contract.EventQuery
	nf := g.intn(4)
	if nf > 0 || g.intn(2) == 0 {
		q.Filters = []contract.EventFilter{}
	}
	for range nf {
		var f contract.EventFilter
		switch g.intn(4) {
		case 0: // any type
		case 1:
			f.EventTypes = []string{}
		default:
			for range 1 + g.intn(2) {
				f.EventTypes = append(f.EventTypes, fuzzTypes[g.intn(len(fuzzTypes))])
			}
		}
		switch g.intn(4) {
		case 0: // any payload
		case 1:
			f.PayloadPredicates = []json.RawMessage{}
		default:
			for range 1 + g.intn(2) {
				f.PayloadPredicates = append(f.PayloadPredicates, g.predicate(payloads))
			}
		}
		q.Filters = append(q.Filters, f)
	}
	q.MinSequenceNumber = uint64(g.intn(int(head) + 2))
	return q
}

func FuzzQueryMatchesOracle(f *testing.F) {
	seeds := [][]byte{
		{},
		[]byte("\x05\x01\x02\x03\x04\x05\x06\x07\x08\x09"),
		[]byte(strings.Repeat("\x07\x05\x03", 40)),
		[]byte(strings.Repeat("\x06\x06\x01\x02\x00\x07", 50)),
		[]byte("\xff\xfe\xfd\xfc\xfb\xfa\xf9\xf8\xf7\xf6\xf5\xf4\xf3\xf2\xf1\xf0"),
		[]byte(strings.Repeat("abcdefghijklmnopqrstuvwxyz0123456789", 8)),
	}
	for i := range 10 {
		b := make([]byte, 300)
		for j := range b {
			b[j] = byte((j*131 + i*71 + j*j*7) % 251)
		}
		seeds = append(seeds, b)
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		g := &fuzzGen{b: data}
		s, err := boltstore.Open(filepath.Join(t.TempDir(), "fuzz.db"), boltstore.WithNoSync(true), boltstore.WithLogger(quietLogger()))
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		ctx := context.Background()

		var all []contract.EventRecord
		var payloads []json.RawMessage
		for range 1 + g.intn(6) {
			batch := make([]contract.NewEvent, 1+g.intn(6))
			for i := range batch {
				batch[i] = contract.NewEvent{Type: fuzzTypes[g.intn(len(fuzzTypes))], Payload: g.json(3)}
				payloads = append(payloads, batch[i].Payload)
			}
			res, err := s.Append(ctx, batch)
			if err != nil {
				t.Fatalf("append %s: %v", batch, err)
			}
			for i, e := range batch {
				all = append(all, contract.EventRecord{SequenceNumber: res.FirstSequenceNumber + uint64(i), Type: e.Type, Payload: e.Payload})
			}
		}
		head := uint64(len(all))
		for range 1 + g.intn(8) {
			q := g.query(payloads, head)
			var want []uint64
			var version uint64
			for _, e := range all {
				if contract.Matches(q, e) {
					version = e.SequenceNumber
					if e.SequenceNumber > q.MinSequenceNumber {
						want = append(want, e.SequenceNumber)
					}
				}
			}
			res, err := s.Query(ctx, q)
			if err != nil {
				t.Fatalf("query %s: %v", mustJSONf(q), err)
			}
			got := []uint64{}
			for _, e := range res.Events {
				got = append(got, e.SequenceNumber)
			}
			if want == nil {
				want = []uint64{}
			}
			if !slices.Equal(got, want) || res.CurrentContextVersion != version {
				t.Fatalf("query %s:\n got %v version %d\nwant %v version %d\nevents %s",
					mustJSONf(q), got, res.CurrentContextVersion, want, version, mustJSONf(all))
			}
			// The conditional append computes the version over the whole
			// log inside the write transaction: force a conflict to see it.
			// A context no index narrows is refused before it is proposed;
			// Apply still decides it (within its scan budget, which these
			// small logs never reach).
			_, err = s.AppendIf(ctx, []contract.NewEvent{{Type: "Z", Payload: json.RawMessage(`0`)}}, q, version+1)
			if contract.ValidateContext(q, contract.DefaultLimits) != nil {
				if !errors.Is(err, contract.ErrInvalidQuery) {
					t.Fatalf("AppendIf on the unnarrowed context %s: %v, want ErrInvalidQuery", mustJSONf(q), err)
				}
				res, aerr := s.Apply([]command.Entry{{Index: s.Replica().AppliedIndex() + 1, Commands: []command.Command{command.AppendIf{
					Events: []contract.NewEvent{{Type: "Z", Payload: json.RawMessage(`0`)}}, Context: q, Expected: version + 1, OccurredAt: time.Now()}}}})
				if aerr != nil {
					t.Fatal(aerr)
				}
				err = res[0][0].Err
			}
			var ce *contract.ConflictError
			if !errors.As(err, &ce) || ce.Actual != version {
				t.Fatalf("AppendIf on %s with expected %d: %v, want a conflict with actual %d", mustJSONf(q), version+1, err, version)
			}
		}
	})
}

func mustJSONf(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
