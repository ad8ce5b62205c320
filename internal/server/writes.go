package server

import (
	"context"
	"slices"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	factstrv1 "github.com/factstr/factstr-go/api/gen/factstr/v1"
	"github.com/factstr/factstr-go/internal/wire"
)

// WritesBatchHeader is the metadata key by which a client asks for, and a
// node offers, batches on the Writes stream (value "1").
const WritesBatchHeader = "factstr-writes-batch"

// Writes serves a client's Append and AppendIf calls over one stream
// (serveCalls). Each request runs as the unary call would (the same
// checks, the same idempotency). A client that asked for batches gets the
// answers decided meanwhile in one message, and may send requests that way.
func (s *EventStore) Writes(stream grpc.BidiStreamingServer[factstrv1.WritesRequest, factstrv1.WritesResponse]) error {
	md, _ := metadata.FromIncomingContext(stream.Context())
	if err := stream.SendHeader(metadata.Pairs(WritesBatchHeader, "1")); err != nil {
		return err
	}
	cs := callStream[*factstrv1.WritesRequest, *factstrv1.WritesResponse]{
		recv: stream.Recv,
		send: stream.Send,
		requests: func(m *factstrv1.WritesRequest) []*factstrv1.WritesRequest {
			if b := m.GetBatch(); len(b) > 0 {
				return b
			}
			return []*factstrv1.WritesRequest{m}
		},
		id:     (*factstrv1.WritesRequest).GetId,
		cancel: (*factstrv1.WritesRequest).GetCancel,
		answer: func(ctx context.Context, req *factstrv1.WritesRequest) *factstrv1.WritesResponse {
			resp := s.write(ctx, req)
			resp.Forwarded = s.forwarding()
			return resp
		},
	}
	if done := s.callDone(); done != nil {
		cs.done = func(req *factstrv1.WritesRequest, resp *factstrv1.WritesResponse, took time.Duration) {
			method := factstrv1.EventStoreService_Append_FullMethodName
			if req.GetAppendIf() != nil {
				method = factstrv1.EventStoreService_AppendIf_FullMethodName
			}
			done(method, statusErr(resp.GetStatus()), took)
		}
	}
	if slices.Contains(md.Get(WritesBatchHeader), "1") {
		cs.batch = func(answers []*factstrv1.WritesResponse) *factstrv1.WritesResponse {
			return &factstrv1.WritesResponse{Batch: answers}
		}
	}
	return serveCalls(stream.Context(), cs)
}

// leaderAware is a store that is one node of a cluster (cluster.Node).
type leaderAware interface {
	ID() string
	LeaderID() string
}

// forwarding reports whether this node forwards writes: it serves a
// cluster and does not lead it.
func (s *EventStore) forwarding() bool {
	n, ok := s.store.(leaderAware)
	return ok && n.LeaderID() != n.ID()
}

func (s *EventStore) write(ctx context.Context, req *factstrv1.WritesRequest) *factstrv1.WritesResponse {
	resp := &factstrv1.WritesResponse{Id: req.GetId()}
	var err error
	switch call := req.GetCall().(type) {
	case *factstrv1.WritesRequest_Append:
		var r *factstrv1.AppendResponse
		if r, err = s.Append(ctx, call.Append); err == nil {
			resp.Result = &factstrv1.WritesResponse_Append{Append: r}
		}
	case *factstrv1.WritesRequest_AppendIf:
		var r *factstrv1.AppendIfResponse
		if r, err = s.AppendIf(ctx, call.AppendIf); err == nil {
			resp.Result = &factstrv1.WritesResponse_AppendIf{AppendIf: r}
		}
	default:
		err = status.Error(codes.InvalidArgument, "a Writes request carries neither an append nor an append_if (nor a batch at the top level of a message)")
	}
	if err != nil {
		resp.Result = &factstrv1.WritesResponse_Status{Status: wire.StatusBytes(err)}
	}
	return resp
}
