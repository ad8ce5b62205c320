package server

import (
	"context"
	"errors"
	"io"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	factstrv1 "github.com/factstr/factstr-go/api/gen/factstr/v1"
)

// MaxWritesInFlight bounds the requests of one Writes stream being decided
// at once; past it the stream stops reading, and gRPC's flow control holds
// the client back.
const MaxWritesInFlight = 1024

// Writes serves a client's Append and AppendIf calls over one stream. Each
// request runs as the unary call would (the same checks, the same
// idempotency), on its own goroutine, so a slow AppendIf does not hold back
// the appends behind it; answers go out through one sender, in the order
// they are decided.
func (s *EventStore) Writes(stream grpc.BidiStreamingServer[factstrv1.WritesRequest, factstrv1.WritesResponse]) error {
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	out := newSendQueue[*factstrv1.WritesResponse]()
	sent := make(chan error, 1)
	go func() { sent <- out.drain(ctx, stream.Send) }()
	slots := make(chan struct{}, MaxWritesInFlight)
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		req, err := stream.Recv()
		if err != nil {
			// Answer what is still being decided, then end.
			wg.Wait()
			out.close()
			if serr := <-sent; serr != nil {
				return serr
			}
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			out.push(s.write(ctx, req))
		}()
	}
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
		err = status.Error(codes.InvalidArgument, "a Writes request carries neither an append nor an append_if")
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

// sendQueue is an unbounded queue with one consumer, so that producers
// never wait for the network. Its size is bounded by its producers (for
// Writes: MaxWritesInFlight).
type sendQueue[T any] struct {
	mu     sync.Mutex
	items  []T
	closed bool
	wake   chan struct{}
}

func newSendQueue[T any]() *sendQueue[T] { return &sendQueue[T]{wake: make(chan struct{}, 1)} }

func (q *sendQueue[T]) push(v T) {
	q.mu.Lock()
	q.items = append(q.items, v)
	q.mu.Unlock()
	q.signal()
}

func (q *sendQueue[T]) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.signal()
}

func (q *sendQueue[T]) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// drain sends items until the queue is closed and empty, sending fails or
// ctx ends.
func (q *sendQueue[T]) drain(ctx context.Context, send func(T) error) error {
	for {
		q.mu.Lock()
		items, closed := q.items, q.closed
		q.items = nil
		q.mu.Unlock()
		for _, v := range items {
			if err := send(v); err != nil {
				return err
			}
		}
		if closed {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-q.wake:
		}
	}
}
