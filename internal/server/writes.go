package server

import (
	"context"
	"errors"
	"io"
	"slices"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	factstrv1 "github.com/factstr/factstr-go/api/gen/factstr/v1"
	"github.com/factstr/factstr-go/internal/sendq"
)

// WritesBatchHeader is the metadata key by which a client asks for, and a
// node offers, batches on the Writes stream (value "1").
const WritesBatchHeader = "factstr-writes-batch"

// maxAnswersPerMessage bounds the answers one Writes message carries; they
// are small (sequence numbers, or a status), so this keeps one message far
// below gRPC's limit.
const maxAnswersPerMessage = 512

// MaxWritesInFlight bounds the requests of one Writes stream being decided
// at once; past it the stream stops reading, and gRPC's flow control holds
// the client back.
const MaxWritesInFlight = 1024

// Writes serves a client's Append and AppendIf calls over one stream. Each
// request runs as the unary call would (the same checks, the same
// idempotency), on its own goroutine, so a slow AppendIf does not hold back
// the appends behind it; answers go out through one sender, in the order
// they are decided. A client that asked for batches gets the answers
// decided meanwhile in one message, and may send requests that way.
func (s *EventStore) Writes(stream grpc.BidiStreamingServer[factstrv1.WritesRequest, factstrv1.WritesResponse]) error {
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	md, _ := metadata.FromIncomingContext(ctx)
	batching := slices.Contains(md.Get(WritesBatchHeader), "1")
	if err := stream.SendHeader(metadata.Pairs(WritesBatchHeader, "1")); err != nil {
		return err
	}
	out := sendq.New[*factstrv1.WritesResponse]()
	sent := make(chan error, 1)
	go func() { sent <- out.DrainBatches(ctx, answerWith(stream.Send, batching)) }()
	slots := make(chan struct{}, MaxWritesInFlight)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		inflight = map[uint64]context.CancelFunc{}
	)
	defer wg.Wait()
	for {
		req, err := stream.Recv()
		if err != nil {
			// Answer what is still being decided, then end.
			wg.Wait()
			out.Close()
			if serr := <-sent; serr != nil {
				return serr
			}
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		reqs := []*factstrv1.WritesRequest{req}
		if batch := req.GetBatch(); len(batch) > 0 {
			reqs = batch
		}
		for _, req := range reqs {
			if req.GetCancel() {
				mu.Lock()
				if cancel, ok := inflight[req.GetId()]; ok {
					cancel()
				}
				mu.Unlock()
				continue
			}
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
				return ctx.Err()
			}
			rctx, cancel := context.WithCancel(ctx)
			mu.Lock()
			inflight[req.GetId()] = cancel
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-slots }()
				resp := s.write(rctx, req)
				resp.Forwarded = s.forwarding()
				mu.Lock()
				delete(inflight, req.GetId())
				mu.Unlock()
				cancel()
				out.Push(resp)
			}()
		}
	}
}

// answerWith sends answers one message each, or, to a client that asked
// for batches, the answers decided meanwhile in as few messages as
// maxAnswersPerMessage allows.
func answerWith(send func(*factstrv1.WritesResponse) error, batching bool) func([]*factstrv1.WritesResponse) error {
	return func(answers []*factstrv1.WritesResponse) error {
		for len(answers) > 0 {
			n := len(answers)
			if !batching {
				n = 1
			}
			n = min(n, maxAnswersPerMessage)
			msg := answers[0]
			if n > 1 {
				msg = &factstrv1.WritesResponse{Batch: answers[:n]}
			}
			if err := send(msg); err != nil {
				return err
			}
			answers = answers[n:]
		}
		return nil
	}
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
		b, merr := proto.Marshal(status.Convert(err).Proto())
		if merr != nil {
			b, _ = proto.Marshal(status.New(codes.Internal, merr.Error()).Proto())
		}
		resp.Result = &factstrv1.WritesResponse_Status{Status: b}
	}
	return resp
}
