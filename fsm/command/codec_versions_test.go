package command_test

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/factstr/factstr-go/contract"
	"github.com/factstr/factstr-go/fsm/command"
)

// Entries that need no field of version 2 are written as version 1, so a
// node of an earlier version reads them; those that do round-trip as
// version 2.
func TestCodecVersions(t *testing.T) {
	at := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	q := contract.EventQuery{Filters: []contract.EventFilter{{EventTypes: []string{"A"}}}}
	cases := []struct {
		name    string
		cmds    []command.Command
		version byte
	}{
		{"acquire from the beginning", []command.Command{command.Acquire{Name: "d", Holder: "n1/1", Query: q, OccurredAt: at}}, 1},
		{"advance", []command.Command{command.Advance{Name: "d", Holder: "n1/1", Cursor: 7, OccurredAt: at}}, 1},
		{"acquire at the end", []command.Command{command.Acquire{Name: "d", Holder: "n1/1", Query: q, Start: contract.StartPosition{Kind: contract.StartEnd}}}, 2},
		{"acquire after 5, next to an advance", []command.Command{
			command.Advance{Name: "e", Holder: "n1/2", Cursor: 3},
			command.Acquire{Name: "d", Holder: "n1/1", Query: q, Start: contract.StartPosition{Kind: contract.StartAfterSequence, After: 5}},
		}, 2},
		{"forced reset", []command.Command{command.ResetDurable{Name: "d", To: contract.StartPosition{Kind: contract.StartAfterSequence, After: 2}, Force: true}}, 2},
		{"reset to the beginning", []command.Command{command.ResetDurable{Name: "d"}}, 1},
		{"delete", []command.Command{command.DeleteDurable{Name: "d"}}, 1},
		{"acquire with retry then park", []command.Command{command.Acquire{Name: "d", Holder: "n1/1", Query: q,
			Failure: contract.FailurePolicy{MaxDeliveries: 5, InitialBackoff: 100 * time.Millisecond, MaxBackoff: 5 * time.Second}}}, 3},
		{"acquire at the end with retry then park", []command.Command{command.Acquire{Name: "d", Holder: "n1/1", Query: q,
			Start: contract.StartPosition{Kind: contract.StartEnd}, Failure: contract.FailurePolicy{MaxDeliveries: 1, InitialBackoff: 1, MaxBackoff: 2}}}, 3},
		{"park, next to an advance", []command.Command{
			command.Advance{Name: "e", Holder: "n1/2", Cursor: 3},
			command.Park{Name: "d", Holder: "n1/1", Cursor: 9, Seqs: []uint64{7, 8, 1 << 40}, Attempts: 3, Error: "boom: é", OccurredAt: at},
		}, 3},
		{"unpark", []command.Command{command.Unpark{Name: "d", Holder: "n1/1", Seqs: []uint64{7}}}, 3},
		{"redeliver parked up to 8", []command.Command{command.RedeliverParked{Name: "d", UpTo: 8}}, 1},
		{"drop all parked", []command.Command{command.DropParked{Name: "d"}}, 1},
	}
	for _, c := range cases {
		b := command.Encode(c.cmds)
		if b[0] != c.version {
			t.Errorf("%s: encoded as version %d, want %d", c.name, b[0], c.version)
		}
		got, err := command.Decode(b)
		if err != nil {
			t.Fatalf("%s: decode: %v", c.name, err)
		}
		if !reflect.DeepEqual(got, c.cmds) {
			t.Errorf("%s: decoded %+v, want %+v", c.name, got, c.cmds)
		}
	}
	// An unknown version is refused, not misread.
	b := command.Encode(cases[0].cmds)
	b[0] = 4
	if _, err := command.Decode(b); err == nil {
		t.Error("an entry of version 4 decoded without error")
	}
}

// Created travels with a forwarded acquire's result, in the byte whose
// value 1 alone meant Duplicate before.
func TestResultFlags(t *testing.T) {
	in := []command.Result{{Cursor: 4, Created: true}, {Duplicate: true}, {Cursor: 9}}
	out, err := command.DecodeResults(command.EncodeResults(in))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(out, in) {
		t.Fatalf("results %+v, want %+v", out, in)
	}
	lost, err := command.DecodeResults(command.EncodeResults([]command.Result{{Err: command.ErrNotHeld}}))
	if err != nil || !errors.Is(lost[0].Err, contract.ErrDurableLeaseLost) {
		t.Fatalf("a forwarded lost lease decoded as %v (%v), want contract.ErrDurableLeaseLost", lost[0].Err, err)
	}
}
