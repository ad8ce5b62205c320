package server

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// Role is what a client token may do. Each role includes the ones below it.
type Role int

// The roles, weakest first.
const (
	RoleReader Role = iota + 1 // queries, streams, durable streams, status
	RoleWriter                 // reader plus Append and AppendIf
	RoleAdmin                  // everything, the Admin service included
)

func (r Role) String() string {
	switch r {
	case RoleReader:
		return "reader"
	case RoleWriter:
		return "writer"
	case RoleAdmin:
		return "admin"
	}
	return fmt.Sprintf("Role(%d)", int(r))
}

// ParseRole parses "reader", "writer" or "admin".
func ParseRole(s string) (Role, error) {
	for _, r := range []Role{RoleReader, RoleWriter, RoleAdmin} {
		if s == r.String() {
			return r, nil
		}
	}
	return 0, fmt.Errorf("role %q: want reader, writer or admin", s)
}

// Credential is one client token and the role it grants.
type Credential struct {
	Name  string `json:"name"`
	Token string `json:"token"`
	Role  string `json:"role"`
}

// ErrAuthFile wraps every problem with an --auth-file.
var ErrAuthFile = errors.New("auth file")

// minTokenLen is the shortest token accepted from an auth file: a token is
// a password that cannot be rate limited per user, so it must be random
// and long (openssl rand -base64 24 gives 32 characters).
const minTokenLen = 16

// LoadAuthFile reads a JSON array of {"name", "token", "role"}. Names and
// tokens must be unique and tokens at least 16 characters.
func LoadAuthFile(path string) ([]Credential, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrAuthFile, err)
	}
	var creds []Credential
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&creds); err != nil {
		return nil, fmt.Errorf("%w %s: want a JSON array of {\"name\", \"token\", \"role\"}: %w", ErrAuthFile, path, err)
	}
	if len(creds) == 0 {
		return nil, fmt.Errorf("%w %s: no entries", ErrAuthFile, path)
	}
	names, tokens := map[string]bool{}, map[string]bool{}
	for i, c := range creds {
		where := fmt.Sprintf("%s: entry %d", path, i)
		switch {
		case c.Name == "":
			return nil, fmt.Errorf("%w %s has no name", ErrAuthFile, where)
		case names[c.Name]:
			return nil, fmt.Errorf("%w %s: name %q appears twice", ErrAuthFile, where, c.Name)
		case len(c.Token) < minTokenLen:
			return nil, fmt.Errorf("%w %s (%s): token shorter than %d characters; make one with: openssl rand -base64 24", ErrAuthFile, where, c.Name, minTokenLen)
		case tokens[c.Token]:
			return nil, fmt.Errorf("%w %s (%s): token used by another entry", ErrAuthFile, where, c.Name)
		}
		if _, err := ParseRole(c.Role); err != nil {
			return nil, fmt.Errorf("%w %s (%s): %w", ErrAuthFile, where, c.Name, err)
		}
		names[c.Name], tokens[c.Token] = true, true
	}
	return creds, nil
}

// Principal is the authenticated caller of a client call.
type Principal struct {
	Name string
	Role Role
}

type principalKey struct{}

// PrincipalFrom returns the caller a token authenticated, if any.
func PrincipalFrom(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}

// PeerIdentityFunc reports whether the connection of a call carries a
// verified node identity of this cluster (see ClusterIdentity).
type PeerIdentityFunc func(ctx context.Context) bool

// ClusterIdentity returns a PeerIdentityFunc accepting callers whose TLS
// client certificate crypto/tls verified and for which signedByCluster
// accepts the verified chains (for example a cluster CA's Signed).
func ClusterIdentity(signedByCluster func(tls.ConnectionState) bool) PeerIdentityFunc {
	return func(ctx context.Context) bool {
		p, ok := peer.FromContext(ctx)
		if !ok || p.AuthInfo == nil {
			return false
		}
		ti, ok := p.AuthInfo.(credentials.TLSInfo)
		if !ok || len(ti.State.VerifiedChains) == 0 {
			return false
		}
		return signedByCluster(ti.State)
	}
}

// AuthConfig says who may call what.
type AuthConfig struct {
	// Tokens, if any, are required on every client call but health checks;
	// each grants its role.
	Tokens []Credential
	// PeerIdentity, if set, must accept the caller of every PeerService
	// method. Nil leaves the peer service unauthenticated, which only a
	// loopback-only or --insecure node may do.
	PeerIdentity PeerIdentityFunc
}

// authorizer is the compiled AuthConfig.
type authorizer struct {
	// tokens maps SHA-256(token) to its principal: one constant-time
	// comparison of digests instead of one per configured token.
	tokens map[[sha256.Size]byte]Principal
	peer   PeerIdentityFunc
}

// AuthInterceptors enforce cfg on every unary and streaming call. The
// method->access table is in access.go; a method it does not know is
// refused.
func AuthInterceptors(cfg AuthConfig) ([]grpc.ServerOption, error) {
	a := &authorizer{tokens: map[[sha256.Size]byte]Principal{}, peer: cfg.PeerIdentity}
	for _, c := range cfg.Tokens {
		r, err := ParseRole(c.Role)
		if err != nil {
			return nil, fmt.Errorf("token %q: %w", c.Name, err)
		}
		if c.Token == "" {
			return nil, fmt.Errorf("token %q is empty", c.Name)
		}
		h := sha256.Sum256([]byte(c.Token))
		if _, dup := a.tokens[h]; dup {
			return nil, fmt.Errorf("token %q: the same token is configured twice", c.Name)
		}
		a.tokens[h] = Principal{Name: c.Name, Role: r}
	}
	return []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			ctx, err := a.authorize(ctx, info.FullMethod)
			if err != nil {
				return nil, err
			}
			return h(ctx, req)
		}),
		grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			ctx, err := a.authorize(ss.Context(), info.FullMethod)
			if err != nil {
				return err
			}
			return h(srv, &ctxStream{ServerStream: ss, ctx: ctx})
		}),
	}, nil
}

type ctxStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *ctxStream) Context() context.Context { return s.ctx }

func (a *authorizer) authorize(ctx context.Context, method string) (context.Context, error) {
	acc, ok := accessFor(method)
	if !ok {
		return ctx, status.Errorf(codes.PermissionDenied, "%s has no access rule on this node; refused", method)
	}
	switch acc {
	case accessPublic:
		return ctx, nil
	case accessPeer:
		// Client tokens never count here: the peer service runs raw state
		// machine commands and membership changes.
		if a.peer != nil && !a.peer(ctx) {
			return ctx, status.Errorf(codes.PermissionDenied, "%s is for the nodes of this cluster only: the caller must present a node certificate of the cluster CA; client tokens are not accepted", method)
		}
		return ctx, nil
	}
	if len(a.tokens) == 0 {
		return ctx, nil
	}
	p, ok := a.lookup(ctx)
	if !ok {
		return ctx, status.Error(codes.Unauthenticated, "missing or unknown bearer token; pass a token the node was started with (--token, --auth-file)")
	}
	ctx = context.WithValue(ctx, principalKey{}, p)
	if need := acc.role(); need != 0 && p.Role < need {
		return ctx, status.Errorf(codes.PermissionDenied, "token %q has role %s; %s needs %s", p.Name, p.Role, method, need)
	}
	return ctx, nil
}

func (a *authorizer) lookup(ctx context.Context) (Principal, bool) {
	md, _ := metadata.FromIncomingContext(ctx)
	for _, v := range md.Get("authorization") {
		tok, ok := strings.CutPrefix(v, "Bearer ")
		if !ok {
			continue
		}
		if p, ok := a.tokens[sha256.Sum256([]byte(tok))]; ok {
			return p, true
		}
	}
	return Principal{}, false
}
