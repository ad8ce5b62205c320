package wire

import (
	"google.golang.org/protobuf/types/known/timestamppb"

	factstrv1 "github.com/factstr/factstr-go/api/gen/factstr/v1"
	"github.com/factstr/factstr-go/contract"
)

// GroupSpecToProto converts a consumer group's shape (nil: not a group).
func GroupSpecToProto(g *contract.GroupSpec) *factstrv1.GroupSpec {
	if g == nil {
		return nil
	}
	return &factstrv1.GroupSpec{Key: g.Key.String(), Partitions: uint32(g.Partitions)}
}

// GroupSpecFromProto converts a consumer group's shape; nil for none. A
// malformed key is refused (ErrInvalidQuery); the partition count is
// checked where the group is created.
func GroupSpecFromProto(m *factstrv1.GroupSpec) (*contract.GroupSpec, error) {
	if m == nil {
		return nil, nil
	}
	k, err := contract.ParseGroupKey(m.GetKey())
	if err != nil {
		return nil, err
	}
	n := int(m.GetPartitions())
	if n == 0 {
		n = contract.DefaultGroupPartitions
	}
	return &contract.GroupSpec{Key: k, Partitions: n}, nil
}

func groupInfoToProto(g *contract.GroupInfo) *factstrv1.GroupInfo {
	if g == nil {
		return nil
	}
	m := &factstrv1.GroupInfo{Spec: GroupSpecToProto(&g.Spec), Members: g.Members}
	for _, p := range g.Partitions {
		pm := &factstrv1.GroupPartition{Index: uint32(p.Index), Cursor: p.Cursor, LagEvents: p.Lag, Holder: p.Holder}
		if !p.LastAck.IsZero() {
			pm.LastAckAt = timestamppb.New(p.LastAck)
		}
		m.Partitions = append(m.Partitions, pm)
	}
	return m
}

func groupInfoFromProto(m *factstrv1.GroupInfo) *contract.GroupInfo {
	if m == nil {
		return nil
	}
	g := &contract.GroupInfo{Members: m.GetMembers()}
	if spec, err := GroupSpecFromProto(m.GetSpec()); err == nil && spec != nil {
		g.Spec = *spec
	}
	for _, p := range m.GetPartitions() {
		pi := contract.GroupPartitionInfo{Index: int(p.GetIndex()), Cursor: p.GetCursor(), Lag: p.GetLagEvents(), Holder: p.GetHolder()}
		if p.GetLastAckAt() != nil {
			pi.LastAck = p.GetLastAckAt().AsTime()
		}
		g.Partitions = append(g.Partitions, pi)
	}
	return g
}
