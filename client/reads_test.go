package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	factstrv1 "github.com/factstr/factstr-go/api/gen/factstr/v1"
	"github.com/factstr/factstr-go/client"
	"github.com/factstr/factstr-go/contract"
	"github.com/factstr/factstr-go/internal/server"
	"github.com/factstr/factstr-go/memstore"
)

// countingQueries counts the Query calls and Reads streams a node serves.
type countingQueries struct {
	*server.EventStore
	queries, reads atomic.Int64
	noReads        bool // a node of an earlier version
}

func (c *countingQueries) Query(req *factstrv1.QueryRequest, st grpc.ServerStreamingServer[factstrv1.QueryResponse]) error {
	c.queries.Add(1)
	return c.EventStore.Query(req, st)
}

func (c *countingQueries) Reads(st grpc.BidiStreamingServer[factstrv1.ReadsRequest, factstrv1.ReadsResponse]) error {
	if c.noReads {
		return status.Error(codes.Unimplemented, "method Reads not implemented")
	}
	c.reads.Add(1)
	return c.EventStore.Reads(st)
}

// Queries travel over the Reads stream, answered whole; a result too large
// for one answer, and every query to a node without Reads, goes through the
// Query call, with the same result and the same errors.
func TestQueriesOverTheReadsStream(t *testing.T) {
	big := strings.Repeat("x", 400<<10)
	for _, tc := range []struct {
		name               string
		noReads            bool
		wantQueryCallsFrom int64 // Query calls the small queries cause
	}{
		{"reads stream", false, 0},
		{"node without Reads", true, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store := memstore.New()
			svc := &countingQueries{EventStore: server.NewEventStore(store, nil), noReads: tc.noReads}
			addr := serve(t, svc)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			c, err := client.Dial(ctx, []string{addr})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			for i := range 30 {
				ev := contract.NewEvent{Type: "small", Payload: json.RawMessage(fmt.Sprintf(`{"n":%d}`, i%3))}
				if i%10 == 9 {
					ev = contract.NewEvent{Type: "big", Payload: json.RawMessage(`{"pad":"` + big + `"}`)}
				}
				if _, err := c.Append(ctx, []contract.NewEvent{ev}); err != nil {
					t.Fatal(err)
				}
			}
			small := contract.EventQuery{Filters: []contract.EventFilter{{EventTypes: []string{"small"}, PayloadPredicates: []json.RawMessage{json.RawMessage(`{"n":1}`)}}}}
			for range 3 {
				got, err := c.Query(ctx, small)
				want, _ := store.Query(ctx, small)
				if err != nil || len(got.Events) != len(want.Events) || got.CurrentContextVersion != want.CurrentContextVersion ||
					got.LastReturnedSequenceNumber != want.LastReturnedSequenceNumber {
					t.Fatalf("query: %d events, version %d, last %d, %v; want %d, %d, %d",
						len(got.Events), got.CurrentContextVersion, got.LastReturnedSequenceNumber, err,
						len(want.Events), want.CurrentContextVersion, want.LastReturnedSequenceNumber)
				}
			}
			if n := svc.queries.Load(); n != tc.wantQueryCallsFrom {
				t.Fatalf("%d Query calls for three small queries, want %d", n, tc.wantQueryCallsFrom)
			}
			// Three 400 KB events do not fit one answer (1 MiB): the Query call pages them.
			before := svc.queries.Load()
			all, err := c.Query(ctx, contract.EventQuery{})
			if err != nil || len(all.Events) != 30 || string(all.Events[9].Payload) != `{"pad":"`+big+`"}` {
				t.Fatalf("the large query: %d events, %v", len(all.Events), err)
			}
			if svc.queries.Load() != before+1 {
				t.Fatalf("the large query made %d Query calls, want 1", svc.queries.Load()-before)
			}
			// A bad query fails as the Query call fails.
			bad := contract.EventQuery{Filters: []contract.EventFilter{{PayloadPredicates: []json.RawMessage{json.RawMessage(`{`)}}}}
			if _, err := c.Query(ctx, bad); !errors.Is(err, contract.ErrInvalidQuery) {
				t.Fatalf("invalid query: %v, want ErrInvalidQuery", err)
			}
			if !tc.noReads && svc.reads.Load() != 1 {
				t.Fatalf("%d Reads streams, want the one shared stream", svc.reads.Load())
			}
		})
	}
}
