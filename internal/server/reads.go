package server

import (
	"context"
	"errors"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	factstrv1 "github.com/factstr/factstr-go/api/gen/factstr/v1"
	"github.com/factstr/factstr-go/contract"
	"github.com/factstr/factstr-go/internal/wire"
)

// maxReadAnswerBytes bounds the result one Reads answer carries (the size
// the Query call's pages are cut at); a larger result is answered with
// use_query, and the client pages it with the Query call.
const maxReadAnswerBytes = maxPageBytes

// Reads serves a client's queries over one stream (serveCalls): each
// request is the Query call, answered whole in one message when it fits.
func (s *EventStore) Reads(stream grpc.BidiStreamingServer[factstrv1.ReadsRequest, factstrv1.ReadsResponse]) error {
	cs := callStream[*factstrv1.ReadsRequest, *factstrv1.ReadsResponse]{
		recv: stream.Recv,
		send: stream.Send,
		requests: func(m *factstrv1.ReadsRequest) []*factstrv1.ReadsRequest {
			if b := m.GetBatch(); len(b) > 0 {
				return b
			}
			return []*factstrv1.ReadsRequest{m}
		},
		id:     (*factstrv1.ReadsRequest).GetId,
		cancel: (*factstrv1.ReadsRequest).GetCancel,
		answer: s.read,
		batch: func(answers []*factstrv1.ReadsResponse) *factstrv1.ReadsResponse {
			return &factstrv1.ReadsResponse{Batch: answers}
		},
	}
	if done := s.callDone(); done != nil {
		cs.done = func(_ *factstrv1.ReadsRequest, resp *factstrv1.ReadsResponse, took time.Duration) {
			done(factstrv1.EventStoreService_Query_FullMethodName, statusErr(resp.GetStatus()), took)
		}
	}
	return serveCalls(stream.Context(), cs)
}

func (s *EventStore) read(ctx context.Context, req *factstrv1.ReadsRequest) *factstrv1.ReadsResponse {
	resp := &factstrv1.ReadsResponse{Id: req.GetId()}
	q := req.GetQuery()
	if q == nil {
		resp.Result = &factstrv1.ReadsResponse_Status{Status: wire.StatusBytes(status.Error(codes.InvalidArgument,
			"a Reads request carries no query (nor a batch at the top level of a message)"))}
		return resp
	}
	ctx = contract.WithReadOptions(ctx, wire.ReadOptionsFromProto(q.GetRead()))
	res, err := s.store.Query(ctx, wire.QueryFromProto(q.GetQuery()))
	if errors.Is(err, contract.ErrResultTooLarge) {
		resp.Result = &factstrv1.ReadsResponse_UseQuery{UseQuery: true}
		return resp
	}
	if err != nil {
		resp.Result = &factstrv1.ReadsResponse_Status{Status: wire.StatusBytes(s.status(err))}
		return resp
	}
	size := 0
	for _, ev := range res.Events {
		if size += len(ev.Payload) + len(ev.Type) + 32; size > maxReadAnswerBytes {
			resp.Result = &factstrv1.ReadsResponse_UseQuery{UseQuery: true}
			return resp
		}
	}
	resp.Result = &factstrv1.ReadsResponse_Query{Query: &factstrv1.QueryResponse{
		Events:                     wire.RecordsToProto(res.Events),
		LastReturnedSequenceNumber: res.LastReturnedSequenceNumber,
		CurrentContextVersion:      res.CurrentContextVersion,
	}}
	return resp
}
