package client_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/factstr/factstr-go/contract"
	"github.com/factstr/factstr-go/memstore"
)

// The store's sentinels reach a client caller through the gRPC status and
// back (internal/wire), so errors.Is works as on a local store.
func TestSentinelsCrossTheWire(t *testing.T) {
	store := memstore.New()
	t.Cleanup(func() { _ = store.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c := dialServed(t, store)
	if _, err := c.Append(ctx, []contract.NewEvent{{Type: "A", Payload: []byte(`{}`)}}); err != nil {
		t.Fatal(err)
	}
	nop := func(context.Context, []contract.EventRecord) error { return nil }
	tests := []struct {
		name string
		call func() error
		want error
	}{
		{"StreamTo from past the log", func() error {
			sub, err := c.StreamTo(ctx, contract.EventQuery{MinSequenceNumber: 2}, nop)
			if sub != nil {
				sub.Unsubscribe()
			}
			return err
		}, contract.ErrPositionAhead},
		{"AppendIf on a stale version", func() error {
			_, err := c.AppendIf(ctx, []contract.NewEvent{{Type: "A", Payload: []byte(`{}`)}}, contract.EventQuery{}, 0)
			return err
		}, &contract.ConflictError{}},
		{"Append of nothing", func() error { _, err := c.Append(ctx, nil); return err }, contract.ErrEmptyAppend},
		{"Append of an invalid event", func() error {
			_, err := c.Append(ctx, []contract.NewEvent{{Type: "", Payload: []byte(`{}`)}})
			return err
		}, contract.ErrInvalidEvent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			var ce *contract.ConflictError
			if _, conflict := tt.want.(*contract.ConflictError); conflict {
				if !errors.As(err, &ce) || ce.Expected != 0 || ce.Actual != 1 {
					t.Fatalf("got %v, want a ConflictError{Expected: 0, Actual: 1}", err)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want errors.Is %v", err, tt.want)
			}
		})
	}
}
