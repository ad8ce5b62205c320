package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
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

// noBatches is a node of an earlier version: Writes, but one request and
// one answer per message, and no header offering more.
type noBatches struct{ *server.EventStore }

func (n noBatches) Writes(stream grpc.BidiStreamingServer[factstrv1.WritesRequest, factstrv1.WritesResponse]) error {
	return n.EventStore.Writes(oldWritesStream{stream})
}

type oldWritesStream struct {
	grpc.BidiStreamingServer[factstrv1.WritesRequest, factstrv1.WritesResponse]
}

func (s oldWritesStream) Context() context.Context {
	md, _ := metadata.FromIncomingContext(s.BidiStreamingServer.Context())
	md = md.Copy()
	md.Delete(server.WritesBatchHeader)
	return metadata.NewIncomingContext(s.BidiStreamingServer.Context(), md)
}

func (oldWritesStream) SendHeader(metadata.MD) error { return nil }

func (s oldWritesStream) Recv() (*factstrv1.WritesRequest, error) {
	m, err := s.BidiStreamingServer.Recv()
	if err == nil && len(m.GetBatch()) > 0 {
		return nil, status.Error(codes.Internal, "a batch sent to a node that did not offer batches")
	}
	return m, err
}

func TestWritesCarryConcurrentCalls(t *testing.T) {
	for _, tc := range []struct {
		name string
		svc  func(*server.EventStore) factstrv1.EventStoreServiceServer
	}{
		{"writes stream", func(s *server.EventStore) factstrv1.EventStoreServiceServer { return s }},
		{"writes stream of an older node", func(s *server.EventStore) factstrv1.EventStoreServiceServer { return noBatches{s} }},
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

// clusterNode is one of three nodes over one shared store that says which
// of them leads, and counts the appends it takes.
type clusterNode struct {
	contract.EventStore
	id      string
	leader  *atomic.Value // string
	appends atomic.Int64
}

func (n *clusterNode) ID() string       { return n.id }
func (n *clusterNode) LeaderID() string { return n.leader.Load().(string) }
func (n *clusterNode) Append(ctx context.Context, events []contract.NewEvent) (contract.AppendResult, error) {
	n.appends.Add(1)
	return n.EventStore.Append(ctx, events)
}

// The client sends writes to the node that leads, learned from the nodes'
// answers, follows a leader change, and with WithWritesToAnyNode goes round
// the nodes instead.
func TestWritesGoToTheLeader(t *testing.T) {
	store := memstore.New()
	var leader atomic.Value
	leader.Store("b")
	nodes := []*clusterNode{{id: "a"}, {id: "b"}, {id: "c"}}
	var addrs []string
	for _, n := range nodes {
		n.EventStore, n.leader = store, &leader
		addrs = append(addrs, serve(t, server.NewEventStore(n, nil)))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	counts := func() []int64 {
		out := make([]int64, len(nodes))
		for i, n := range nodes {
			out[i] = n.appends.Load()
		}
		return out
	}
	appendN := func(c *client.Client, n int) []int64 {
		t.Helper()
		before := counts()
		for range n {
			if _, err := c.Append(ctx, []contract.NewEvent{{Type: "t", Payload: json.RawMessage(`{}`)}}); err != nil {
				t.Fatal(err)
			}
		}
		after := counts()
		for i := range after {
			after[i] -= before[i]
		}
		return after
	}

	c, err := client.Dial(ctx, addrs)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	appendN(c, 3) // at most two answers to find the leader
	if got := appendN(c, 30); got[1] != 30 {
		t.Fatalf("appends per node %v after the leader was found, want all 30 on b", got)
	}
	leader.Store("c")
	appendN(c, 3)
	if got := appendN(c, 30); got[2] != 30 {
		t.Fatalf("appends per node %v after the leader moved to c, want all 30 on c", got)
	}

	anyNode, err := client.Dial(ctx, addrs, client.WithWritesToAnyNode())
	if err != nil {
		t.Fatal(err)
	}
	defer anyNode.Close()
	if got := appendN(anyNode, 30); got[0] != 10 || got[1] != 10 || got[2] != 10 {
		t.Fatalf("appends per node %v with WithWritesToAnyNode, want 10 each", got)
	}
}
