package client_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/factstr/factstr-go/boltstore"
	"github.com/factstr/factstr-go/client"
	"github.com/factstr/factstr-go/contract"
	"github.com/factstr/factstr-go/internal/server"
)

// TestAppendWithReportsDuplicates: through the API, a retry with the same
// explicit idempotency key returns the first outcome and says it was a
// duplicate; the key of the context is honoured the same way.
func TestAppendWithReportsDuplicates(t *testing.T) {
	store, err := boltstore.Open(filepath.Join(t.TempDir(), "s.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c := dialServed(t, store)
	evs := []contract.NewEvent{{Type: "A", Payload: json.RawMessage(`{}`)}}
	opts := contract.AppendOptions{IdempotencyKey: "order-7"}

	first, err := c.AppendWith(ctx, evs, opts)
	if err != nil || first.Duplicate || first.FirstSequenceNumber != 1 {
		t.Fatalf("first AppendWith = %+v, %v", first, err)
	}
	again, err := c.AppendWith(ctx, evs, opts)
	if err != nil || !again.Duplicate || again.AppendResult != first.AppendResult {
		t.Fatalf("retry = %+v, %v; want %+v marked Duplicate", again, err, first.AppendResult)
	}
	viaCtx, err := c.AppendIfWith(contract.WithIdempotencyKey(ctx, "order-7"), evs, contract.EventQuery{}, 0, contract.AppendOptions{})
	if err != nil || !viaCtx.Duplicate || viaCtx.AppendResult != first.AppendResult {
		t.Fatalf("AppendIfWith with the key in the context = %+v, %v; want the first outcome marked Duplicate", viaCtx, err)
	}
	other, err := c.AppendWith(ctx, evs, contract.AppendOptions{})
	if err != nil || other.Duplicate || other.FirstSequenceNumber != 2 {
		t.Fatalf("AppendWith without a key = %+v, %v; want a new append at 2", other, err)
	}
}

// dialServed serves store's EventStoreService on a loopback socket and
// returns a client of it, closed when the test ends.
func dialServed(t *testing.T, store contract.EventStore) *client.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, []string{serve(t, server.NewEventStore(store, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}
