package command_test

import (
	"reflect"
	"testing"
	"time"

	"github.com/factstr/factstr-go/contract"
	"github.com/factstr/factstr-go/fsm/command"
)

// A group's creation carries its shape in fields the entry encoding had
// already (Holder, Expected): it is version 1 unless its start needs
// version 2, and decodes to the same shape.
func TestGroupCommandRoundTrip(t *testing.T) {
	at := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	q := contract.EventQuery{Filters: []contract.EventFilter{{EventTypes: []string{"A"}}}}
	cases := []struct {
		name    string
		start   contract.StartPosition
		spec    contract.GroupSpec
		version byte
	}{
		{"by a field, from the beginning", contract.StartPosition{}, contract.GroupSpec{Key: contract.KeyField("order.account"), Partitions: 8}, 1},
		{"by type, at the end", contract.StartPosition{Kind: contract.StartEnd}, contract.GroupSpec{Key: contract.KeyEventType(), Partitions: 1}, 2},
		{"after 41", contract.StartPosition{Kind: contract.StartAfterSequence, After: 41}, contract.GroupSpec{Key: contract.KeyField("a"), Partitions: 256}, 2},
	}
	for _, c := range cases {
		cmd := command.EnsureGroup{Name: "g", Query: q, Start: c.start, Spec: c.spec, OccurredAt: at}
		b := command.Encode([]command.Command{cmd})
		if b[0] != c.version {
			t.Errorf("%s: encoded as version %d, want %d", c.name, b[0], c.version)
		}
		got, err := command.Decode(b)
		if err != nil {
			t.Fatalf("%s: decode: %v", c.name, err)
		}
		if !reflect.DeepEqual(got[0], cmd) {
			t.Errorf("%s: decoded %+v, want %+v", c.name, got[0], cmd)
		}
	}
}
