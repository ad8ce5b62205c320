package memstore

import (
	"context"
	"fmt"
	"strings"

	"github.com/factstr/factstr-go/contract"
	"github.com/factstr/factstr-go/internal/streams"
)

// Consumer groups: the group's own name is a durable entry carrying the
// group's shape (never held); its partitions and member slots are durable
// entries under the internal names of streams.GroupPartitionName and
// GroupMemberName, taken and released like any durable name.

// EnsureGroup creates group name or checks its shape and query
// (streams.GroupDurables).
func (d *durables) EnsureGroup(_ context.Context, name string, q contract.EventQuery, start contract.StartPosition, spec contract.GroupSpec) (bool, error) {
	key, err := streams.QueryKey(q)
	if err != nil {
		return false, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return false, contract.ErrClosed
	}
	if cur, ok := d.durables[name]; ok {
		switch {
		case cur.group == nil:
			return false, streams.GroupMismatch(name, nil, &spec)
		case *cur.group != spec:
			return false, streams.GroupMismatch(name, cur.group, &spec)
		case cur.queryKey != key:
			return false, streams.QueryMismatch(name, cur.query)
		}
		return false, nil
	}
	cursor, err := streams.StartCursor(start, uint64(len(d.events)))
	if err != nil {
		return false, err
	}
	now := d.now().UTC()
	mk := func() *durable {
		return &durable{query: contract.EventQuery{Filters: q.Filters}, queryKey: key, start: start, cursor: cursor, created: now}
	}
	head := mk()
	head.group = &spec
	d.durables[name] = head
	for p := range spec.Partitions {
		d.durables[streams.GroupPartitionName(name, p)] = mk()
	}
	return true, nil
}

// GroupHolders returns who holds each partition and member slot of group
// name (streams.GroupDurables).
func (d *durables) GroupHolders(_ context.Context, name string) (partitions, members []string, err error) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if d.closed {
		return nil, nil, contract.ErrClosed
	}
	head, ok := d.durables[name]
	if !ok || head.group == nil {
		return nil, nil, fmt.Errorf("%w: consumer group %q", contract.ErrDurableNotFound, name)
	}
	partitions = make([]string, head.group.Partitions)
	for n, e := range d.durables {
		g, kind, idx, ok := streams.SplitGroupName(n)
		switch {
		case !ok || g != name:
		case kind == 'p' && idx < len(partitions):
			partitions[idx] = e.holder
		case kind == 'm':
			for len(members) <= idx {
				members = append(members, "")
			}
			members[idx] = e.holder
		}
	}
	return partitions, members, nil
}

// groupAcquireRefusalLocked refuses to take a group's own name, and a
// partition or member slot of a group that no longer exists.
func (s *Store) groupAcquireRefusalLocked(name string) error {
	if g, _, _, ok := streams.SplitGroupName(name); ok {
		if head, ok := s.durables[g]; !ok || head.group == nil {
			return fmt.Errorf("%w: consumer group %q", contract.ErrDurableNotFound, g)
		}
		return nil
	}
	if cur, ok := s.durables[name]; ok && cur.group != nil {
		return streams.GroupMismatch(name, cur.group, nil)
	}
	return nil
}

// groupEntriesLocked returns the internal names of group name.
func (s *Store) groupEntriesLocked(name string) []string {
	var out []string
	for n := range s.durables {
		if strings.HasPrefix(n, name+"\x00") {
			out = append(out, n)
		}
	}
	return out
}

// groupAdminLocked resets or deletes a whole group (to nil: delete);
// refused while any partition or member is held, unless force.
func (s *Store) groupAdminLocked(name string, to *contract.StartPosition, force bool) error {
	names := s.groupEntriesLocked(name)
	what := "delete"
	if to != nil {
		what = "reset"
	}
	if !force {
		for _, n := range names {
			if h := s.durables[n].holder; h != "" {
				return streams.HeldRefusal(what, name, h+" (a member of the consumer group)")
			}
		}
	}
	if to == nil {
		for _, n := range append(names, name) {
			delete(s.durables, n)
		}
		return nil
	}
	cursor, err := streams.StartCursor(*to, uint64(len(s.events)))
	if err != nil {
		return err
	}
	for _, n := range names {
		e := s.durables[n]
		e.holder = ""
		if _, kind, _, _ := streams.SplitGroupName(n); kind == 'p' {
			e.cursor = cursor
		}
	}
	s.durables[name].cursor = cursor
	return nil
}

// groupInfoLocked completes a group's DurableInfo with its partitions and
// members; its cursor is the lowest partition cursor.
func (s *Store) groupInfoLocked(info *contract.DurableInfo, head *durable) {
	spec := *head.group
	g := &contract.GroupInfo{Spec: spec, Partitions: make([]contract.GroupPartitionInfo, spec.Partitions)}
	first := true
	for p := range g.Partitions {
		e, ok := s.durables[streams.GroupPartitionName(info.Name, p)]
		g.Partitions[p].Index = p
		if !ok {
			continue
		}
		g.Partitions[p] = contract.GroupPartitionInfo{Index: p, Cursor: e.cursor, Lag: contract.DurableLag(info.Head, e.cursor),
			Holder: e.holder, LastAck: e.lastAck}
		if first || e.cursor < info.Cursor {
			info.Cursor, first = e.cursor, false
		}
		if e.lastAck.After(info.LastAck) {
			info.LastAck = e.lastAck
		}
	}
	for k := 0; k < contract.MaxGroupMembers; k++ {
		e, ok := s.durables[streams.GroupMemberName(info.Name, k)]
		if !ok {
			break
		}
		if e.holder != "" {
			g.Members = append(g.Members, e.holder)
		}
	}
	info.Lag = contract.DurableLag(info.Head, info.Cursor)
	info.Group = g
}
