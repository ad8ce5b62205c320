package wire

import (
	"context"

	"google.golang.org/grpc/credentials"
)

// TokenCredentials sends token as a bearer token on every call. The client
// uses it for its calls, and nodes use it to call each other's peer service
// when the cluster requires a token. requireTLS refuses to send the token
// over a plaintext connection.
func TokenCredentials(token string, requireTLS bool) credentials.PerRPCCredentials {
	return tokenCreds{token: token, secure: requireTLS}
}

type tokenCreds struct {
	token  string
	secure bool
}

func (t tokenCreds) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + t.token}, nil
}

func (t tokenCreds) RequireTransportSecurity() bool { return t.secure }
