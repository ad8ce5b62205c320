package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// RequestIDHeader is the metadata key of a caller-chosen request id; the
// server makes one up when it is absent and returns it in the header.
const RequestIDHeader = "x-request-id"

// TermFunc reports the node's current Raft term for log lines.
type TermFunc func() uint64

// LoggingInterceptors log every RPC that ends in an error worth an
// operator's attention at Warn (codes that mean a bug or an outage), other
// errors at Info and successes at Debug, each with the node id, the Raft
// term, the method, the request id and the duration.
func LoggingInterceptors(log *slog.Logger, nodeID string, term TermFunc) []grpc.ServerOption {
	logRPC := func(ctx context.Context, method, rid string, start time.Time, err error) {
		code := status.Code(err)
		level := slog.LevelDebug
		switch code {
		case codes.OK, codes.Canceled:
		case codes.Internal, codes.Unknown, codes.DataLoss, codes.Unavailable, codes.DeadlineExceeded:
			level = slog.LevelWarn
		default:
			level = slog.LevelInfo
		}
		if !log.Enabled(ctx, level) {
			return
		}
		attrs := []slog.Attr{
			slog.String("node", nodeID), slog.Uint64("term", term()), slog.String("method", method),
			slog.String("request_id", rid), slog.String("code", code.String()), slog.Duration("took", time.Since(start)),
		}
		if err != nil && code != codes.Canceled {
			attrs = append(attrs, slog.String("error", status.Convert(err).Message()))
		}
		log.LogAttrs(ctx, level, "rpc", attrs...)
	}
	return []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			start := time.Now()
			rid := requestID(ctx)
			_ = grpc.SetHeader(ctx, metadata.Pairs(RequestIDHeader, rid))
			resp, err := h(ctx, req)
			logRPC(ctx, info.FullMethod, rid, start, err)
			return resp, err
		}),
		grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			start := time.Now()
			rid := requestID(ss.Context())
			_ = ss.SetHeader(metadata.Pairs(RequestIDHeader, rid))
			err := h(srv, ss)
			logRPC(ss.Context(), info.FullMethod, rid, start, err)
			return err
		}),
	}
}

func requestID(ctx context.Context) string {
	md, _ := metadata.FromIncomingContext(ctx)
	if v := md.Get(RequestIDHeader); len(v) > 0 && v[0] != "" && len(v[0]) <= 128 {
		return v[0]
	}
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
