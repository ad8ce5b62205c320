package server

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	factstrv1 "github.com/factstr/factstr-go/api/gen/factstr/v1"
	"github.com/factstr/factstr-go/internal/wire"
	"github.com/factstr/factstr-go/memstore"
)

func serveLoopback(t *testing.T) *grpc.ClientConn {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	store := memstore.New()
	t.Cleanup(func() { _ = store.Close() })
	NewEventStore(store, nil, slog.New(slog.NewTextHandler(io.Discard, nil))).Register(srv)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

func TestAppendIfUnnarrowedContextRefused(t *testing.T) {
	conn := serveLoopback(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	es := factstrv1.NewEventStoreServiceClient(conn)
	preds := func(ps ...string) *factstrv1.EventQuery {
		bl := &factstrv1.BytesList{}
		for _, p := range ps {
			bl.Values = append(bl.Values, []byte(p))
		}
		return &factstrv1.EventQuery{Filters: []*factstrv1.EventFilter{{PayloadPredicates: bl}}}
	}
	ev := []*factstrv1.Event{{Type: "T", Payload: []byte(`{"a":1}`)}}
	cases := []struct {
		what   string
		events []*factstrv1.Event
		ctx    *factstrv1.EventQuery
		code   codes.Code
		reason string
	}{
		{"an unnarrowed context", ev, preds(`{}`), codes.InvalidArgument, wire.ReasonInvalidQuery},
		{"an empty batch keeps its own error", nil, preds(`{}`), codes.InvalidArgument, wire.ReasonEmptyAppend},
		{"an invalid event keeps its own error", []*factstrv1.Event{{Type: "T", Payload: []byte(`{"a":1,"a":2}`)}}, preds(`{}`), codes.InvalidArgument, wire.ReasonInvalidEvent},
		{"a narrowed context", ev, preds(`{"a":1}`), codes.OK, ""},
	}
	for _, c := range cases {
		_, err := es.AppendIf(ctx, &factstrv1.AppendIfRequest{Events: c.events, Context: c.ctx})
		if got := status.Code(err); got != c.code || wire.Reason(err) != c.reason {
			t.Errorf("AppendIf with %s: %v (reason %q), want %v %q", c.what, err, wire.Reason(err), c.code, c.reason)
		}
	}
	// The same context is a valid Query.
	q, err := es.Query(ctx, &factstrv1.QueryRequest{Query: preds(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := q.Recv(); err != nil && !errors.Is(err, io.EOF) {
		t.Fatalf("Query of the unnarrowed context: %v", err)
	}
}
