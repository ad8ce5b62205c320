package server_test

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	factstrv1 "github.com/factstr/factstr-go/api/gen/factstr/v1"
	"github.com/factstr/factstr-go/internal/server"
	"github.com/factstr/factstr-go/internal/testgrpc"
	"github.com/factstr/factstr-go/memstore"
)

// serve runs a real gRPC server on loopback with opts and returns a
// connection to it.
func serve(t *testing.T, register func(*grpc.Server), opts ...grpc.ServerOption) *grpc.ClientConn {
	t.Helper()
	return testgrpc.ServeConn(t, register, opts...)
}

func TestSubscriptionCapPerConnection(t *testing.T) {
	const limit = 3
	store := memstore.New()
	defer store.Close()
	register := func(s *grpc.Server) { server.NewEventStore(store, nil).Register(s) }
	conn := serve(t, register, server.ConnLimits{MaxSubscriptionsPerConn: limit}.ServerOptions()...)
	other, err := grpc.NewClient(conn.Target(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// subscribe opens a stream and waits for the server's Subscribed (or
	// the refusal).
	subscribe := func(c *grpc.ClientConn) (context.CancelFunc, error) {
		sctx, scancel := context.WithCancel(ctx)
		st, err := factstrv1.NewEventStoreServiceClient(c).Stream(sctx, &factstrv1.StreamRequest{})
		if err == nil {
			_, err = st.Recv()
		}
		if err != nil {
			scancel()
		}
		return scancel, err
	}
	var open []context.CancelFunc
	for i := range limit {
		c, err := subscribe(conn)
		if err != nil {
			t.Fatalf("subscription %d: %v", i+1, err)
		}
		open = append(open, c)
	}
	if _, err := subscribe(conn); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("subscription past the cap: %v, want ResourceExhausted", err)
	}
	// The cap is per connection: another connection still subscribes.
	c, err := subscribe(other)
	if err != nil {
		t.Fatalf("subscription on another connection: %v", err)
	}
	c()
	// Unary calls on the full connection still work.
	if _, err := factstrv1.NewEventStoreServiceClient(conn).Append(ctx, &factstrv1.AppendRequest{Events: []*factstrv1.Event{{Type: "t", Payload: []byte(`{}`)}}}); err != nil {
		t.Fatalf("append on a connection at its subscription cap: %v", err)
	}
	// A closed subscription frees its slot (once the server has seen the
	// cancel).
	open[0]()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := subscribe(conn)
		if err == nil {
			c()
			break
		}
		if status.Code(err) != codes.ResourceExhausted || time.Now().After(deadline) {
			t.Fatalf("subscription after one closed: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, c := range open[1:] {
		c()
	}
}

type panicky struct {
	healthpb.UnimplementedHealthServer
}

func (panicky) Check(context.Context, *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	panic("boom")
}

func (panicky) Watch(*healthpb.HealthCheckRequest, grpc.ServerStreamingServer[healthpb.HealthCheckResponse]) error {
	var m map[string]int
	m["nil map"]++ // a runtime error, not only an explicit panic
	return nil
}

func TestRecoveryTurnsPanicsIntoInternal(t *testing.T) {
	conn := serve(t, func(s *grpc.Server) { healthpb.RegisterHealthServer(s, panicky{}) }, server.RecoveryInterceptors(nil)...)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	hc := healthpb.NewHealthClient(conn)
	for i := range 2 { // the server survives the first
		if _, err := hc.Check(ctx, &healthpb.HealthCheckRequest{}); status.Code(err) != codes.Internal {
			t.Fatalf("call %d: unary panic answered %v, want Internal", i, err)
		}
	}
	st, err := hc.Watch(ctx, &healthpb.HealthCheckRequest{})
	if err == nil {
		_, err = st.Recv()
	}
	if status.Code(err) != codes.Internal {
		t.Fatalf("stream panic answered %v, want Internal", err)
	}
}
