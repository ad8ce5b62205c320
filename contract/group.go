package contract

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"strings"
	"time"
)

// Consumer groups: several subscribers share one durable name. The name's
// events are split into a fixed number of partitions by a key taken from
// each event; each partition is a durable cursor of its own, held by one
// member at a time, so each key's events are handled in order by one
// member while the members together share the work.

const (
	// DefaultGroupPartitions is the partition count of Group(key, 0).
	DefaultGroupPartitions = 8
	// MaxGroupPartitions bounds a group's partitions: each is a cursor and
	// a lease in the replicated state, and the unit of work a member takes.
	MaxGroupPartitions = 256
	// MaxGroupMembers bounds the members of one group at a time (a member
	// beyond it is refused with ErrDurableNameInUse).
	MaxGroupMembers = 256
)

// GroupKeyKind says where a group takes an event's partition key from.
type GroupKeyKind uint8

const (
	// GroupKeyField: a field of the JSON payload, top-level or dotted
	// ("account", "order.customer").
	GroupKeyField GroupKeyKind = iota
	// GroupKeyEventType: the event's type.
	GroupKeyEventType
)

// GroupKey is what decides an event's partition in a consumer group.
type GroupKey struct {
	Kind GroupKeyKind
	Path string // GroupKeyField: the dotted path of the payload field
}

// KeyField partitions by a payload field: "account" or a dotted path
// "order.customer" for a nested one.
func KeyField(path string) GroupKey { return GroupKey{Kind: GroupKeyField, Path: path} }

// KeyEventType partitions by event type.
func KeyEventType() GroupKey { return GroupKey{Kind: GroupKeyEventType} }

// String renders the key as ParseGroupKey reads it: "$type" for the event
// type, else the path.
func (k GroupKey) String() string {
	if k.Kind == GroupKeyEventType {
		return "$type"
	}
	return k.Path
}

// ParseGroupKey reads a key as people write it: "$type" (or "type()") for
// the event type, else a dotted payload path.
func ParseGroupKey(s string) (GroupKey, error) {
	switch s {
	case "$type", "type()":
		return KeyEventType(), nil
	}
	k := KeyField(s)
	return k, k.Validate()
}

// Validate rejects an unknown kind and a malformed path.
func (k GroupKey) Validate() error {
	switch k.Kind {
	case GroupKeyEventType:
		if k.Path != "" {
			return fmt.Errorf("%w: a group key on the event type has no path (got %q)", ErrInvalidQuery, k.Path)
		}
		return nil
	case GroupKeyField:
		if k.Path == "" || len(k.Path) > 256 {
			return fmt.Errorf("%w: a group key path must have 1 to 256 bytes", ErrInvalidQuery)
		}
		for _, seg := range strings.Split(k.Path, ".") {
			if seg == "" {
				return fmt.Errorf("%w: group key path %q has an empty segment", ErrInvalidQuery, k.Path)
			}
		}
		return nil
	}
	return fmt.Errorf("%w: unknown group key kind %d", ErrInvalidQuery, uint8(k.Kind))
}

// GroupSpec is the shape of a consumer group: fixed when the group is
// created, recorded with its name.
type GroupSpec struct {
	Key        GroupKey
	Partitions int
}

func (g GroupSpec) String() string {
	return fmt.Sprintf("group by %s, %d partitions", g.Key, g.Partitions)
}

// Validate checks the key and the partition count (1 to MaxGroupPartitions).
func (g GroupSpec) Validate() error {
	if err := g.Key.Validate(); err != nil {
		return err
	}
	if g.Partitions < 1 || g.Partitions > MaxGroupPartitions {
		return fmt.Errorf("%w: a group has 1 to %d partitions, not %d", ErrInvalidQuery, MaxGroupPartitions, g.Partitions)
	}
	return nil
}

// Partition returns the partition of rec: FNV-1a (32 bit) of the key's
// bytes modulo Partitions. For the event type the bytes are the type; for
// a payload field they are the field's value as canonical JSON (objects
// with sorted keys, no spaces, numbers and strings as written), so
// {"account":"a-1"} and { "account" : "a-1" } go to the same partition.
// An event without the field (or whose payload is not an object along
// the path) goes to partition 0.
func (g GroupSpec) Partition(rec EventRecord) int {
	if g.Partitions <= 1 {
		return 0
	}
	var key []byte
	if g.Key.Kind == GroupKeyEventType {
		key = []byte(rec.Type)
	} else {
		var ok bool
		if key, ok = fieldKey(rec.Payload, g.Key.Path); !ok {
			return 0
		}
	}
	h := fnv.New32a()
	h.Write(key)
	return int(h.Sum32() % uint32(g.Partitions))
}

// fieldKey returns the canonical JSON of the value at path in payload.
func fieldKey(payload []byte, path string) ([]byte, bool) {
	v, err := DecodeJSON(payload)
	if err != nil {
		return nil, false
	}
	for _, seg := range strings.Split(path, ".") {
		obj, ok := v.(map[string]any)
		if !ok {
			return nil, false
		}
		if v, ok = obj[seg]; !ok {
			return nil, false
		}
	}
	b, err := json.Marshal(v) // json.Number keeps a number as written; map keys are sorted
	if err != nil {
		return nil, false
	}
	return b, true
}

// Group makes a durable subscription a member of the consumer group of
// its name: key decides each event's partition, partitions is the
// partition count (0: DefaultGroupPartitions), fixed when the group is
// created. Every member subscribes with the same name, query, key and
// partition count; a name created as a group cannot be subscribed without
// the option, nor a plain durable name with it (ErrDurableQueryMismatch).
func Group(key GroupKey, partitions int) DurableOption {
	if partitions == 0 {
		partitions = DefaultGroupPartitions
	}
	return func(o *DurableOptions) { o.Group = &GroupSpec{Key: key, Partitions: partitions} }
}

// GroupInfo describes a consumer group (DurableInfo.Group).
type GroupInfo struct {
	Spec       GroupSpec
	Partitions []GroupPartitionInfo // by index
	Members    []string             // holders of the live members
}

// GroupPartitionInfo is one partition of a group: its own cursor and lease.
type GroupPartitionInfo struct {
	Index   int
	Cursor  uint64
	Lag     uint64 // Head - Cursor
	Holder  string // the member holding it ("" when free)
	LastAck time.Time
}
