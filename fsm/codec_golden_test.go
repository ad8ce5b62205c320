package fsm_test

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/factstr/factstr-go/boltstore"
	"github.com/factstr/factstr-go/contract"
	"github.com/factstr/factstr-go/fsm"
	"github.com/factstr/factstr-go/internal/streams"
)

// TestCodecGolden pins the bytes of a Raft log entry for every command kind
// and every entry version. The hex strings were written by the encoder as
// it was before the command set moved out of boltstore: nodes of different
// versions share the log, so the bytes written for a command must never
// change, and entries written earlier must decode to the same commands.
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
	type C = boltstore.Command
	cases := []struct {
		name string
		hex  string
		cmds []C
	}{
		{"append", "010101020141077b2269223a307d0e42657374656c6c756e6720e29c93027b7d000000aab4aed8c7bfce972f00000000", []C{{Op: boltstore.OpAppend, Events: evs, OccurredAt: at}}},
		{"append with key", "010101010141077b2269223a307d000000aab4aed8c7bfce972f056b65792d31000000", []C{{Op: boltstore.OpAppend, Events: evs[:1], OccurredAt: at, IdempotencyKey: "key-1"}}},
		{"append before 1970", "010101010141077b2269223a307d000000f1c7afa02500000000", []C{{Op: boltstore.OpAppend, Events: evs[:1], OccurredAt: time.Unix(-5, 7).UTC()}}},
		{"append-if", "010102010141077b2269223a307d040301410142000002077b226b223a317d0100020143012a07aab4aed8c7bfce972f016b000000", []C{{Op: boltstore.OpAppendIf, Events: evs[:1], Query: q, Expected: 7, OccurredAt: at, IdempotencyKey: "k"}}},
		{"append-if on an empty context", "010102010141077b2269223a307d000000aab4aed8c7bfce972f026b32000000", []C{{Op: boltstore.OpAppendIf, Events: evs[:1], OccurredAt: at, IdempotencyKey: "k2"}}},
		{"acquire from the beginning", "01010300040301410142000002077b226b223a317d0100020143012a00aab4aed8c7bfce972f00066f7264657273066e312f61626300", []C{boltstore.AcquireCommand("orders", q, "n1/abc", contract.DurableOptions{}, at)}},
		{"acquire at the end", "02010300040301410142000002077b226b223a317d0100020143012a00aab4aed8c7bfce972f00066f7264657273066e312f616263000100", []C{boltstore.AcquireCommand("orders", q, "n1/abc", contract.DurableOptions{Start: contract.StartPosition{Kind: contract.StartEnd}}, at)}},
		{"acquire after 5", "02010300040301410142000002077b226b223a317d0100020143012a00aab4aed8c7bfce972f00066f7264657273066e312f616263050200", []C{boltstore.AcquireCommand("orders", q, "n1/abc", contract.DurableOptions{Start: contract.StartPosition{Kind: contract.StartAfterSequence, After: 5}}, at)}},
		{"acquire with retry then park", "03010300040301410142000002077b226b223a317d0100020143012a00aab4aed8c7bfce972f00066f7264657273066e312f616263000000058084af5f80c8afa025000000", []C{boltstore.AcquireCommand("orders", q, "n1/abc", contract.DurableOptions{Failure: fp}, at)}},
		{"acquire after 5 with retry then park", "03010300040301410142000002077b226b223a317d0100020143012a000000066f7264657273066e312f616263050200058084af5f80c8afa025000000", []C{boltstore.AcquireCommand("orders", q, "n1/abc", contract.DurableOptions{Start: contract.StartPosition{Kind: contract.StartAfterSequence, After: 5}, Failure: fp}, time.Time{})}},
		{"advance", "01010400000000aab4aed8c7bfce972f00066f7264657273066e312f616263808080808020", []C{{Op: boltstore.OpAdvance, Name: "orders", Holder: "n1/abc", Cursor: 1 << 40, OccurredAt: at}}},
		{"advance unstamped", "010104000000000000066f7264657273066e312f61626303", []C{{Op: boltstore.OpAdvance, Name: "orders", Holder: "n1/abc", Cursor: 3}}},
		{"release", "010105000000000000066f7264657273066e312f61626300", []C{{Op: boltstore.OpRelease, Name: "orders", Holder: "n1/abc"}}},
		{"release-holders", "01010600000000000000036e312f00", []C{{Op: boltstore.OpReleaseHolders, Holder: "n1/"}}},
		{"release-holders all", "010106000000000000000000", []C{{Op: boltstore.OpReleaseHolders}}},
		{"prune-idempotency", "01010700000000aab4aed8c7bfce972f00000000", []C{{Op: boltstore.OpPruneIdempotency, OccurredAt: at}}},
		{"noop", "010108000000000000000000", []C{{Op: boltstore.OpNoop}}},
		{"set-incarnation", "010109000000000000026e3220303132333435363738396162636465663031323334353637383961626364656600", []C{{Op: boltstore.OpSetIncarnation, Name: "n2", Holder: "0123456789abcdef0123456789abcdef"}}},
		{"set-incarnation removed", "01010900000000aab4aed8c7bfce972f00026e32103031323334353637383961626364656600", []C{{Op: boltstore.OpSetIncarnation, Name: "n2", Holder: "0123456789abcdef", OccurredAt: at}}},
		{"set-incarnation forgotten", "010109000000000000026e320000", []C{{Op: boltstore.OpSetIncarnation, Name: "n2"}}},
		{"reset to the beginning", "01010a000000000000066f72646572730000", []C{boltstore.ResetCommand("orders", contract.StartPosition{}, false)}},
		{"reset to the end", "02010a000000000000066f726465727300000100", []C{boltstore.ResetCommand("orders", contract.StartPosition{Kind: contract.StartEnd}, false)}},
		{"forced reset after 2", "02010a000000000000066f726465727300020201", []C{boltstore.ResetCommand("orders", contract.StartPosition{Kind: contract.StartAfterSequence, After: 2}, true)}},
		{"delete", "01010b000000000000066f72646572730000", []C{{Op: boltstore.OpDeleteDurable, Name: "orders"}}},
		{"forced delete", "02010b000000000000066f726465727300000001", []C{{Op: boltstore.OpDeleteDurable, Name: "orders", Force: true}}},
		{"ensure-group by a field from the beginning", "01012800040301410142000002077b226b223a317d0100020143012a08aab4aed8c7bfce972f0001670e006f726465722e6163636f756e7400", []C{boltstore.GroupCommand("g", q, contract.StartPosition{}, contract.GroupSpec{Key: contract.KeyField("order.account"), Partitions: 8}, at)}},
		{"ensure-group by type at the end", "02012800040301410142000002077b226b223a317d0100020143012a01aab4aed8c7bfce972f0001670101000100", []C{boltstore.GroupCommand("g", q, contract.StartPosition{Kind: contract.StartEnd}, contract.GroupSpec{Key: contract.KeyEventType(), Partitions: 1}, at)}},
		{"ensure-group after 41", "020128000000800200000167020061290200", []C{boltstore.GroupCommand("g", contract.EventQuery{}, contract.StartPosition{Kind: contract.StartAfterSequence, After: 41}, contract.GroupSpec{Key: contract.KeyField("a"), Partitions: 256}, time.Time{})}},
		{"park", "03010c00000000aab4aed8c7bfce972f00066f7264657273066e312f6162630900000000000307088080808080200308626f6f6d3a20c3a9", []C{boltstore.ParkCommand("orders", "n1/abc", streams.Parking{Cursor: 9, Seqs: []uint64{7, 8, 1 << 40}, Attempts: 3, Error: "boom: é"}, at)}},
		{"park keeping the cursor", "03010c000000000000066f7264657273066e312f61626300000000000001070100", []C{boltstore.ParkCommand("orders", "n1/abc", streams.Parking{Seqs: []uint64{7}, Attempts: 1}, time.Time{})}},
		{"unpark", "03010d000000000000066f7264657273066e312f6162630000000000000207080000", []C{{Op: boltstore.OpUnpark, Name: "orders", Holder: "n1/abc", Parked: []uint64{7, 8}}}},
		{"redeliver parked up to 8", "01010e000000000000066f72646572730008", []C{{Op: boltstore.OpRedeliverParked, Name: "orders", Cursor: 8}}},
		{"redeliver all parked", "01010e000000000000066f72646572730000", []C{{Op: boltstore.OpRedeliverParked, Name: "orders"}}},
		{"drop parked up to 8", "01010f000000000000066f72646572730008", []C{{Op: boltstore.OpDropParked, Name: "orders", Cursor: 8}}},
		{"drop all parked", "01010f000000000000066f72646572730000", []C{{Op: boltstore.OpDropParked, Name: "orders"}}},
		{"unknown kind", "0101c8000000000000000000", []C{{Op: boltstore.Op(200)}}},
		{"empty entry", "0100", []C{}},
		{"version 1 batch", "010301010141077b2269223a307d000000aab4aed8c7bfce972f01610000000400000000aab4aed8c7bfce972f00066f7264657273066e312f6162630308000000000000000000", []C{{Op: boltstore.OpAppend, Events: evs[:1], OccurredAt: at, IdempotencyKey: "a"}, {Op: boltstore.OpAdvance, Name: "orders", Holder: "n1/abc", Cursor: 3, OccurredAt: at}, {Op: boltstore.OpNoop}}},
		{"version 2 batch", "0203040000000000000165046e312f320300000300040301410142000002077b226b223a317d0100020143012a00aab4aed8c7bfce972f000164046e312f31050200050000000000000165046e312f32000000", []C{{Op: boltstore.OpAdvance, Name: "e", Holder: "n1/2", Cursor: 3}, boltstore.AcquireCommand("d", q, "n1/1", contract.DurableOptions{Start: contract.StartPosition{Kind: contract.StartAfterSequence, After: 5}}, at), {Op: boltstore.OpRelease, Name: "e", Holder: "n1/2"}}},
		{"version 3 batch", "0304040000000000000165046e312f320300000000000000000c00000000aab4aed8c7bfce972f000164046e312f3109000000000001070201780b00000000000001650000000100000000000001020141077b2269223a307d0e42657374656c6c756e6720e29c93027b7d000000aab4aed8c7bfce972f017a0000000000000000000000", []C{{Op: boltstore.OpAdvance, Name: "e", Holder: "n1/2", Cursor: 3}, boltstore.ParkCommand("d", "n1/1", streams.Parking{Cursor: 9, Seqs: []uint64{7}, Attempts: 2, Error: "x"}, at), {Op: boltstore.OpDeleteDurable, Name: "e", Force: true}, {Op: boltstore.OpAppend, Events: evs, OccurredAt: at, IdempotencyKey: "z"}}},
	}
	for _, c := range cases {
		want, err := hex.DecodeString(c.hex)
		if err != nil {
			t.Fatal(err)
		}
		if got := fsm.EncodeCommands(c.cmds); !bytes.Equal(got, want) {
			t.Errorf("%s: encoded as\n %x\nwant\n %x", c.name, got, want)
		}
		got, err := fsm.DecodeCommands(want)
		if err != nil {
			t.Fatalf("%s: decode: %v", c.name, err)
		}
		if !reflect.DeepEqual(got, c.cmds) {
			t.Errorf("%s: decoded\n %#v\nwant\n %#v", c.name, got, c.cmds)
		}
	}
}
