package command_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/factstr/factstr-go/contract"
	"github.com/factstr/factstr-go/fsm/command"
)

var at = time.Unix(0, 1_700_000_000_123_456_789).UTC()

func events(types ...string) []contract.NewEvent {
	out := make([]contract.NewEvent, len(types))
	for i, t := range types {
		out[i] = contract.NewEvent{Type: t, Payload: json.RawMessage(fmt.Sprintf(`{"i":%d}`, i))}
	}
	return out
}

var ctxQuery = contract.EventQuery{
	Filters: []contract.EventFilter{
		{EventTypes: []string{"A", "B"}},
		{EventTypes: nil, PayloadPredicates: []json.RawMessage{json.RawMessage(`{"k":1}`)}},
		{EventTypes: []string{}, PayloadPredicates: nil},
		{EventTypes: []string{"C"}, PayloadPredicates: []json.RawMessage{}},
	},
	MinSequenceNumber: 42,
}

// commandCases has one command of every kind the log carries, with the
// fields that kind uses, and one of a kind this version does not know (the
// codec carries it; Apply refuses it).
func commandCases() []struct {
	name string
	cmd  command.Command
} {
	return []struct {
		name string
		cmd  command.Command
	}{
		{"append", command.Append{Events: events("A", "B"), OccurredAt: at}},
		{"append with idempotency key", command.Append{Events: events("A"), OccurredAt: at, IdempotencyKey: "key-1"}},
		{"append-if", command.AppendIf{Events: events("A"), Context: ctxQuery, Expected: 7, OccurredAt: at, IdempotencyKey: "k"}},
		{"append-if on an empty context", command.AppendIf{Events: events("A"), Expected: 0, OccurredAt: at}},
		{"acquire", command.Acquire{Name: "orders", Holder: "n1/abc", Query: ctxQuery}},
		{"advance", command.Advance{Name: "orders", Holder: "n1/abc", Cursor: 1 << 40}},
		{"release", command.Release{Name: "orders", Holder: "n1/abc"}},
		{"release-holders", command.ReleaseHolders{HolderPrefix: "n1/"}},
		{"release-holders all", command.ReleaseHolders{}},
		{"prune-idempotency", command.PruneIdempotency{Before: at}},
		{"noop", command.Noop{}},
		{"set-incarnation", command.SetIncarnation{Node: "n2", Incarnation: "0123456789abcdef0123456789abcdef"}},
		{"set-incarnation removed", command.SetIncarnation{Node: "n2", RemovedAt: at}},
		{"unknown kind", command.Unknown{Code: 200}},
		{"unicode and empty payload object", command.Append{OccurredAt: at,
			Events: []contract.NewEvent{{Type: "Bestellung ✓", Payload: json.RawMessage(`{}`)}}}},
		{"time before 1970", command.Append{Events: events("A"), OccurredAt: time.Unix(-5, 7).UTC()}},
	}
}

func TestCommandsRoundTrip(t *testing.T) {
	for _, tt := range commandCases() {
		t.Run(tt.name, func(t *testing.T) {
			b := command.Encode([]command.Command{tt.cmd})
			got, err := command.Decode(b)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 || !reflect.DeepEqual(got[0], tt.cmd) {
				t.Fatalf("round trip changed the command:\n got %#v\nwant %#v", got, tt.cmd)
			}
		})
	}
}

// One entry carries many commands (the proposer coalesces), and none.
func TestCommandsRoundTripBatch(t *testing.T) {
	var all []command.Command
	for _, tt := range commandCases() {
		all = append(all, tt.cmd)
	}
	for _, cmds := range [][]command.Command{all, {}} {
		got, err := command.Decode(command.Encode(cmds))
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(cmds) || (len(cmds) > 0 && !reflect.DeepEqual(got, cmds)) {
			t.Fatalf("round trip of %d commands gave %d, or changed them", len(cmds), len(got))
		}
	}
}

// nil and empty lists mean different things in an EventFilter (any type
// versus no type), so the codec must keep them apart, in a command's
// context and in a query encoded on its own.
func TestQueryNilVersusEmpty(t *testing.T) {
	tests := []struct {
		name string
		f    contract.EventFilter
	}{
		{"both nil", contract.EventFilter{}},
		{"types empty", contract.EventFilter{EventTypes: []string{}}},
		{"types nil, predicates empty", contract.EventFilter{PayloadPredicates: []json.RawMessage{}}},
		{"both empty", contract.EventFilter{EventTypes: []string{}, PayloadPredicates: []json.RawMessage{}}},
		{"both set", contract.EventFilter{EventTypes: []string{"A"}, PayloadPredicates: []json.RawMessage{json.RawMessage(`{"k":"v"}`)}}},
	}
	probes := []struct {
		typ     string
		payload json.RawMessage
	}{{"A", json.RawMessage(`{"k":"v"}`)}, {"B", json.RawMessage(`{"k":"w"}`)}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := contract.EventQuery{Filters: []contract.EventFilter{tt.f}, MinSequenceNumber: 3}
			check := func(how string, got contract.EventQuery) {
				t.Helper()
				gf := got.Filters[0]
				if (gf.EventTypes == nil) != (tt.f.EventTypes == nil) || (gf.PayloadPredicates == nil) != (tt.f.PayloadPredicates == nil) {
					t.Fatalf("%s: nil-ness changed: got types nil=%v predicates nil=%v, want %v %v", how,
						gf.EventTypes == nil, gf.PayloadPredicates == nil, tt.f.EventTypes == nil, tt.f.PayloadPredicates == nil)
				}
				if !reflect.DeepEqual(got, q) {
					t.Fatalf("%s: got %#v, want %#v", how, got, q)
				}
				want, err := contract.NewMatcher(q)
				if err != nil {
					t.Fatal(err)
				}
				m, err := contract.NewMatcher(got)
				if err != nil {
					t.Fatal(err)
				}
				for _, p := range probes {
					if m.Match(p.typ, p.payload) != want.Match(p.typ, p.payload) {
						t.Errorf("%s: decoded query matches %s %s differently", how, p.typ, p.payload)
					}
				}
			}

			cmds, err := command.Decode(command.Encode([]command.Command{command.AppendIf{Events: events("A"), Context: q, OccurredAt: at}}))
			if err != nil {
				t.Fatal(err)
			}
			check("in an AppendIf context", cmds[0].(command.AppendIf).Context)

			b := command.AppendQuery([]byte("prefix"), q)
			got, rest, err := command.DecodeQuery(append(b[len("prefix"):], "tail"...))
			if err != nil {
				t.Fatal(err)
			}
			if string(rest) != "tail" {
				t.Fatalf("DecodeQuery left %q, want the bytes after the query", rest)
			}
			check("on its own", got)
		})
	}
}

// Every truncation of a valid entry, a wrong version, trailing bytes and
// absurd counts are refused with ErrCorruptEntry, never a panic or a
// half-decoded command.
func TestDecodeCommandsRefusesCorrupt(t *testing.T) {
	var all []command.Command
	for _, tt := range commandCases() {
		all = append(all, tt.cmd)
	}
	valid := command.Encode(all)
	for n := range len(valid) {
		if _, err := command.Decode(valid[:n]); !errors.Is(err, command.ErrCorruptEntry) {
			t.Fatalf("entry truncated to %d of %d bytes: error %v, want ErrCorruptEntry", n, len(valid), err)
		}
	}
	tests := []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"version 0", append([]byte{0}, valid[1:]...)},
		{"version 255", append([]byte{255}, valid[1:]...)},
		{"trailing bytes", append(append([]byte(nil), valid...), 0)},
		{"count larger than the entry", []byte{1, 0xff, 0xff, 0xff, 0xff, 0x0f}},
		{"event count larger than the entry", []byte{1, 1, byte(command.KindAppend), 0xff, 0xff, 0x03}},
		{"string length larger than the entry", []byte{1, 1, byte(command.KindAppend), 1, 0x7f, 'A'}},
		{"unterminated uvarint", []byte{1, 0x80}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmds, err := command.Decode(tt.b)
			if !errors.Is(err, command.ErrCorruptEntry) {
				t.Fatalf("got %d commands and error %v, want ErrCorruptEntry", len(cmds), err)
			}
		})
	}
	// Random damage: refused or decoded, never a panic.
	rng := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		b := append([]byte(nil), valid...)
		for range 1 + rng.IntN(4) {
			b[rng.IntN(len(b))] = byte(rng.UintN(256))
		}
		_, _ = command.Decode(b[:rng.IntN(len(b)+1)])
	}
}

func TestResultsRoundTrip(t *testing.T) {
	other := errors.New("disk on fire")
	tests := []struct {
		name     string
		r        command.Result
		sentinel error // the decoded error must errors.Is this
	}{
		{"append", command.Result{Append: contract.AppendResult{FirstSequenceNumber: 5, LastSequenceNumber: 7, CommittedCount: 3}}, nil},
		{"duplicate", command.Result{Append: contract.AppendResult{FirstSequenceNumber: 1, LastSequenceNumber: 1, CommittedCount: 1}, Duplicate: true}, nil},
		{"cursor", command.Result{Cursor: 1 << 50}, nil},
		{"conflict", command.Result{Err: &contract.ConflictError{Expected: 3, Actual: 9}}, nil},
		{"name in use", command.Result{Err: fmt.Errorf("durable stream %q: %w", "d", contract.ErrDurableNameInUse)}, contract.ErrDurableNameInUse},
		{"query mismatch", command.Result{Err: fmt.Errorf("x: %w", contract.ErrDurableQueryMismatch)}, contract.ErrDurableQueryMismatch},
		{"invalid event", command.Result{Err: fmt.Errorf("x: %w", contract.ErrInvalidEvent)}, contract.ErrInvalidEvent},
		{"invalid query", command.Result{Err: fmt.Errorf("x: %w", contract.ErrInvalidQuery)}, contract.ErrInvalidQuery},
		{"refused from peer", command.Result{Err: fmt.Errorf("op 9: %w", command.ErrRefusedFromPeer)}, command.ErrRefusedFromPeer},
		{"other error", command.Result{Err: other}, nil},
	}
	var all []command.Result
	for _, tt := range tests {
		all = append(all, tt.r)
	}
	got, err := command.DecodeResults(command.EncodeResults(all))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(tests) {
		t.Fatalf("decoded %d results, want %d", len(got), len(tests))
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := got[i]
			if g.Append != tt.r.Append || g.Cursor != tt.r.Cursor || g.Duplicate != tt.r.Duplicate {
				t.Fatalf("got %+v, want %+v", g, tt.r)
			}
			if (g.Err == nil) != (tt.r.Err == nil) {
				t.Fatalf("error %v, want %v", g.Err, tt.r.Err)
			}
			if tt.r.Err == nil {
				return
			}
			if g.Err.Error() != tt.r.Err.Error() {
				t.Errorf("message %q, want %q", g.Err, tt.r.Err)
			}
			var wantC, gotC *contract.ConflictError
			if errors.As(tt.r.Err, &wantC) {
				if !errors.As(g.Err, &gotC) || *gotC != *wantC {
					t.Errorf("conflict %v, want %+v", g.Err, wantC)
				}
			}
			if tt.sentinel != nil && !errors.Is(g.Err, tt.sentinel) {
				t.Errorf("decoded error %v does not unwrap to %v", g.Err, tt.sentinel)
			}
			if tt.sentinel == nil && gotC == nil {
				for _, s := range []error{contract.ErrDurableNameInUse, contract.ErrDurableQueryMismatch, contract.ErrInvalidEvent, contract.ErrInvalidQuery, command.ErrRefusedFromPeer} {
					if errors.Is(g.Err, s) {
						t.Errorf("decoded error %v unwraps to %v, want no sentinel", g.Err, s)
					}
				}
			}
		})
	}
}

func TestDecodeResultsRefusesTruncated(t *testing.T) {
	valid := command.EncodeResults([]command.Result{
		{Append: contract.AppendResult{FirstSequenceNumber: 1, LastSequenceNumber: 300, CommittedCount: 300}},
		{Err: &contract.ConflictError{Expected: 1, Actual: 2}},
		{Err: fmt.Errorf("x: %w", contract.ErrInvalidEvent)},
	})
	for n := range len(valid) {
		if _, err := command.DecodeResults(valid[:n]); !errors.Is(err, command.ErrCorruptEntry) {
			t.Fatalf("results truncated to %d of %d bytes: error %v, want ErrCorruptEntry", n, len(valid), err)
		}
	}
}
