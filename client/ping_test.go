package client

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/factstr/factstr-go/internal/testgrpc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

func TestDialRejectsTargetWithoutPort(t *testing.T) {
	for _, tc := range []struct {
		target string
		ok     bool
	}{
		{"127.0.0.1:7400", true},
		{"[::1]:7400", true},
		{"localhost:7400", true},
		{"dns:///factstr.example:7400", true},
		{"unix:///run/factstr.sock", true},
		{"127.0.0.1", false},
		{"localhost", false},
		{"127.0.0.1:", false},
		{"::1", false},
	} {
		t.Run(tc.target, func(t *testing.T) {
			c, err := Dial(context.Background(), []string{"127.0.0.1:7400", tc.target})
			if tc.ok {
				if err != nil {
					t.Fatalf("Dial(%q): %v", tc.target, err)
				}
				_ = c.Close()
				return
			}
			if err == nil {
				_ = c.Close()
				t.Fatalf("Dial(%q) succeeded; want an error about the missing port", tc.target)
			}
			if !strings.Contains(err.Error(), "host:port") {
				t.Fatalf("Dial(%q): %v; want it to ask for host:port", tc.target, err)
			}
		})
	}
}

// healthServer serves only the gRPC health service on a loopback port.
func healthServer(t *testing.T) string {
	t.Helper()
	return testgrpc.Serve(t, func(s *grpc.Server) { healthpb.RegisterHealthServer(s, health.NewServer()) })
}

// deadAddr is a loopback address where nothing listens.
func deadAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return addr
}

// silentAddr accepts TCP connections and never says a word.
func silentAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { _ = c.Close() })
		}
	}()
	return l.Addr().String()
}

func TestPing(t *testing.T) {
	live, dead, silent := healthServer(t), deadAddr(t), silentAddr(t)
	for _, tc := range []struct {
		name    string
		targets []string
		reasons []string // "" : Ping succeeds
	}{
		{"one live", []string{live}, nil},
		{"first dead, second live", []string{dead, live}, nil},
		{"silent and live", []string{silent, live}, nil},
		{"dead", []string{dead}, []string{"connection refused"}},
		{"dead and silent", []string{dead, silent}, []string{"connection refused", "no answer within"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Dial(context.Background(), tc.targets, WithAttemptTimeout(300*time.Millisecond))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			start := time.Now()
			err = c.Ping(ctx)
			if took := time.Since(start); took > 5*time.Second {
				t.Fatalf("Ping took %v; want it bounded by the attempt timeout", took)
			}
			if tc.reasons == nil {
				if err != nil {
					t.Fatalf("Ping: %v; want nil (a node answers)", err)
				}
				return
			}
			var ue *UnreachableError
			if !errors.As(err, &ue) || !errors.Is(err, ErrNoNodeAnswers) {
				t.Fatalf("Ping: %v (%T); want an *UnreachableError matching ErrNoNodeAnswers", err, err)
			}
			for i, want := range tc.reasons {
				if !strings.Contains(ue.Reasons[i], want) {
					t.Errorf("reason for %s: %q; want it to contain %q", ue.Targets[i], ue.Reasons[i], want)
				}
				if !strings.Contains(err.Error(), tc.targets[i]) {
					t.Errorf("error %q does not name %s", err, tc.targets[i])
				}
			}
		})
	}
}
