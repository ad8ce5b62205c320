package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	peerv1 "github.com/factstr/factstr-go/api/gen/factstr/peer/v1"
	factstrv1 "github.com/factstr/factstr-go/api/gen/factstr/v1"
	"github.com/factstr/factstr-go/internal/clusterkey"
)

// registerAll registers every service a node serves, with handlers that
// answer Unimplemented: a call that gets past the interceptors says so.
func registerAll(s *grpc.Server) {
	factstrv1.RegisterEventStoreServiceServer(s, factstrv1.UnimplementedEventStoreServiceServer{})
	factstrv1.RegisterAdminServiceServer(s, factstrv1.UnimplementedAdminServiceServer{})
	peerv1.RegisterPeerServiceServer(s, peerv1.UnimplementedPeerServiceServer{})
	healthpb.RegisterHealthServer(s, health.NewServer())
	reflection.Register(s)
}

func TestEveryMethodHasAnAccessRule(t *testing.T) {
	s := grpc.NewServer()
	registerAll(s)
	if err := CheckAccessRules(s); err != nil {
		t.Fatal(err)
	}
	// The check can fail: a service nobody gave a rule.
	s2 := grpc.NewServer()
	s2.RegisterService(&grpc.ServiceDesc{ServiceName: "factstr.v1.Sneaky", HandlerType: (*any)(nil),
		Methods: []grpc.MethodDesc{{MethodName: "Do"}}}, struct{}{})
	if err := CheckAccessRules(s2); err == nil || !strings.Contains(err.Error(), "/factstr.v1.Sneaky/Do") {
		t.Fatalf("CheckAccessRules = %v, want the rule-less method named", err)
	}
	// Every peer method, unary or streaming, and one added later, is
	// covered by the prefix.
	for _, m := range []string{peerv1.PeerService_ForwardStream_FullMethodName, peerv1.PeerService_Forward_FullMethodName, "/factstr.peer.v1.PeerService/AddedLater"} {
		if a, ok := accessFor(m); !ok || a != accessPeer {
			t.Fatalf("%s: access %v, %v; want peer-only", m, a, ok)
		}
	}
}

func TestLoadAuthFile(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ name, body, want string }{
		{"ok", `[{"name":"app","token":"0123456789abcdef","role":"writer"},{"name":"ops","token":"fedcba9876543210","role":"admin"}]`, ""},
		{"bad role", `[{"name":"app","token":"0123456789abcdef","role":"root"}]`, "want reader, writer or admin"},
		{"short token", `[{"name":"app","token":"short","role":"reader"}]`, "shorter than 16"},
		{"duplicate token", `[{"name":"a","token":"0123456789abcdef","role":"reader"},{"name":"b","token":"0123456789abcdef","role":"admin"}]`, "used by another entry"},
		{"duplicate name", `[{"name":"a","token":"0123456789abcdef","role":"reader"},{"name":"a","token":"0123456789abcdeX","role":"admin"}]`, "appears twice"},
		{"unknown field", `[{"name":"a","token":"0123456789abcdef","role":"reader","tenant":"x"}]`, "unknown field"},
		{"empty", `[]`, "no entries"},
		{"not json", `name=a`, "JSON array"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, tc.name+".json")
			if err := os.WriteFile(p, []byte(tc.body), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := LoadAuthFile(p)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("LoadAuthFile = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// TestAuthorization calls every kind of method over real TLS on loopback
// as every kind of caller: each role's tokens, a node certificate of the
// cluster CA, and one of another cluster.
func TestAuthorization(t *testing.T) {
	key, err := clusterkey.Parse(clusterkey.Generate())
	if err != nil {
		t.Fatal(err)
	}
	ca, err := key.CA()
	if err != nil {
		t.Fatal(err)
	}
	node, err := clusterkey.NewIssuer(ca, clusterkey.IssuerOptions{NodeID: "n1", Hosts: []string{"127.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	otherKey, _ := clusterkey.Parse(clusterkey.Generate())
	otherCA, _ := otherKey.CA()
	outsider, err := clusterkey.NewIssuer(otherCA, clusterkey.IssuerOptions{NodeID: "n1"})
	if err != nil {
		t.Fatal(err)
	}

	tokens := []Credential{
		{Name: "r", Token: "reader-token-0123", Role: "reader"},
		{Name: "w", Token: "writer-token-0123", Role: "writer"},
		{Name: "a", Token: "admin-token-01234", Role: "admin"},
	}
	opts, err := AuthInterceptors(AuthConfig{Tokens: tokens,
		PeerIdentity: ClusterIdentity(func(cs tls.ConnectionState) bool { return ca.Signed(cs.VerifiedChains) })})
	if err != nil {
		t.Fatal(err)
	}
	// Other nodes' CAs are in the pool as an operator's --tls-ca would be:
	// their certificates verify, but they are no cluster identity.
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	pool.AddCert(otherCA.Cert)
	srvTLS := &tls.Config{GetCertificate: node.GetCertificate, ClientAuth: tls.VerifyClientCertIfGiven, ClientCAs: pool}
	srv := grpc.NewServer(append(opts, grpc.Creds(credentials.NewTLS(srvTLS)))...)
	registerAll(srv)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)

	dial := func(cert *tls.Certificate) *grpc.ClientConn {
		cfg := &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1"}
		if cert != nil {
			cfg.Certificates = []tls.Certificate{*cert}
		}
		c, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	anon, asNode, asOutsider := dial(nil), dial(node.Certificate()), dial(outsider.Certificate())

	call := func(c *grpc.ClientConn, method, token string) codes.Code {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if token != "" {
			ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
		}
		// One empty message both ways fits every method's wire shape.
		st, err := c.NewStream(ctx, &grpc.StreamDesc{ClientStreams: true, ServerStreams: true}, method)
		if err != nil {
			return status.Code(err)
		}
		if err := st.SendMsg(&emptypb.Empty{}); err == nil {
			_ = st.CloseSend()
		}
		return status.Code(st.RecvMsg(&emptypb.Empty{}))
	}
	const (
		pass   = codes.Unimplemented // got past the interceptors
		unauth = codes.Unauthenticated
		denied = codes.PermissionDenied
	)
	appendM := factstrv1.EventStoreService_Append_FullMethodName
	queryM := factstrv1.EventStoreService_Query_FullMethodName
	durableM := factstrv1.EventStoreService_StreamDurable_FullMethodName
	statusM := factstrv1.AdminService_Status_FullMethodName
	removeM := factstrv1.AdminService_Remove_FullMethodName
	restoreM := factstrv1.AdminService_SnapshotRestore_FullMethodName
	forwardM := peerv1.PeerService_Forward_FullMethodName
	forwardStreamM := peerv1.PeerService_ForwardStream_FullMethodName // bidirectional stream
	healthM := "/grpc.health.v1.Health/Check"
	reflM := "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"

	for _, tc := range []struct {
		name   string
		conn   *grpc.ClientConn
		token  string
		method string
		want   codes.Code
	}{
		{"no token queries", anon, "", queryM, unauth},
		{"wrong token queries", anon, "not-a-token-at-all", queryM, unauth},
		{"no token checks health", anon, "", healthM, codes.OK},
		{"no token reflects", anon, "", reflM, unauth},
		{"reader reflects", anon, "reader-token-0123", reflM, codes.InvalidArgument}, // the reflection service's answer to an empty request
		{"reader queries", anon, "reader-token-0123", queryM, pass},
		{"reader streams durably", anon, "reader-token-0123", durableM, pass},
		{"reader reads status", anon, "reader-token-0123", statusM, pass},
		{"reader appends", anon, "reader-token-0123", appendM, denied},
		{"writer appends", anon, "writer-token-0123", appendM, pass},
		{"writer removes a node", anon, "writer-token-0123", removeM, denied},
		{"writer restores a snapshot", anon, "writer-token-0123", restoreM, denied},
		{"admin removes a node", anon, "admin-token-01234", removeM, pass},
		{"admin restores a snapshot", anon, "admin-token-01234", restoreM, pass},
		{"reader forwards", anon, "reader-token-0123", forwardM, denied},
		{"writer forwards", anon, "writer-token-0123", forwardM, denied},
		{"admin forwards", anon, "admin-token-01234", forwardM, denied},
		{"admin opens a forward stream", anon, "admin-token-01234", forwardStreamM, denied},
		{"writer opens a forward stream", anon, "writer-token-0123", forwardStreamM, denied},
		{"outsider node forwards", asOutsider, "admin-token-01234", forwardM, denied},
		{"node forwards", asNode, "", forwardM, pass},
		{"node opens a forward stream", asNode, "", forwardStreamM, pass},
		{"outsider node opens a forward stream", asOutsider, "", forwardStreamM, denied},
		{"node without token queries", asNode, "", queryM, unauth},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := call(tc.conn, tc.method, tc.token); got != tc.want {
				t.Fatalf("%s: %v, want %v", tc.method, got, tc.want)
			}
		})
	}
}
