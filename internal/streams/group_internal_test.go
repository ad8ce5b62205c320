package streams

import (
	"maps"
	"testing"

	"github.com/factstr/factstr-go/contract"
)

func TestSplitGroupName(t *testing.T) {
	cases := []struct {
		in    string
		group string
		kind  byte
		idx   int
		ok    bool
	}{
		{GroupPartitionName("ledger", 7), "ledger", 'p', 7, true},
		{GroupMemberName("a b", 255), "a b", 'm', 255, true},
		{"ledger", "", 0, 0, false},
		{"ledger\x00x1", "", 0, 0, false},
		{"ledger\x00p", "", 0, 0, false},
		{"ledger\x00p-1", "", 0, 0, false},
	}
	for _, c := range cases {
		g, k, i, ok := SplitGroupName(c.in)
		if g != c.group || k != c.kind || i != c.idx || ok != c.ok {
			t.Errorf("SplitGroupName(%q) = %q %q %d %v, want %q %q %d %v", c.in, g, k, i, ok, c.group, c.kind, c.idx, c.ok)
		}
	}
}

// A group's lag is counted from its lowest partition held here; member
// slots and partitions do not show as names of their own.
func TestGroupPositions(t *testing.T) {
	got := map[string]uint64{
		"plain":                        9,
		GroupPartitionName("g", 0):     12,
		GroupPartitionName("g", 3):     5,
		GroupMemberName("g", 0):        0,
		GroupPartitionName("other", 1): 40,
	}
	groupPositions(got)
	want := map[string]uint64{"plain": 9, "g": 5, "other": 40}
	if !maps.Equal(got, want) {
		t.Errorf("positions %v, want %v", got, want)
	}
}

func TestFilterBatches(t *testing.T) {
	rec := func(seq uint64, acc string) contract.EventRecord {
		return contract.EventRecord{SequenceNumber: seq, Type: "T", Payload: []byte(`{"a":"` + acc + `"}`)}
	}
	batches := [][]contract.EventRecord{{rec(1, "x"), rec(2, "y")}, {rec(3, "y")}, {rec(4, "x")}}
	keep := func(r contract.EventRecord) bool { return string(r.Payload) == `{"a":"x"}` }
	got := filterBatches(batches, keep)
	if len(got) != 2 || len(got[0]) != 1 || got[0][0].SequenceNumber != 1 || got[1][0].SequenceNumber != 4 {
		t.Errorf("filtered %v, want [[1] [4]]", got)
	}
}
