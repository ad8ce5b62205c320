package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	factstrv1 "github.com/factstr/factstr-go/api/gen/factstr/v1"
	"github.com/factstr/factstr-go/client"
	"github.com/factstr/factstr-go/contract"
	"github.com/factstr/factstr-go/internal/server"
	"github.com/factstr/factstr-go/internal/testgrpc"
	"github.com/factstr/factstr-go/memstore"
)

// serve starts an EventStoreService over a memstore on a loopback socket.
func serve(t *testing.T, svc factstrv1.EventStoreServiceServer) string {
	t.Helper()
	return testgrpc.Serve(t, func(srv *grpc.Server) { factstrv1.RegisterEventStoreServiceServer(srv, svc) })
}

// unaryOnly is a node of an earlier version: no Writes.
type unaryOnly struct{ *server.EventStore }

func (unaryOnly) Writes(grpc.BidiStreamingServer[factstrv1.WritesRequest, factstrv1.WritesResponse]) error {
	return status.Error(codes.Unimplemented, "method Writes not implemented")
}

func TestWritesCarryConcurrentCalls(t *testing.T) {
	for _, tc := range []struct {
		name string
		svc  func(*server.EventStore) factstrv1.EventStoreServiceServer
	}{
		{"writes stream", func(s *server.EventStore) factstrv1.EventStoreServiceServer { return s }},
		{"unary fallback", func(s *server.EventStore) factstrv1.EventStoreServiceServer { return unaryOnly{s} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store := memstore.New()
			addr := serve(t, tc.svc(server.NewEventStore(store, nil)))
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			c, err := client.Dial(ctx, []string{addr})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()

			const callers, each = 16, 20
			var (
				mu   sync.Mutex
				seen = map[uint64]bool{}
				wg   sync.WaitGroup
			)
			for range callers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range each {
						r, err := c.Append(ctx, []contract.NewEvent{{Type: "tick", Payload: json.RawMessage(`{"n":1}`)}})
						if err != nil {
							t.Error(err)
							return
						}
						mu.Lock()
						if seen[r.FirstSequenceNumber] {
							t.Errorf("sequence %d answered twice", r.FirstSequenceNumber)
						}
						seen[r.FirstSequenceNumber] = true
						mu.Unlock()
					}
				}()
			}
			wg.Wait()
			if len(seen) != callers*each {
				t.Fatalf("%d distinct answers, want %d", len(seen), callers*each)
			}
			res, err := store.Query(ctx, contract.EventQuery{})
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Events) != callers*each {
				t.Fatalf("store holds %d events, want %d: a call was appended twice or lost", len(res.Events), callers*each)
			}

			// A conflict keeps its versions and an invalid event its
			// sentinel, as from the unary calls.
			q := contract.EventQuery{Filters: []contract.EventFilter{{EventTypes: []string{"tick"}}}}
			_, err = c.AppendIf(ctx, []contract.NewEvent{{Type: "tick", Payload: json.RawMessage(`{}`)}}, q, 1)
			var conflict *contract.ConflictError
			if !errors.As(err, &conflict) || conflict.Expected != 1 || conflict.Actual != callers*each {
				t.Fatalf("AppendIf: %v, want a conflict expected 1 actual %d", err, callers*each)
			}
			if _, err := c.Append(ctx, []contract.NewEvent{{Type: "tick", Payload: json.RawMessage(`{`)}}); !errors.Is(err, contract.ErrInvalidEvent) {
				t.Fatalf("Append of invalid JSON: %v, want ErrInvalidEvent", err)
			}
		})
	}
}
