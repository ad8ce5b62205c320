package wire

import (
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	factstrv1 "github.com/factstr/factstr-go/api/gen/factstr/v1"
	"github.com/factstr/factstr-go/contract"
)

// FailureToProto converts a failure policy (nil for stop, so a node of an
// earlier version sees what it knows).
func FailureToProto(p contract.FailurePolicy) *factstrv1.DurableFailurePolicy {
	if !p.Parks() {
		return nil
	}
	return &factstrv1.DurableFailurePolicy{
		MaxDeliveries:    uint32(p.MaxDeliveries),
		InitialBackoffMs: uint64(p.InitialBackoff / time.Millisecond),
		MaxBackoffMs:     uint64(p.MaxBackoff / time.Millisecond),
	}
}

// FailureFromProto converts a failure policy; absent is stop. Values out
// of range are kept as they are, for FailurePolicy.Validate to refuse.
func FailureFromProto(m *factstrv1.DurableFailurePolicy) contract.FailurePolicy {
	if m == nil {
		return contract.FailurePolicy{}
	}
	const maxMs = uint64(contract.MaxFailureBackoff/time.Millisecond) + 1
	return contract.FailurePolicy{
		MaxDeliveries:  int(min(m.GetMaxDeliveries(), contract.MaxFailureDeliveries+1)),
		InitialBackoff: time.Duration(min(m.GetInitialBackoffMs(), maxMs)) * time.Millisecond,
		MaxBackoff:     time.Duration(min(m.GetMaxBackoffMs(), maxMs)) * time.Millisecond,
	}
}

// ParkedToProto converts parked events.
func ParkedToProto(ps []contract.ParkedEvent) []*factstrv1.ParkedEvent {
	out := make([]*factstrv1.ParkedEvent, len(ps))
	for i, p := range ps {
		m := &factstrv1.ParkedEvent{
			Event: RecordsToProto([]contract.EventRecord{p.Event})[0], Attempts: uint32(min(p.Attempts, 1<<31)),
			LastError: p.LastError, Redeliver: p.Redeliver,
		}
		if !p.ParkedAt.IsZero() {
			m.ParkedAt = timestamppb.New(p.ParkedAt)
		}
		out[i] = m
	}
	return out
}

// ParkedFromProto converts parked events back.
func ParkedFromProto(ms []*factstrv1.ParkedEvent) []contract.ParkedEvent {
	out := make([]contract.ParkedEvent, len(ms))
	for i, m := range ms {
		out[i] = contract.ParkedEvent{Attempts: int(m.GetAttempts()), LastError: m.GetLastError(), Redeliver: m.GetRedeliver()}
		if m.GetEvent() != nil {
			out[i].Event = RecordsFromProto([]*factstrv1.EventRecord{m.GetEvent()})[0]
		}
		if m.GetParkedAt() != nil {
			out[i].ParkedAt = m.GetParkedAt().AsTime()
		}
	}
	return out
}

// DeliveryToBatch sets a durable delivery's attempt and redelivery flag on
// the batch that carries it.
func DeliveryToBatch(b *factstrv1.Batch, d contract.Delivery) {
	b.Attempt = uint32(max(d.Attempt, 0))
	b.Redelivery = d.Redelivery
}

// DeliveryFromBatch is the Delivery a batch carries (attempt 1 when a
// server of an earlier version sent none).
func DeliveryFromBatch(b *factstrv1.Batch) contract.Delivery {
	return contract.Delivery{Attempt: int(max(b.GetAttempt(), 1)), Redelivery: b.GetRedelivery()}
}
