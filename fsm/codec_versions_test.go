package fsm_test

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/factstr/factstr-go/boltstore"
	"github.com/factstr/factstr-go/contract"
	"github.com/factstr/factstr-go/fsm"
)

// Entries that need no field of version 2 are written as version 1, so a
// node of an earlier version reads them; those that do round-trip as
// version 2.
func TestCodecVersions(t *testing.T) {
	at := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	q := contract.EventQuery{Filters: []contract.EventFilter{{EventTypes: []string{"A"}}}}
	cases := []struct {
		name    string
		cmds    []boltstore.Command
		version byte
	}{
		{"acquire from the beginning", []boltstore.Command{{Op: boltstore.OpAcquire, Name: "d", Holder: "n1/1", Query: q, OccurredAt: at}}, 1},
		{"advance", []boltstore.Command{{Op: boltstore.OpAdvance, Name: "d", Holder: "n1/1", Cursor: 7, OccurredAt: at}}, 1},
		{"acquire at the end", []boltstore.Command{{Op: boltstore.OpAcquire, Name: "d", Holder: "n1/1", Query: q, Start: contract.StartEnd}}, 2},
		{"acquire after 5, next to an advance", []boltstore.Command{
			{Op: boltstore.OpAdvance, Name: "e", Holder: "n1/2", Cursor: 3},
			{Op: boltstore.OpAcquire, Name: "d", Holder: "n1/1", Query: q, Start: contract.StartAfterSequence, Cursor: 5},
		}, 2},
		{"forced reset", []boltstore.Command{{Op: boltstore.OpResetDurable, Name: "d", Cursor: 2, Start: contract.StartAfterSequence, Force: true}}, 2},
		{"reset to the beginning", []boltstore.Command{{Op: boltstore.OpResetDurable, Name: "d"}}, 1},
		{"delete", []boltstore.Command{{Op: boltstore.OpDeleteDurable, Name: "d"}}, 1},
		{"acquire with retry then park", []boltstore.Command{{Op: boltstore.OpAcquire, Name: "d", Holder: "n1/1", Query: q,
			Failure: contract.FailurePolicy{MaxDeliveries: 5, InitialBackoff: 100 * time.Millisecond, MaxBackoff: 5 * time.Second}}}, 3},
		{"acquire at the end with retry then park", []boltstore.Command{{Op: boltstore.OpAcquire, Name: "d", Holder: "n1/1", Query: q,
			Start: contract.StartEnd, Failure: contract.FailurePolicy{MaxDeliveries: 1, InitialBackoff: 1, MaxBackoff: 2}}}, 3},
		{"park, next to an advance", []boltstore.Command{
			{Op: boltstore.OpAdvance, Name: "e", Holder: "n1/2", Cursor: 3},
			{Op: boltstore.OpPark, Name: "d", Holder: "n1/1", Cursor: 9, Parked: []uint64{7, 8, 1 << 40}, Attempts: 3, Error: "boom: é", OccurredAt: at},
		}, 3},
		{"unpark", []boltstore.Command{{Op: boltstore.OpUnpark, Name: "d", Holder: "n1/1", Parked: []uint64{7}}}, 3},
		{"redeliver parked up to 8", []boltstore.Command{{Op: boltstore.OpRedeliverParked, Name: "d", Cursor: 8}}, 1},
		{"drop all parked", []boltstore.Command{{Op: boltstore.OpDropParked, Name: "d"}}, 1},
	}
	for _, c := range cases {
		b := fsm.EncodeCommands(c.cmds)
		if b[0] != c.version {
			t.Errorf("%s: encoded as version %d, want %d", c.name, b[0], c.version)
		}
		got, err := fsm.DecodeCommands(b)
		if err != nil {
			t.Fatalf("%s: decode: %v", c.name, err)
		}
		if !reflect.DeepEqual(got, c.cmds) {
			t.Errorf("%s: decoded %+v, want %+v", c.name, got, c.cmds)
		}
	}
	// An unknown version is refused, not misread.
	b := fsm.EncodeCommands(cases[0].cmds)
	b[0] = 4
	if _, err := fsm.DecodeCommands(b); err == nil {
		t.Error("an entry of version 4 decoded without error")
	}
}

// Created travels with a forwarded acquire's result, in the byte whose
// value 1 alone meant Duplicate before.
func TestResultFlags(t *testing.T) {
	in := []boltstore.Result{{Cursor: 4, Created: true}, {Duplicate: true}, {Cursor: 9}}
	out, err := fsm.DecodeResults(fsm.EncodeResults(in))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(out, in) {
		t.Fatalf("results %+v, want %+v", out, in)
	}
	lost, err := fsm.DecodeResults(fsm.EncodeResults([]boltstore.Result{{Err: boltstore.ErrNotHeld}}))
	if err != nil || !errors.Is(lost[0].Err, contract.ErrDurableLeaseLost) {
		t.Fatalf("a forwarded lost lease decoded as %v (%v), want contract.ErrDurableLeaseLost", lost[0].Err, err)
	}
}
