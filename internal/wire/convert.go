package wire

import (
	"encoding/json"
	"fmt"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	factstrv1 "github.com/factstr/factstr-go/api/gen/factstr/v1"
	"github.com/factstr/factstr-go/contract"
)

// EventsToProto converts events to append.
func EventsToProto(evs []contract.NewEvent) []*factstrv1.Event {
	out := make([]*factstrv1.Event, len(evs))
	for i, e := range evs {
		out[i] = &factstrv1.Event{Type: e.Type, Payload: e.Payload}
	}
	return out
}

// EventsFromProto converts events to append.
func EventsFromProto(evs []*factstrv1.Event) []contract.NewEvent {
	out := make([]contract.NewEvent, len(evs))
	for i, e := range evs {
		out[i] = contract.NewEvent{Type: e.GetType(), Payload: json.RawMessage(e.GetPayload())}
	}
	return out
}

// RecordsToProto converts committed events.
func RecordsToProto(rs []contract.EventRecord) []*factstrv1.EventRecord {
	out := make([]*factstrv1.EventRecord, len(rs))
	for i, r := range rs {
		out[i] = &factstrv1.EventRecord{
			SequenceNumber: r.SequenceNumber,
			OccurredAt:     timestamppb.New(r.OccurredAt),
			Type:           r.Type,
			Payload:        r.Payload,
		}
	}
	return out
}

// RecordsFromProto converts committed events.
func RecordsFromProto(rs []*factstrv1.EventRecord) []contract.EventRecord {
	out := make([]contract.EventRecord, len(rs))
	for i, r := range rs {
		out[i] = contract.EventRecord{
			SequenceNumber: r.GetSequenceNumber(),
			OccurredAt:     r.GetOccurredAt().AsTime(),
			Type:           r.GetType(),
			Payload:        json.RawMessage(r.GetPayload()),
		}
	}
	return out
}

// QueryToProto keeps nil and empty lists apart: a nil list is an absent
// wrapper, an empty one a present, empty wrapper.
func QueryToProto(q contract.EventQuery) *factstrv1.EventQuery {
	out := &factstrv1.EventQuery{MinSequenceNumber: q.MinSequenceNumber}
	for _, f := range q.Filters {
		pf := &factstrv1.EventFilter{}
		if f.EventTypes != nil {
			pf.EventTypes = &factstrv1.StringList{Values: f.EventTypes}
		}
		if f.PayloadPredicates != nil {
			vals := make([][]byte, len(f.PayloadPredicates))
			for i, p := range f.PayloadPredicates {
				vals[i] = p
			}
			pf.PayloadPredicates = &factstrv1.BytesList{Values: vals}
		}
		out.Filters = append(out.Filters, pf)
	}
	return out
}

// QueryFromProto is the inverse of QueryToProto.
func QueryFromProto(q *factstrv1.EventQuery) contract.EventQuery {
	out := contract.EventQuery{MinSequenceNumber: q.GetMinSequenceNumber()}
	for _, f := range q.GetFilters() {
		var cf contract.EventFilter
		if f.GetEventTypes() != nil {
			cf.EventTypes = append([]string{}, f.GetEventTypes().GetValues()...)
		}
		if f.GetPayloadPredicates() != nil {
			cf.PayloadPredicates = make([]json.RawMessage, 0, len(f.GetPayloadPredicates().GetValues()))
			for _, p := range f.GetPayloadPredicates().GetValues() {
				cf.PayloadPredicates = append(cf.PayloadPredicates, json.RawMessage(p))
			}
		}
		out.Filters = append(out.Filters, cf)
	}
	return out
}

// ReadOptionsToProto converts read options.
func ReadOptionsToProto(o contract.ReadOptions) *factstrv1.ReadOptions {
	c := factstrv1.ReadConsistency_READ_CONSISTENCY_LINEARIZABLE
	if o.Consistency == contract.Local {
		c = factstrv1.ReadConsistency_READ_CONSISTENCY_LOCAL
	}
	return &factstrv1.ReadOptions{Consistency: c, MinSequenceNumber: o.MinSequenceNumber}
}

// ReadOptionsFromProto converts read options; absent means linearizable.
func ReadOptionsFromProto(o *factstrv1.ReadOptions) contract.ReadOptions {
	out := contract.ReadOptions{MinSequenceNumber: o.GetMinSequenceNumber()}
	if o.GetConsistency() == factstrv1.ReadConsistency_READ_CONSISTENCY_LOCAL {
		out.Consistency = contract.Local
	}
	return out
}

// StartToProto converts a durable start position (nil for the default,
// the beginning, so a node of an earlier version sees what it knows).
func StartToProto(p contract.StartPosition) *factstrv1.DurableStart {
	switch p.Kind {
	case contract.StartEnd:
		return &factstrv1.DurableStart{Kind: factstrv1.DurableStartKind_DURABLE_START_KIND_END}
	case contract.StartAfterSequence:
		return &factstrv1.DurableStart{Kind: factstrv1.DurableStartKind_DURABLE_START_KIND_AFTER, After: p.After}
	}
	return nil
}

// StartFromProto converts a durable start position; an unknown kind is
// refused.
func StartFromProto(p *factstrv1.DurableStart) (contract.StartPosition, error) {
	switch p.GetKind() {
	case factstrv1.DurableStartKind_DURABLE_START_KIND_UNSPECIFIED, factstrv1.DurableStartKind_DURABLE_START_KIND_BEGINNING:
		return contract.StartPosition{}, nil
	case factstrv1.DurableStartKind_DURABLE_START_KIND_END:
		return contract.StartPosition{Kind: contract.StartEnd}, nil
	case factstrv1.DurableStartKind_DURABLE_START_KIND_AFTER:
		return contract.StartPosition{Kind: contract.StartAfterSequence, After: p.GetAfter()}, nil
	}
	return contract.StartPosition{}, fmt.Errorf("%w: unknown durable start kind %d", contract.ErrInvalidQuery, p.GetKind())
}

// DurableInfoToProto converts a durable name's description.
func DurableInfoToProto(d contract.DurableInfo) *factstrv1.DurableStream {
	m := &factstrv1.DurableStream{
		Name: d.Name, Query: QueryToProto(d.Query), Start: StartToProto(d.Start), Cursor: d.Cursor,
		Head: d.Head, LagEvents: d.Lag, Holder: d.Holder, Failure: FailureToProto(d.Failure), Parked: d.Parked, Group: groupInfoToProto(d.Group),
		LagSeconds: d.LagTime.Seconds(),
	}
	if !d.Created.IsZero() {
		m.CreatedAt = timestamppb.New(d.Created)
	}
	if !d.LastAck.IsZero() {
		m.LastAckAt = timestamppb.New(d.LastAck)
	}
	return m
}

// DurableInfoFromProto converts a durable name's description back.
func DurableInfoFromProto(m *factstrv1.DurableStream) contract.DurableInfo {
	start, _ := StartFromProto(m.GetStart())
	d := contract.DurableInfo{
		Name: m.GetName(), Query: QueryFromProto(m.GetQuery()), Start: start, Cursor: m.GetCursor(),
		Head: m.GetHead(), Lag: m.GetLagEvents(), Holder: m.GetHolder(), Failure: FailureFromProto(m.GetFailure()),
		Parked: m.GetParked(), Group: groupInfoFromProto(m.GetGroup()),
		LagTime: time.Duration(m.GetLagSeconds() * float64(time.Second)),
	}
	if m.GetCreatedAt() != nil {
		d.Created = m.GetCreatedAt().AsTime()
	}
	if m.GetLastAckAt() != nil {
		d.LastAck = m.GetLastAckAt().AsTime()
	}
	return d
}
