package client_test

import (
	"context"
	"testing"
	"time"

	"github.com/factstr/factstr-go/client"
	"github.com/factstr/factstr-go/contract"
	"github.com/factstr/factstr-go/contract/conformance"
	"github.com/factstr/factstr-go/internal/server"
	"github.com/factstr/factstr-go/memstore"
)

// TestConformanceOverGRPC runs the contract suite through the client, the
// gRPC server and a memstore on a loopback socket: every error the suite
// branches on (ErrClosed, ErrPositionAhead, conflicts, limits, durable
// names) crosses the wire both ways. The cluster version is in e2e.
func TestConformanceOverGRPC(t *testing.T) {
	conformance.Run(t, func(t *testing.T) contract.EventStore {
		store := memstore.New()
		t.Cleanup(func() { _ = store.Close() })
		addr := serve(t, server.NewEventStore(store, nil, nil))
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		c, err := client.Dial(ctx, []string{addr})
		if err != nil {
			t.Fatal(err)
		}
		return c
	})
}
