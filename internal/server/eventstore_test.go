package server

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	factstrv1 "github.com/factstr/factstr-go/api/gen/factstr/v1"
	"github.com/factstr/factstr-go/internal/testgrpc"
	"github.com/factstr/factstr-go/internal/wire"
	"github.com/factstr/factstr-go/memstore"
)

// rawCodec sends a rawRequest's bytes as they are, so a test can put what
// the Go protobuf library refuses to marshal (invalid UTF-8 in a string
// field) on the wire; everything else is protobuf.
type rawCodec struct{}

type rawRequest []byte

func (rawCodec) Marshal(v any) ([]byte, error) {
	if r, ok := v.(rawRequest); ok {
		return r, nil
	}
	return proto.Marshal(v.(proto.Message))
}
func (rawCodec) Unmarshal(data []byte, v any) error { return proto.Unmarshal(data, v.(proto.Message)) }
func (rawCodec) Name() string                       { return "proto" }

// withInvalidUTF8 marshals m and turns the marker "\x01x" (valid UTF-8)
// of its string fields into "\xffx" (never valid UTF-8).
func withInvalidUTF8(t *testing.T, m proto.Message) rawRequest {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte{0x01, 'x'}) {
		t.Fatal("marker not in the encoded request")
	}
	return bytes.ReplaceAll(b, []byte{0x01, 'x'}, []byte{0xff, 'x'})
}

func TestInvalidUTF8IsInvalidArgument(t *testing.T) {
	conn := serveLoopback(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	good := []*factstrv1.Event{{Type: "T", Payload: []byte(`{"a":1}`)}}
	badType := []*factstrv1.Event{{Type: "\x01x", Payload: []byte(`{}`)}}
	badFilter := &factstrv1.EventQuery{Filters: []*factstrv1.EventFilter{{EventTypes: &factstrv1.StringList{Values: []string{"A", "\x01x"}}}}}

	unary := []struct {
		what, method string
		req          rawRequest
		reason, says string
	}{
		{"an event type", "Append", withInvalidUTF8(t, &factstrv1.AppendRequest{Events: badType}), wire.ReasonInvalidEvent, "type is not valid UTF-8"},
		{"an event type", "AppendIf", withInvalidUTF8(t, &factstrv1.AppendIfRequest{Events: badType, Context: &factstrv1.EventQuery{}}), wire.ReasonInvalidEvent, "type is not valid UTF-8"},
		{"a context's type", "AppendIf", withInvalidUTF8(t, &factstrv1.AppendIfRequest{Events: good, Context: badFilter}), wire.ReasonInvalidQuery, "not valid UTF-8"},
		{"an idempotency key", "Append", withInvalidUTF8(t, &factstrv1.AppendRequest{Events: good, IdempotencyKey: "k\x01x"}), "", "idempotency key is not valid UTF-8"},
	}
	for _, c := range unary {
		var resp factstrv1.AppendResponse
		err := conn.Invoke(ctx, "/factstr.v1.EventStoreService/"+c.method, c.req, &resp, grpc.ForceCodec(rawCodec{}))
		if st := status.Convert(err); st.Code() != codes.InvalidArgument || wire.Reason(err) != c.reason || !strings.Contains(st.Message(), c.says) {
			t.Errorf("%s with %s that is not valid UTF-8: %v (reason %q), want InvalidArgument %q saying %q", c.method, c.what, err, wire.Reason(err), c.reason, c.says)
		}
	}

	streams := []struct {
		what   string
		desc   *grpc.StreamDesc
		method string
		req    rawRequest
	}{
		{"Query with a filter type", &factstrv1.EventStoreService_ServiceDesc.Streams[0], "Query", withInvalidUTF8(t, &factstrv1.QueryRequest{Query: badFilter})},
		{"Stream with a filter type", &factstrv1.EventStoreService_ServiceDesc.Streams[1], "Stream", withInvalidUTF8(t, &factstrv1.StreamRequest{Query: badFilter})},
		{"StreamDurable with a name", &factstrv1.EventStoreService_ServiceDesc.Streams[2], "StreamDurable", withInvalidUTF8(t, &factstrv1.StreamDurableRequest{
			Kind: &factstrv1.StreamDurableRequest_Subscribe{Subscribe: &factstrv1.DurableSubscribe{Name: "d\x01x"}}})},
	}
	for _, c := range streams {
		stream, err := conn.NewStream(ctx, c.desc, "/factstr.v1.EventStoreService/"+c.method, grpc.ForceCodec(rawCodec{}))
		if err != nil {
			t.Fatal(err)
		}
		if err := stream.SendMsg(c.req); err != nil {
			t.Fatal(err)
		}
		_ = stream.CloseSend()
		var err2 error
		switch c.method {
		case "Query":
			err2 = stream.RecvMsg(new(factstrv1.QueryResponse))
		case "Stream":
			err2 = stream.RecvMsg(new(factstrv1.StreamResponse))
		default:
			err2 = stream.RecvMsg(new(factstrv1.StreamDurableResponse))
		}
		if st := status.Convert(err2); st.Code() != codes.InvalidArgument || wire.Reason(err2) != wire.ReasonInvalidQuery || !strings.Contains(st.Message(), "not valid UTF-8") {
			t.Errorf("%s that is not valid UTF-8: %v, want InvalidArgument %s", c.what, err2, wire.ReasonInvalidQuery)
		}
	}

	// A request that is not protobuf at all is still refused, and valid
	// requests are unaffected.
	var resp factstrv1.AppendResponse
	if err := conn.Invoke(ctx, "/factstr.v1.EventStoreService/Append", rawRequest{0x0a, 0xff}, &resp, grpc.ForceCodec(rawCodec{})); err == nil {
		t.Error("a truncated request was accepted")
	}
	es := factstrv1.NewEventStoreServiceClient(conn)
	if r, err := es.Append(ctx, &factstrv1.AppendRequest{Events: good}); err != nil || r.GetFirstSequenceNumber() != 1 {
		t.Fatalf("valid append: %v, %v; want the first event (nothing of the refused requests written)", r, err)
	}
}

func serveLoopback(t *testing.T) *grpc.ClientConn {
	t.Helper()
	store := memstore.New()
	t.Cleanup(func() { _ = store.Close() })
	return testgrpc.ServeConn(t, func(srv *grpc.Server) {
		NewEventStore(store, slog.New(slog.NewTextHandler(io.Discard, nil))).Register(srv)
	}, CodecOption())
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
