package contract_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/factstr/factstr-go/contract"
)

func TestGroupPartition(t *testing.T) {
	field := contract.GroupSpec{Key: contract.KeyField("account"), Partitions: 8}
	nested := contract.GroupSpec{Key: contract.KeyField("order.customer"), Partitions: 8}
	byType := contract.GroupSpec{Key: contract.KeyEventType(), Partitions: 8}
	rec := func(typ, payload string) contract.EventRecord {
		return contract.EventRecord{Type: typ, Payload: []byte(payload)}
	}
	same := []struct {
		name string
		spec contract.GroupSpec
		a, b contract.EventRecord
	}{
		{"spacing does not matter", field, rec("A", `{"account":"a-1"}`), rec("B", `{ "account" : "a-1", "x": 2 }`)},
		{"object keys in any order", field, rec("A", `{"account":{"x":1,"y":2}}`), rec("A", `{"account":{"y":2,"x":1}}`)},
		{"nested path", nested, rec("A", `{"order":{"customer":"c"}}`), rec("A", `{"order":{"customer":"c","n":1}}`)},
		{"event type", byType, rec("Posted", `{"account":"x"}`), rec("Posted", `{"account":"y"}`)},
	}
	for _, c := range same {
		if pa, pb := c.spec.Partition(c.a), c.spec.Partition(c.b); pa != pb {
			t.Errorf("%s: partitions %d and %d, want the same", c.name, pa, pb)
		}
	}
	zero := []struct {
		name string
		spec contract.GroupSpec
		r    contract.EventRecord
	}{
		{"no such field", field, rec("A", `{"other":"a-1"}`)},
		{"payload not an object", field, rec("A", `[1,2]`)},
		{"path through a scalar", nested, rec("A", `{"order":"c"}`)},
		{"one partition", contract.GroupSpec{Key: contract.KeyField("account"), Partitions: 1}, rec("A", `{"account":"z"}`)},
	}
	for _, c := range zero {
		if p := c.spec.Partition(c.r); p != 0 {
			t.Errorf("%s: partition %d, want 0", c.name, p)
		}
	}
	// The hash is stable (FNV-1a 32 of the canonical JSON): these values
	// are part of the stored state, a change would move keys between
	// partitions of existing groups.
	if p := field.Partition(rec("A", `{"account":"a-1"}`)); p != fnvMod(`"a-1"`, 8) {
		t.Errorf(`partition of "a-1" is %d, want %d`, p, fnvMod(`"a-1"`, 8))
	}
	// Many keys spread over every partition.
	seen := map[int]bool{}
	for i := range 200 {
		seen[field.Partition(rec("A", fmt.Sprintf(`{"account":"acc-%d"}`, i)))] = true
	}
	if len(seen) != 8 {
		t.Errorf("200 keys fell into %d of 8 partitions", len(seen))
	}
}

func fnvMod(s string, n uint32) int {
	h := uint32(2166136261)
	for i := 0; i < len(s); i++ {
		h ^= uint32(s[i])
		h *= 16777619
	}
	return int(h % n)
}

func TestGroupSpecValidate(t *testing.T) {
	cases := []struct {
		in string
		n  int
		ok bool
	}{
		{"account", 8, true},
		{"$type", 1, true},
		{"a.b.c", contract.MaxGroupPartitions, true},
		{"a..b", 8, false},
		{".a", 8, false},
		{"", 8, false},
		{"account", 0, false},
		{"account", contract.MaxGroupPartitions + 1, false},
	}
	for _, c := range cases {
		k, err := contract.ParseGroupKey(c.in)
		if err == nil {
			err = contract.GroupSpec{Key: k, Partitions: c.n}.Validate()
		}
		if (err == nil) != c.ok {
			t.Errorf("key %q, %d partitions: error %v, want ok=%v", c.in, c.n, err, c.ok)
		}
		if err != nil && !errors.Is(err, contract.ErrInvalidQuery) {
			t.Errorf("key %q: error %v is not ErrInvalidQuery", c.in, err)
		}
	}
	if k, _ := contract.ParseGroupKey("$type"); k.String() != "$type" || k.Kind != contract.GroupKeyEventType {
		t.Errorf("$type parsed as %+v", k)
	}
	var o contract.DurableOptions
	contract.Group(contract.KeyField("a"), 0)(&o)
	if o.Group == nil || o.Group.Partitions != contract.DefaultGroupPartitions {
		t.Errorf("Group(key, 0) gave %+v, want %d partitions", o.Group, contract.DefaultGroupPartitions)
	}
}

func TestDurableNameRefusesNUL(t *testing.T) {
	if err := contract.ValidateDurableName("a\x00p1"); !errors.Is(err, contract.ErrInvalidQuery) {
		t.Errorf("a name with a NUL byte: %v, want ErrInvalidQuery", err)
	}
}
