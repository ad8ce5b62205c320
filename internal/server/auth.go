package server

import (
	"context"
	"crypto/subtle"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// exempt lists methods that never need a token: health checks come from
// kubelets and load balancers. Peer calls are not exempt: nodes send the
// token to each other too (wire.TokenCredentials), because the peer service
// accepts writes.
func exempt(method string) bool {
	return strings.HasPrefix(method, "/grpc.health.v1.Health/") ||
		strings.HasPrefix(method, "/grpc.reflection.")
}

func checkToken(ctx context.Context, want string) error {
	md, _ := metadata.FromIncomingContext(ctx)
	for _, v := range md.Get("authorization") {
		got, ok := strings.CutPrefix(v, "Bearer ")
		if ok && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1 {
			return nil
		}
	}
	return status.Error(codes.Unauthenticated, "missing or wrong bearer token; pass the token the node was started with (factstr-node --token / FACTSTR_TOKEN)")
}

// TokenInterceptors check a bearer token on every client call.
func TokenInterceptors(token string) []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			if !exempt(info.FullMethod) {
				if err := checkToken(ctx, token); err != nil {
					return nil, err
				}
			}
			return h(ctx, req)
		}),
		grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			if !exempt(info.FullMethod) {
				if err := checkToken(ss.Context(), token); err != nil {
					return err
				}
			}
			return h(srv, ss)
		}),
	}
}
