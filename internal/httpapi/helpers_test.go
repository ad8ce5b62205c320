package httpapi_test

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	factstrv1 "github.com/factstr/factstr-go/api/gen/factstr/v1"
	"github.com/factstr/factstr-go/internal/httpapi"
	"github.com/factstr/factstr-go/internal/httpapi/apitest"
	"github.com/factstr/factstr-go/internal/server"
	"github.com/factstr/factstr-go/memstore"
)

// stubAdmin answers Status and Join with fixed values, the durable stream
// methods from the store (server.Durables), and leaves the rest
// unimplemented: the admin mapping is tested here, the real admin service
// against a cluster (e2e).
type stubAdmin struct {
	*server.Durables
}

func (stubAdmin) Status(context.Context, *factstrv1.StatusRequest) (*factstrv1.StatusResponse, error) {
	return &factstrv1.StatusResponse{NodeId: "n1", LeaderId: "n1", Term: 3, HeadSequenceNumber: 1<<63 + 1,
		Members:  []*factstrv1.Member{{Id: "n1", Suffrage: "voter", State: "leader", Healthy: true}},
		Warnings: []string{"a <warning> & more"}}, nil
}

func (stubAdmin) Join(_ context.Context, r *factstrv1.JoinRequest) (*factstrv1.JoinResponse, error) {
	if r.GetAddr() == "" {
		return nil, status.Error(codes.InvalidArgument, "addr is empty")
	}
	return &factstrv1.JoinResponse{Contacted: 1}, nil
}

// node is an in-process node: memstore behind the real EventStoreService
// with the production codec and auth interceptors, reached through a
// PipeListener, and the API on a real loopback socket.
type node struct {
	url   string
	store *memstore.Store
	api   *httpapi.API
}

func startNode(t *testing.T, tokens []server.Credential, mod func(*httpapi.Config), storeOpts ...memstore.Option) *node {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	auth, err := server.AuthInterceptors(server.AuthConfig{Tokens: tokens})
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(append([]grpc.ServerOption{server.CodecOption()}, auth...)...)
	store := memstore.New(storeOpts...)
	server.NewEventStore(store, log).Register(srv)
	factstrv1.RegisterAdminServiceServer(srv, stubAdmin{server.NewDurables(store)})
	pipe := httpapi.NewPipeListener()
	go func() { _ = srv.Serve(pipe) }()
	conn, err := pipe.Dial(64 << 20)
	if err != nil {
		t.Fatal(err)
	}
	cfg := httpapi.Config{Conn: conn, Logger: log}
	if mod != nil {
		mod(&cfg)
	}
	api, err := httpapi.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewUnstartedServer(api)
	hs.Config = httpapi.NewServer(api, log)
	hs.Start()
	t.Cleanup(func() {
		hs.CloseClientConnections()
		hs.Close()
		_ = conn.Close()
		srv.Stop()
		_ = pipe.Close()
		_ = store.Close()
	})
	return &node{url: hs.URL, store: store, api: api}
}

// dummyConn is a connection nothing is called on (route table tests).
type dummyConn struct{ grpc.ClientConnInterface }

var (
	call   = apitest.Call
	mustOK = apitest.MustOK
)

type (
	apiErr      = apitest.Error
	record      = apitest.Record
	batch       = apitest.Batch
	queryResult = apitest.QueryResult
)

func decode[T any](t *testing.T, b []byte) T { t.Helper(); return apitest.Decode[T](t, b) }

func openSSE(t *testing.T, method, url, token, lastID, body string) (*apitest.Stream, int, []byte) {
	t.Helper()
	return apitest.OpenSSE(t, method, url, token, lastID, body)
}
