package command_test

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/factstr/factstr-go/contract"
	"github.com/factstr/factstr-go/fsm/command"
)

// TestCodecGolden pins the bytes of a Raft log entry for every command kind
// and every entry version. The hex strings were written by the encoder as
// it was before the command set moved out of boltstore (boltstore.Command,
// one struct for every kind; see the commit that added this test), and
// the commands next to them were then that encoder's input: nodes of
// different versions share the log, so the bytes written for a command
// must never change, and entries written earlier must decode to the same
// commands.
func TestCodecGolden(t *testing.T) {
	at := time.Unix(0, 1_700_000_000_123_456_789).UTC()
	q := contract.EventQuery{Filters: []contract.EventFilter{
		{EventTypes: []string{"A", "B"}},
		{EventTypes: nil, PayloadPredicates: []json.RawMessage{json.RawMessage(`{"k":1}`)}},
		{EventTypes: []string{}, PayloadPredicates: nil},
		{EventTypes: []string{"C"}, PayloadPredicates: []json.RawMessage{}},
	}, MinSequenceNumber: 42}
	evs := []contract.NewEvent{{Type: "A", Payload: json.RawMessage(`{"i":0}`)}, {Type: "Bestellung ✓", Payload: json.RawMessage(`{}`)}}
	fp := contract.FailurePolicy{MaxDeliveries: 5, InitialBackoff: 100 * time.Millisecond, MaxBackoff: 5 * time.Second}
	after5 := contract.StartPosition{Kind: contract.StartAfterSequence, After: 5}
	type C = command.Command
	cases := []struct {
		name string
		hex  string
		cmds []C
	}{
		{"append", "010101020141077b2269223a307d0e42657374656c6c756e6720e29c93027b7d000000aab4aed8c7bfce972f00000000", []C{command.Append{Events: evs, OccurredAt: at}}},
		{"append with key", "010101010141077b2269223a307d000000aab4aed8c7bfce972f056b65792d31000000", []C{command.Append{Events: evs[:1], OccurredAt: at, IdempotencyKey: "key-1"}}},
		{"append before 1970", "010101010141077b2269223a307d000000f1c7afa02500000000", []C{command.Append{Events: evs[:1], OccurredAt: time.Unix(-5, 7).UTC()}}},
		{"append-if", "010102010141077b2269223a307d040301410142000002077b226b223a317d0100020143012a07aab4aed8c7bfce972f016b000000", []C{command.AppendIf{Events: evs[:1], Context: q, Expected: 7, OccurredAt: at, IdempotencyKey: "k"}}},
		{"append-if on an empty context", "010102010141077b2269223a307d000000aab4aed8c7bfce972f026b32000000", []C{command.AppendIf{Events: evs[:1], OccurredAt: at, IdempotencyKey: "k2"}}},
		{"acquire from the beginning", "01010300040301410142000002077b226b223a317d0100020143012a00aab4aed8c7bfce972f00066f7264657273066e312f61626300", []C{command.Acquire{Name: "orders", Holder: "n1/abc", Query: q, OccurredAt: at}}},
		{"acquire at the end", "02010300040301410142000002077b226b223a317d0100020143012a00aab4aed8c7bfce972f00066f7264657273066e312f616263000100", []C{command.Acquire{Name: "orders", Holder: "n1/abc", Query: q, Start: contract.StartPosition{Kind: contract.StartEnd}, OccurredAt: at}}},
		{"acquire after 5", "02010300040301410142000002077b226b223a317d0100020143012a00aab4aed8c7bfce972f00066f7264657273066e312f616263050200", []C{command.Acquire{Name: "orders", Holder: "n1/abc", Query: q, Start: after5, OccurredAt: at}}},
		{"acquire with retry then park", "03010300040301410142000002077b226b223a317d0100020143012a00aab4aed8c7bfce972f00066f7264657273066e312f616263000000058084af5f80c8afa025000000", []C{command.Acquire{Name: "orders", Holder: "n1/abc", Query: q, Failure: fp, OccurredAt: at}}},
		{"acquire after 5 with retry then park", "03010300040301410142000002077b226b223a317d0100020143012a000000066f7264657273066e312f616263050200058084af5f80c8afa025000000", []C{command.Acquire{Name: "orders", Holder: "n1/abc", Query: q, Start: after5, Failure: fp}}},
		{"advance", "01010400000000aab4aed8c7bfce972f00066f7264657273066e312f616263808080808020", []C{command.Advance{Name: "orders", Holder: "n1/abc", Cursor: 1 << 40, OccurredAt: at}}},
		{"advance unstamped", "010104000000000000066f7264657273066e312f61626303", []C{command.Advance{Name: "orders", Holder: "n1/abc", Cursor: 3}}},
		{"release", "010105000000000000066f7264657273066e312f61626300", []C{command.Release{Name: "orders", Holder: "n1/abc"}}},
		{"release-holders", "01010600000000000000036e312f00", []C{command.ReleaseHolders{HolderPrefix: "n1/"}}},
		{"release-holders all", "010106000000000000000000", []C{command.ReleaseHolders{}}},
		{"prune-idempotency", "01010700000000aab4aed8c7bfce972f00000000", []C{command.PruneIdempotency{Before: at}}},
		{"noop", "010108000000000000000000", []C{command.Noop{}}},
		{"set-incarnation", "010109000000000000026e3220303132333435363738396162636465663031323334353637383961626364656600", []C{command.SetIncarnation{Node: "n2", Incarnation: "0123456789abcdef0123456789abcdef"}}},
		{"set-incarnation removed", "01010900000000aab4aed8c7bfce972f00026e32103031323334353637383961626364656600", []C{command.SetIncarnation{Node: "n2", Incarnation: "0123456789abcdef", RemovedAt: at}}},
		{"set-incarnation forgotten", "010109000000000000026e320000", []C{command.SetIncarnation{Node: "n2"}}},
		{"reset to the beginning", "01010a000000000000066f72646572730000", []C{command.ResetDurable{Name: "orders"}}},
		{"reset to the end", "02010a000000000000066f726465727300000100", []C{command.ResetDurable{Name: "orders", To: contract.StartPosition{Kind: contract.StartEnd}}}},
		{"forced reset after 2", "02010a000000000000066f726465727300020201", []C{command.ResetDurable{Name: "orders", To: contract.StartPosition{Kind: contract.StartAfterSequence, After: 2}, Force: true}}},
		{"delete", "01010b000000000000066f72646572730000", []C{command.DeleteDurable{Name: "orders"}}},
		{"forced delete", "02010b000000000000066f726465727300000001", []C{command.DeleteDurable{Name: "orders", Force: true}}},
		{"ensure-group by a field from the beginning", "01012800040301410142000002077b226b223a317d0100020143012a08aab4aed8c7bfce972f0001670e006f726465722e6163636f756e7400", []C{command.EnsureGroup{Name: "g", Query: q, Spec: contract.GroupSpec{Key: contract.KeyField("order.account"), Partitions: 8}, OccurredAt: at}}},
		{"ensure-group by type at the end", "02012800040301410142000002077b226b223a317d0100020143012a01aab4aed8c7bfce972f0001670101000100", []C{command.EnsureGroup{Name: "g", Query: q, Start: contract.StartPosition{Kind: contract.StartEnd}, Spec: contract.GroupSpec{Key: contract.KeyEventType(), Partitions: 1}, OccurredAt: at}}},
		{"ensure-group after 41", "020128000000800200000167020061290200", []C{command.EnsureGroup{Name: "g", Start: contract.StartPosition{Kind: contract.StartAfterSequence, After: 41}, Spec: contract.GroupSpec{Key: contract.KeyField("a"), Partitions: 256}}}},
		{"park", "03010c00000000aab4aed8c7bfce972f00066f7264657273066e312f6162630900000000000307088080808080200308626f6f6d3a20c3a9", []C{command.Park{Name: "orders", Holder: "n1/abc", Seqs: []uint64{7, 8, 1 << 40}, Cursor: 9, Attempts: 3, Error: "boom: é", OccurredAt: at}}},
		{"park keeping the cursor", "03010c000000000000066f7264657273066e312f61626300000000000001070100", []C{command.Park{Name: "orders", Holder: "n1/abc", Seqs: []uint64{7}, Attempts: 1}}},
		{"unpark", "03010d000000000000066f7264657273066e312f6162630000000000000207080000", []C{command.Unpark{Name: "orders", Holder: "n1/abc", Seqs: []uint64{7, 8}}}},
		{"redeliver parked up to 8", "01010e000000000000066f72646572730008", []C{command.RedeliverParked{Name: "orders", UpTo: 8}}},
		{"redeliver all parked", "01010e000000000000066f72646572730000", []C{command.RedeliverParked{Name: "orders"}}},
		{"drop parked up to 8", "01010f000000000000066f72646572730008", []C{command.DropParked{Name: "orders", UpTo: 8}}},
		{"drop all parked", "01010f000000000000066f72646572730000", []C{command.DropParked{Name: "orders"}}},
		{"unknown kind", "0101c8000000000000000000", []C{command.Unknown{Code: 200}}},
		{"empty entry", "0100", []C{}},
		{"version 1 batch", "010301010141077b2269223a307d000000aab4aed8c7bfce972f01610000000400000000aab4aed8c7bfce972f00066f7264657273066e312f6162630308000000000000000000", []C{command.Append{Events: evs[:1], OccurredAt: at, IdempotencyKey: "a"}, command.Advance{Name: "orders", Holder: "n1/abc", Cursor: 3, OccurredAt: at}, command.Noop{}}},
		{"version 2 batch", "0203040000000000000165046e312f320300000300040301410142000002077b226b223a317d0100020143012a00aab4aed8c7bfce972f000164046e312f31050200050000000000000165046e312f32000000", []C{command.Advance{Name: "e", Holder: "n1/2", Cursor: 3}, command.Acquire{Name: "d", Holder: "n1/1", Query: q, Start: after5, OccurredAt: at}, command.Release{Name: "e", Holder: "n1/2"}}},
		{"version 3 batch", "0304040000000000000165046e312f320300000000000000000c00000000aab4aed8c7bfce972f000164046e312f3109000000000001070201780b00000000000001650000000100000000000001020141077b2269223a307d0e42657374656c6c756e6720e29c93027b7d000000aab4aed8c7bfce972f017a0000000000000000000000", []C{command.Advance{Name: "e", Holder: "n1/2", Cursor: 3}, command.Park{Name: "d", Holder: "n1/1", Seqs: []uint64{7}, Cursor: 9, Attempts: 2, Error: "x", OccurredAt: at}, command.DeleteDurable{Name: "e", Force: true}, command.Append{Events: evs, OccurredAt: at, IdempotencyKey: "z"}}},
	}
	seen := map[command.Kind]bool{}
	for _, c := range cases {
		for _, cmd := range c.cmds {
			seen[cmd.Kind()] = true
		}
		want, err := hex.DecodeString(c.hex)
		if err != nil {
			t.Fatal(err)
		}
		if got := command.Encode(c.cmds); !bytes.Equal(got, want) {
			t.Errorf("%s: encoded as\n %x\nwant\n %x", c.name, got, want)
		}
		got, err := command.Decode(want)
		if err != nil {
			t.Fatalf("%s: decode: %v", c.name, err)
		}
		if !reflect.DeepEqual(got, c.cmds) {
			t.Errorf("%s: decoded\n %#v\nwant\n %#v", c.name, got, c.cmds)
		}
	}
	for k := command.Kind(0); k < 255; k++ {
		if k.String() != fmt.Sprintf("op(%d)", k) && !seen[k] {
			t.Errorf("no golden entry for kind %s (%d)", k, k)
		}
	}
}

// The kinds' numbers are the op byte of the log format, and their names
// appear in messages: both are what boltstore.Op had.
func TestKindValues(t *testing.T) {
	want := map[command.Kind]string{1: "append", 2: "append-if", 3: "acquire", 4: "advance", 5: "release",
		6: "release-holders", 7: "prune-idempotency", 8: "noop", 9: "set-incarnation", 10: "reset-durable",
		11: "delete-durable", 12: "park", 13: "unpark", 14: "redeliver-parked", 15: "drop-parked", 40: "ensure-group"}
	cmds := []command.Command{command.Append{}, command.AppendIf{}, command.Acquire{}, command.Advance{}, command.Release{},
		command.ReleaseHolders{}, command.PruneIdempotency{}, command.Noop{}, command.SetIncarnation{}, command.ResetDurable{},
		command.DeleteDurable{}, command.Park{}, command.Unpark{}, command.RedeliverParked{}, command.DropParked{}, command.EnsureGroup{}}
	if len(cmds) != len(want) {
		t.Fatalf("%d command types, %d kinds", len(cmds), len(want))
	}
	for _, c := range cmds {
		k := c.Kind()
		if name, ok := want[k]; !ok || k.String() != name {
			t.Errorf("%T: kind %d %q, want one of the log's kinds", c, k, k)
		}
		delete(want, k)
	}
	if got := (command.Unknown{Code: 200}).Kind().String(); got != "op(200)" {
		t.Errorf("unknown kind 200 is %q", got)
	}
}
