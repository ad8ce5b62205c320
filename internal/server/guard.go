package server

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"

	factstrv1 "github.com/factstr/factstr-go/api/gen/factstr/v1"
)

// Defaults of ConnLimits.
const (
	// DefaultMaxConcurrentStreams is the HTTP/2 stream limit per client
	// connection: calls beyond it wait in the client for a free stream
	// instead of each costing the server goroutines.
	DefaultMaxConcurrentStreams = 1024
	// DefaultMaxSubscriptionsPerConn is how many Stream and StreamDurable
	// calls one connection may hold open; past it a new one fails with
	// ResourceExhausted.
	DefaultMaxSubscriptionsPerConn = 256
	// DefaultStreamNodeBytes bounds the events all stream subscribers of a
	// node hold read ahead of their clients together.
	DefaultStreamNodeBytes = 256 << 20
	// DefaultStreamStallTimeout is how long a live stream's client may take
	// no delivery before the stream ends with ResourceExhausted.
	DefaultStreamStallTimeout = 30 * time.Second
)

// ConnLimits bounds what one client connection may hold open. Zero fields
// take the defaults above.
type ConnLimits struct {
	MaxConcurrentStreams    uint32
	MaxSubscriptionsPerConn int
}

// subscriptionMethods are the calls that stay open to deliver events.
var subscriptionMethods = map[string]bool{
	factstrv1.EventStoreService_Stream_FullMethodName:        true,
	factstrv1.EventStoreService_StreamDurable_FullMethodName: true,
}

type connKey struct{}

// connStats tags each connection with a counter of its open subscriptions.
type connStats struct{}

func (connStats) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context {
	return context.WithValue(ctx, connKey{}, new(atomic.Int64))
}
func (connStats) HandleConn(context.Context, stats.ConnStats) {}
func (connStats) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context {
	return ctx
}
func (connStats) HandleRPC(context.Context, stats.RPCStats) {}

// ServerOptions returns the gRPC server options that enforce l.
func (l ConnLimits) ServerOptions() []grpc.ServerOption {
	maxStreams, maxSubs := l.MaxConcurrentStreams, l.MaxSubscriptionsPerConn
	if maxStreams == 0 {
		maxStreams = DefaultMaxConcurrentStreams
	}
	if maxSubs <= 0 {
		maxSubs = DefaultMaxSubscriptionsPerConn
	}
	return []grpc.ServerOption{
		grpc.MaxConcurrentStreams(maxStreams),
		grpc.StatsHandler(connStats{}),
		grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			open, ok := ss.Context().Value(connKey{}).(*atomic.Int64)
			if !ok || !subscriptionMethods[info.FullMethod] {
				return h(srv, ss)
			}
			defer open.Add(-1)
			if n := open.Add(1); n > int64(maxSubs) {
				return status.Errorf(codes.ResourceExhausted,
					"this connection already holds %d open subscriptions (the cap per connection, --max-subscriptions-per-conn); close one or open another connection", maxSubs)
			}
			return h(srv, ss)
		}),
	}
}

// RecoveryInterceptors turn a panic in a handler into an Internal status
// and one ERROR line with the stack, so one bad request does not take the
// node and every other caller down. Install them last, closest to the
// handlers, so the other interceptors see the Internal status.
func RecoveryInterceptors(log *slog.Logger) []grpc.ServerOption {
	if log == nil {
		log = slog.Default()
	}
	recovered := func(method string, r any, err *error) {
		log.Error("handler panicked; answered Internal", "method", method, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
		*err = status.Errorf(codes.Internal, "internal error in %s; the node logged it", method)
	}
	return []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (resp any, err error) {
			defer func() {
				if r := recover(); r != nil {
					resp = nil
					recovered(info.FullMethod, r, &err)
				}
			}()
			return h(ctx, req)
		}),
		grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) (err error) {
			defer func() {
				if r := recover(); r != nil {
					recovered(info.FullMethod, r, &err)
				}
			}()
			return h(srv, ss)
		}),
	}
}
