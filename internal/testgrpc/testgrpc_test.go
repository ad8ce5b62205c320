package testgrpc_test

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/factstr/factstr-go/internal/testgrpc"
)

// TestServeConnAnswersAndStops: the registered service answers over a real
// socket, and once the subtest that started it has ended, the server is
// gone (its connection fails).
func TestServeConnAnswersAndStops(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var addr string
	t.Run("serve", func(t *testing.T) {
		addr = testgrpc.Serve(t, func(s *grpc.Server) { healthpb.RegisterHealthServer(s, health.NewServer()) })
		resp, err := healthpb.NewHealthClient(testgrpc.Dial(t, addr)).Check(ctx, &healthpb.HealthCheckRequest{})
		if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("health check: %v, %v", resp, err)
		}
	})
	_, err := healthpb.NewHealthClient(testgrpc.Dial(t, addr)).Check(ctx, &healthpb.HealthCheckRequest{})
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("after the test ended: %v, want Unavailable", err)
	}
}
