package boltstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	"go.etcd.io/bbolt"

	"github.com/factstr/factstr-go/contract"
	"github.com/factstr/factstr-go/fsm/command"
	"github.com/factstr/factstr-go/internal/streams"
)

// Consumer groups (see internal/streams/group.go). A group NAME is:
//   - its shape in the groups bucket (NAME → group record),
//   - a durable record NAME (its query, start and creation time; never
//     held), so it lists and is refused to plain subscribers,
//   - one durable record per partition and per member slot, under the
//     internal names streams.GroupPartitionName / GroupMemberName, taken,
//     advanced and released with the ordinary durable commands.

// bucketGroups maps a group's name to its group record. Stores written
// before groups existed get it empty when opened; a snapshot may lack it.
var bucketGroups = []byte("groups")

// Group record: version, key kind, uvarint partitions, key path bytes.
func encodeGroup(g contract.GroupSpec) []byte {
	b := []byte{recordVersion, byte(g.Key.Kind)}
	b = binary.AppendUvarint(b, uint64(g.Partitions))
	return append(b, g.Key.Path...)
}

func decodeGroup(v []byte) (contract.GroupSpec, error) {
	if len(v) < 3 || v[0] != recordVersion {
		return contract.GroupSpec{}, errCorrupt
	}
	n, w := binary.Uvarint(v[2:])
	if w <= 0 || n > contract.MaxGroupPartitions {
		return contract.GroupSpec{}, errCorrupt
	}
	return contract.GroupSpec{Key: contract.GroupKey{Kind: contract.GroupKeyKind(v[1]), Path: string(v[2+w:])}, Partitions: int(n)}, nil
}

// specOf is the group shape c asks for, as Apply decides on it: a
// partition count beyond the maximum is one more than it, the way an
// entry decodes (command.Decode), so the embedded store refuses the same
// shapes with the same message as a replica.
func specOf(c *command.EnsureGroup) contract.GroupSpec {
	spec := c.Spec
	spec.Partitions = int(min(uint64(spec.Partitions), contract.MaxGroupPartitions+1))
	return spec
}

// groupApplier applies the consumer-group commands (EnsureGroup, and the
// group side of acquire, reset and delete). It owns the groups bucket: no
// other applier reads or writes a group's spec. It is separate from applier
// the way etcd keeps an applier per request family; the durable records it
// touches for a group's partitions it reaches through the applier it wraps.
type groupApplier struct{ *applier }

func (a groupApplier) groupsBucket() (*bbolt.Bucket, error) {
	return a.tx.CreateBucketIfNotExists(bucketGroups)
}

func (a groupApplier) loadGroup(name string) (contract.GroupSpec, bool, error) {
	b := a.tx.Bucket(bucketGroups)
	if b == nil {
		return contract.GroupSpec{}, false, nil
	}
	v := b.Get([]byte(name))
	if v == nil {
		return contract.GroupSpec{}, false, nil
	}
	g, err := decodeGroup(v)
	if err != nil {
		return g, false, fmt.Errorf("group %q: %w", name, err)
	}
	return g, true, nil
}

// ensureGroup applies EnsureGroup. A new group's partitions all start at
// the cursor its start gives at this entry, the same on every replica.
func (a groupApplier) ensureGroup(c *command.EnsureGroup) (command.Result, error) {
	if err := checkName("consumer group name", c.Name); err != nil {
		return command.Result{Err: err}, nil
	}
	spec := specOf(c)
	if err := spec.Validate(); err != nil {
		return command.Result{Err: err}, nil
	}
	key, err := streams.QueryKey(c.Query)
	if err != nil {
		return command.Result{Err: err}, nil
	}
	stored, isGroup, err := a.loadGroup(c.Name)
	if err != nil {
		return command.Result{}, err
	}
	d, exists, err := a.loadDurable(c.Name)
	if err != nil {
		return command.Result{}, err
	}
	switch {
	case isGroup && stored != spec:
		return command.Result{Err: streams.GroupMismatch(c.Name, &stored, &spec)}, nil
	case exists && !isGroup:
		return command.Result{Err: streams.GroupMismatch(c.Name, nil, &spec)}, nil
	case exists && d.queryKey != key:
		return command.Result{Err: streams.QueryMismatch(c.Name, d.query())}, nil
	case exists:
		return command.Result{Cursor: d.cursor}, nil
	}
	qj, err := json.Marshal(contract.EventQuery{Filters: c.Query.Filters})
	if err != nil {
		return command.Result{Err: fmt.Errorf("%w: %v", contract.ErrInvalidQuery, err)}, nil
	}
	start := command.StartOf(c.Start)
	cursor, err := streams.StartCursor(start, a.r.head)
	if err != nil {
		return command.Result{Err: err}, nil
	}
	d = durableRecord{cursor: cursor, queryKey: key, queryJSON: qj, start: start}
	if !c.OccurredAt.IsZero() {
		d.created = unixNanos(c.OccurredAt)
	}
	groups, err := a.groupsBucket()
	if err != nil {
		return command.Result{}, err
	}
	if err := groups.Put([]byte(c.Name), encodeGroup(spec)); err != nil {
		return command.Result{}, err
	}
	for _, name := range append([]string{c.Name}, partitionNames(c.Name, spec.Partitions)...) {
		if err := a.storeDurable(name, d); err != nil {
			return command.Result{}, err
		}
	}
	return command.Result{Cursor: cursor, Created: true}, nil
}

func partitionNames(name string, n int) []string {
	out := make([]string, n)
	for p := range out {
		out[p] = streams.GroupPartitionName(name, p)
	}
	return out
}

// groupAcquireRefusal refuses an Acquire of a group's own name (it is
// subscribed with the group option, which takes partitions instead), and
// of a partition or member slot of a group that does not exist (it was
// deleted while a member ran: taking it would create it anew).
func (a groupApplier) groupAcquireRefusal(name string) (refused, err error) {
	if group, _, _, ok := streams.SplitGroupName(name); ok {
		_, isGroup, err := a.loadGroup(group)
		if err != nil || isGroup {
			return nil, err
		}
		return fmt.Errorf("%w: consumer group %q", contract.ErrDurableNotFound, group), nil
	}
	spec, isGroup, err := a.loadGroup(name)
	if err != nil || !isGroup {
		return nil, err
	}
	return streams.GroupMismatch(name, &spec, nil), nil
}

// groupMembers returns the internal names of group name (partitions and
// member slots) with their records.
func groupMembers(tx *bbolt.Tx, name string) (names []string, recs []durableRecord, err error) {
	prefix := []byte(name + "\x00")
	cur := tx.Bucket(bucketDurables).Cursor()
	for k, v := cur.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = cur.Next() {
		d, err := decodeDurable(v)
		if err != nil {
			return nil, nil, fmt.Errorf("durable %q: %w", k, err)
		}
		names = append(names, string(k))
		recs = append(recs, d)
	}
	return names, recs, nil
}

// groupAdmin applies a reset (to is where the partitions move) or, with a
// nil to, a delete of a group's name to the whole group: refused while any
// partition or member slot is held unless forced (the members lose their
// leases). handled is false for a plain name.
func (a groupApplier) groupAdmin(name string, force bool, to *contract.StartPosition) (res command.Result, handled bool, err error) {
	_, isGroup, err := a.loadGroup(name)
	if err != nil || !isGroup {
		return command.Result{}, false, err
	}
	names, recs, err := groupMembers(a.tx, name)
	if err != nil {
		return command.Result{}, true, err
	}
	what := "reset"
	if to == nil {
		what = "delete"
	}
	if !force {
		for i, d := range recs {
			if d.holder != "" {
				_, kind, idx, _ := streams.SplitGroupName(names[i])
				part := fmt.Sprintf("partition %d of consumer group", idx)
				if kind == 'm' {
					part = "a member of consumer group"
				}
				return command.Result{Err: streams.HeldRefusal(what, name, d.holder+" ("+part+")")}, true, nil
			}
		}
	}
	if to == nil {
		for _, n := range append(names, name) {
			if err := a.durables.Delete([]byte(n)); err != nil {
				return command.Result{}, true, err
			}
		}
		groups, err := a.groupsBucket()
		if err != nil {
			return command.Result{}, true, err
		}
		return command.Result{}, true, groups.Delete([]byte(name))
	}
	cursor, cerr := streams.StartCursor(command.StartOf(*to), a.r.head)
	if cerr != nil {
		return command.Result{Err: cerr}, true, nil
	}
	for i, n := range names {
		d := recs[i]
		d.holder = ""
		if _, kind, _, _ := streams.SplitGroupName(n); kind == 'p' {
			d.cursor = cursor
		}
		if err := a.storeDurable(n, d); err != nil {
			return command.Result{}, true, err
		}
	}
	head, _, err := a.loadDurable(name)
	if err != nil {
		return command.Result{}, true, err
	}
	head.cursor = cursor
	return command.Result{Cursor: cursor}, true, a.storeDurable(name, head)
}

// groupInfo completes the DurableInfo of group name: its partitions and
// members, its cursor the lowest partition cursor (everything before it is
// handled), its last ack the latest.
func groupInfo(tx *bbolt.Tx, info *contract.DurableInfo) error {
	b := tx.Bucket(bucketGroups)
	if b == nil {
		return nil
	}
	v := b.Get([]byte(info.Name))
	if v == nil {
		return nil
	}
	spec, err := decodeGroup(v)
	if err != nil {
		return fmt.Errorf("group %q: %w", info.Name, err)
	}
	names, recs, err := groupMembers(tx, info.Name)
	if err != nil {
		return err
	}
	g := &contract.GroupInfo{Spec: spec, Partitions: make([]contract.GroupPartitionInfo, spec.Partitions)}
	for i := range g.Partitions {
		g.Partitions[i].Index = i
	}
	first := true
	for i, n := range names {
		_, kind, idx, ok := streams.SplitGroupName(n)
		d := recs[i]
		switch {
		case !ok:
		case kind == 'm' && d.holder != "":
			g.Members = append(g.Members, d.holder)
		case kind == 'p' && idx < spec.Partitions:
			p := &g.Partitions[idx]
			p.Cursor, p.Holder, p.Lag = d.cursor, d.holder, contract.DurableLag(info.Head, d.cursor)
			if d.lastAck != 0 {
				p.LastAck = time.Unix(0, d.lastAck).UTC()
			}
			if first || d.cursor < info.Cursor {
				info.Cursor, first = d.cursor, false
			}
			if p.LastAck.After(info.LastAck) {
				info.LastAck = p.LastAck
			}
		}
	}
	info.Lag = contract.DurableLag(info.Head, info.Cursor)
	info.Holder = ""
	info.Group = g
	return nil
}

// GroupHolders returns the holders of group name's partitions and member
// slots from this store's state (streams.GroupDurables).
func (s *Replica) GroupHolders(name string) (partitions, members []string, err error) {
	if s.closing.Load() {
		return nil, nil, contract.ErrClosed
	}
	err = s.be.view(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketGroups)
		var v []byte
		if b != nil {
			v = b.Get([]byte(name))
		}
		if v == nil {
			return fmt.Errorf("%w: consumer group %q", contract.ErrDurableNotFound, name)
		}
		spec, err := decodeGroup(v)
		if err != nil {
			return err
		}
		partitions = make([]string, spec.Partitions)
		names, recs, err := groupMembers(tx, name)
		if err != nil {
			return err
		}
		for i, n := range names {
			_, kind, idx, ok := streams.SplitGroupName(n)
			switch {
			case !ok:
			case kind == 'p' && idx < len(partitions):
				partitions[idx] = recs[i].holder
			case kind == 'm':
				for len(members) <= idx {
					members = append(members, "")
				}
				members[idx] = recs[i].holder
			}
		}
		return nil
	})
	return partitions, members, err
}

// EnsureGroup creates or checks a group in embedded mode
// (streams.GroupDurables).
func (d *durables) EnsureGroup(_ context.Context, name string, q contract.EventQuery, start contract.StartPosition, spec contract.GroupSpec) (bool, error) {
	res, err := d.gc.submit(command.EnsureGroup{Name: name, Query: q, Start: start, Spec: spec, OccurredAt: d.opts.now().UTC()})
	if err != nil {
		return false, err
	}
	return res.Created, res.Err
}

// GroupHolders reads a group's leases in embedded mode
// (streams.GroupDurables).
func (d *durables) GroupHolders(_ context.Context, name string) ([]string, []string, error) {
	return (*Replica)(d).GroupHolders(name)
}
