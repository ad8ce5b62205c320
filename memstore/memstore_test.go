package memstore_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

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

// A durable stream whose name was reset with force ends, at its next
// acknowledgement, with ErrDurableLeaseLost; the cursor stays where the
// reset put it.
func TestForcedResetEndsHolderWithLeaseLost(t *testing.T) {
	s := memstore.New()
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ev := []contract.NewEvent{{Type: "a", Payload: json.RawMessage(`{}`)}}
	sub, err := s.StreamAllDurable(ctx, "d", func(context.Context, []contract.EventRecord) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if _, err := s.ResetDurable(ctx, "d", contract.StartPosition{Kind: contract.StartEnd}, true); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(ctx, ev); err != nil {
		t.Fatal(err)
	}
	select {
	case <-sub.Done():
	case <-ctx.Done():
		t.Fatal("the stream did not end after its name was reset with force")
	}
	if err := sub.Err(); !errors.Is(err, contract.ErrDurableLeaseLost) {
		t.Fatalf("Err = %v, want contract.ErrDurableLeaseLost", err)
	}
	info, err := s.GetDurable(ctx, "d")
	if err != nil || info.Cursor != 0 || info.Holder != "" {
		t.Fatalf("after the lost lease: %+v, %v; want cursor 0 (the reset's), free", info, err)
	}
}
