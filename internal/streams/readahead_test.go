package streams

import (
	"testing"

	"github.com/factstr/factstr-go/contract"
)

// The budget holds what the read-ahead holds: a read's cost once held, a
// taken batch until it is delivered, and nothing once it is dropped.
func TestReadAheadBudget(t *testing.T) {
	b1, b2, b3 := records(1), records(2, 3), records(4)
	size := func(bs ...[]contract.EventRecord) int64 {
		n := int64(0)
		for _, b := range bs {
			n += BatchBytes(b)
		}
		return n
	}
	type step struct {
		op        string // hold, take, delivered, drop, reset
		wantSeq   uint64 // take: the first sequence number taken; 0: none
		wantDrop  bool   // take: reports a stall's drop
		wantBytes int64  // drop: what it gave back
		wantHeld  int64  // the budget after the step
	}
	cases := []struct {
		name  string
		steps []step
	}{
		{"delivered in order", []step{
			{op: "hold", wantHeld: size(b1, b2, b3)},
			{op: "take", wantSeq: 1, wantHeld: size(b1, b2, b3)},
			{op: "delivered", wantHeld: size(b2, b3)},
			{op: "take", wantSeq: 2, wantHeld: size(b2, b3)},
			{op: "delivered", wantHeld: size(b3)},
			{op: "take", wantSeq: 4, wantHeld: size(b3)},
			{op: "delivered", wantHeld: 0},
			{op: "take", wantHeld: 0},
		}},
		{"a stall drops what is not taken", []step{
			{op: "hold", wantHeld: size(b1, b2, b3)},
			{op: "take", wantSeq: 1, wantHeld: size(b1, b2, b3)},
			{op: "drop", wantBytes: size(b2, b3), wantHeld: size(b1)},
			{op: "delivered", wantHeld: 0},
			{op: "take", wantDrop: true, wantHeld: 0},
			{op: "take", wantHeld: 0}, // the drop is reported once
		}},
		{"a drop with nothing held", []step{
			{op: "drop", wantBytes: 0, wantHeld: 0},
			{op: "take", wantHeld: 0},
		}},
		{"reset clears a drop", []step{
			{op: "hold", wantHeld: size(b1, b2, b3)},
			{op: "reset", wantHeld: 0},
			{op: "take", wantHeld: 0},
		}},
	}
	const grant = 1 << 20
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			bud := newBudget(0)
			r := &readAhead{budget: bud}
			var taken []contract.EventRecord
			for i, st := range tc.steps {
				switch st.op {
				case "hold":
					bud.add(grant) // what acquire charged for the read
					r.hold([][]contract.EventRecord{b1, b2, b3}, grant)
				case "take":
					b, ok, dropped := r.take()
					var seq uint64
					if ok {
						seq, taken = b[0].SequenceNumber, b
					}
					if seq != st.wantSeq || dropped != st.wantDrop {
						t.Fatalf("step %d: take = batch %d, dropped %v; want %d, %v", i, seq, dropped, st.wantSeq, st.wantDrop)
					}
				case "delivered":
					r.delivered(taken)
				case "drop":
					if got := r.drop(); got != st.wantBytes {
						t.Fatalf("step %d: drop gave back %d bytes, want %d", i, got, st.wantBytes)
					}
				case "reset":
					r.reset()
				}
				if got := bud.held(); got != st.wantHeld {
					t.Fatalf("step %d (%s): budget holds %d, want %d", i, st.op, got, st.wantHeld)
				}
			}
		})
	}
}
