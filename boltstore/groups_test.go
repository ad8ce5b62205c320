package boltstore_test

import (
	"errors"
	"testing"

	"github.com/factstr/factstr-go/boltstore"
	"github.com/factstr/factstr-go/contract"
	"github.com/factstr/factstr-go/fsm/command"
	"github.com/factstr/factstr-go/internal/streams"
)

// The group commands as a replica applies them: the group is created with
// every partition at one cursor, its own name is refused to a plain
// acquire, a partition of a group that does not exist is not created by
// an acquire, and the group survives a reopen of the file.
func TestApplyGroupCommands(t *testing.T) {
	s, path := openStore(t, boltstore.WithReplicated())
	spec := contract.GroupSpec{Key: contract.KeyField("account"), Partitions: 3}
	q := typeQ("A")
	idx := uint64(0)
	apply := func(cmds ...command.Command) []command.Result {
		t.Helper()
		idx++
		res, err := s.Apply([]command.Entry{{Index: idx, Commands: cmds}})
		if err != nil {
			t.Fatalf("apply: %v", err)
		}
		return res[0]
	}
	apply(command.Append{Events: []contract.NewEvent{ev("A", `{"account":"x"}`), ev("A", `{}`)}, OccurredAt: epoch})
	res := apply(command.EnsureGroup{Name: "g", Query: q, Start: contract.StartPosition{Kind: contract.StartEnd}, Spec: spec, OccurredAt: epoch})
	if res[0].Err != nil || !res[0].Created || res[0].Cursor != 2 {
		t.Fatalf("create a group at the end: %+v, want created at cursor 2", res[0])
	}
	cases := []struct {
		name string
		cmd  command.Command
		want error
	}{
		{"the same group again", command.EnsureGroup{Name: "g", Query: q, Start: contract.StartPosition{}, Spec: spec, OccurredAt: epoch}, nil},
		{"another partition count", command.EnsureGroup{Name: "g", Query: q, Start: contract.StartPosition{}, Spec: contract.GroupSpec{Key: spec.Key, Partitions: 4}, OccurredAt: epoch}, contract.ErrDurableQueryMismatch},
		{"another query", command.EnsureGroup{Name: "g", Query: typeQ("B"), Start: contract.StartPosition{}, Spec: spec, OccurredAt: epoch}, contract.ErrDurableQueryMismatch},
		{"a bad shape", command.EnsureGroup{Name: "h", Query: q, Start: contract.StartPosition{}, Spec: contract.GroupSpec{Key: spec.Key, Partitions: 0}, OccurredAt: epoch}, contract.ErrInvalidQuery},
		{"a plain acquire of the group's name", command.Acquire{Name: "g", Holder: "n1/1", Query: q, OccurredAt: epoch}, contract.ErrDurableQueryMismatch},
		{"a partition of a group that does not exist", command.Acquire{Name: streams.GroupPartitionName("nope", 0), Holder: "n1/1", Query: q, OccurredAt: epoch}, contract.ErrDurableNotFound},
		{"a partition of the group", command.Acquire{Name: streams.GroupPartitionName("g", 1), Holder: "n1/1", Query: q, OccurredAt: epoch}, nil},
	}
	for _, c := range cases {
		res := apply(c.cmd)
		if c.want == nil && res[0].Err != nil || c.want != nil && !errors.Is(res[0].Err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, res[0].Err, c.want)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = reopen(t, path, boltstore.WithReplicated())
	parts, members, err := s.Replica().GroupHolders("g")
	if err != nil {
		t.Fatal(err)
	}
	if len(parts) != 3 || parts[1] != "n1/1" || parts[0] != "" || len(members) != 0 {
		t.Errorf("after a reopen the group's partitions are held by %q, members %q; want partition 1 by n1/1", parts, members)
	}
	infos, err := s.Replica().DurableInfos("")
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != 1 || infos[0].Group == nil || infos[0].Cursor != 2 || infos[0].Group.Spec != spec {
		t.Fatalf("DurableInfos: %+v, want the group g alone, at cursor 2", infos)
	}
}
