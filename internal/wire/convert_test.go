package wire

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	factstrv1 "github.com/factstr/factstr-go/api/gen/factstr/v1"
	"github.com/factstr/factstr-go/contract"
)

// overTheWire marshals and unmarshals m, as a gRPC call does, so the tests
// see what the other side sees (presence of wrapper messages included).
func overTheWire[T proto.Message](t *testing.T, m T, fresh T) T {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if err := proto.Unmarshal(b, fresh); err != nil {
		t.Fatal(err)
	}
	return fresh
}

func TestQueryRoundTrip(t *testing.T) {
	pred := json.RawMessage(`{"k":1}`)
	tests := []struct {
		name string
		q    contract.EventQuery
	}{
		{"everything", contract.EventQuery{}},
		{"min only", contract.EventQuery{MinSequenceNumber: 9}},
		{"both nil", contract.EventQuery{Filters: []contract.EventFilter{{}}}},
		{"types empty (matches nothing)", contract.EventQuery{Filters: []contract.EventFilter{{EventTypes: []string{}}}}},
		{"predicates empty (matches nothing)", contract.EventQuery{Filters: []contract.EventFilter{{PayloadPredicates: []json.RawMessage{}}}}},
		{"both empty", contract.EventQuery{Filters: []contract.EventFilter{{EventTypes: []string{}, PayloadPredicates: []json.RawMessage{}}}}},
		{"set", contract.EventQuery{MinSequenceNumber: 3, Filters: []contract.EventFilter{
			{EventTypes: []string{"A", "B"}, PayloadPredicates: []json.RawMessage{pred}},
			{EventTypes: nil, PayloadPredicates: []json.RawMessage{pred, json.RawMessage(`{}`)}},
			{EventTypes: []string{"C"}},
		}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := QueryFromProto(overTheWire(t, QueryToProto(tt.q), &factstrv1.EventQuery{}))
			if !reflect.DeepEqual(got, tt.q) {
				t.Fatalf("round trip:\n got %#v\nwant %#v", got, tt.q)
			}
			for i, f := range tt.q.Filters {
				g := got.Filters[i]
				if (g.EventTypes == nil) != (f.EventTypes == nil) || (g.PayloadPredicates == nil) != (f.PayloadPredicates == nil) {
					t.Fatalf("filter %d: nil and empty lists were not kept apart: got %#v, want %#v", i, g, f)
				}
			}
		})
	}
	if got := QueryFromProto(nil); !reflect.DeepEqual(got, contract.EventQuery{}) {
		t.Fatalf("QueryFromProto(nil) = %#v, want the query of every event", got)
	}
}

func TestEventsRoundTrip(t *testing.T) {
	tests := [][]contract.NewEvent{
		{},
		{{Type: "A", Payload: json.RawMessage(`{"a":1}`)}},
		{{Type: "A", Payload: json.RawMessage(`{}`)}, {Type: "Bestellung ✓", Payload: json.RawMessage(`[1,2]`)}},
	}
	for _, evs := range tests {
		msg := overTheWire(t, &factstrv1.AppendRequest{Events: EventsToProto(evs)}, &factstrv1.AppendRequest{})
		got := EventsFromProto(msg.GetEvents())
		if len(got) != len(evs) || (len(evs) > 0 && !reflect.DeepEqual(got, evs)) {
			t.Fatalf("round trip of %v gave %v", evs, got)
		}
	}
}

func TestRecordsRoundTrip(t *testing.T) {
	recs := []contract.EventRecord{
		{SequenceNumber: 1, OccurredAt: time.Unix(1_700_000_000, 123_456_789).UTC(), Type: "A", Payload: json.RawMessage(`{"a":1}`)},
		{SequenceNumber: 1 << 40, OccurredAt: time.Unix(0, 1).UTC(), Type: "B", Payload: json.RawMessage(`{}`)},
	}
	msg := overTheWire(t, &factstrv1.QueryResponse{Events: RecordsToProto(recs)}, &factstrv1.QueryResponse{})
	got := RecordsFromProto(msg.GetEvents())
	if len(got) != len(recs) {
		t.Fatalf("got %d records, want %d", len(got), len(recs))
	}
	for i := range recs {
		g, w := got[i], recs[i]
		if g.SequenceNumber != w.SequenceNumber || !g.OccurredAt.Equal(w.OccurredAt) || g.Type != w.Type || string(g.Payload) != string(w.Payload) {
			t.Errorf("record %d: got %+v, want %+v", i, g, w)
		}
	}
	if got := RecordsFromProto(nil); len(got) != 0 {
		t.Fatalf("RecordsFromProto(nil) = %v", got)
	}
}

func TestReadOptionsRoundTrip(t *testing.T) {
	tests := []contract.ReadOptions{
		{},
		{Consistency: contract.Local},
		{Consistency: contract.Local, MinSequenceNumber: 17},
		{MinSequenceNumber: 5},
	}
	for _, o := range tests {
		got := ReadOptionsFromProto(overTheWire(t, ReadOptionsToProto(o), &factstrv1.ReadOptions{}))
		if got != o {
			t.Errorf("round trip of %+v gave %+v", o, got)
		}
	}
	if got := ReadOptionsFromProto(nil); got != (contract.ReadOptions{}) {
		t.Errorf("absent read options = %+v, want linearizable", got)
	}
}
