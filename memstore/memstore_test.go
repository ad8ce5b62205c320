package memstore_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/factstr/factstr-go/contract"
	"github.com/factstr/factstr-go/memstore"
)

func TestSmoke(t *testing.T) {
	s := memstore.New()
	defer s.Close()
	ctx := context.Background()
	got := make(chan []contract.EventRecord, 4)
	sub, err := s.StreamAll(ctx, func(_ context.Context, b []contract.EventRecord) error { got <- b; return nil })
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	r, err := s.Append(ctx, []contract.NewEvent{{Type: "a", Payload: json.RawMessage(`{"x":1}`)}, {Type: "b", Payload: json.RawMessage(`2`)}})
	if err != nil || r.FirstSequenceNumber != 1 || r.LastSequenceNumber != 2 {
		t.Fatalf("append = %+v, %v", r, err)
	}
	if b := <-got; len(b) != 2 {
		t.Fatalf("batch = %v", b)
	}
	_, err = s.AppendIf(ctx, []contract.NewEvent{{Type: "a", Payload: json.RawMessage(`{}`)}}, contract.EventQuery{Filters: []contract.EventFilter{{EventTypes: []string{"a"}}}}, 0)
	var ce *contract.ConflictError
	if !errors.As(err, &ce) || ce.Actual != 1 {
		t.Fatalf("appendIf err = %v", err)
	}
}
