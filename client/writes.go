package client

import (
	"context"
	"errors"
	"fmt"
	"sync"

	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	factstrv1 "github.com/factstr/factstr-go/api/gen/factstr/v1"
)

// writeMux carries the client's appends to one node over one Writes stream
// (opened on first use, reopened after it breaks), so concurrent callers
// share a stream instead of paying for a gRPC call each. A call whose
// stream breaks fails UNAVAILABLE and is retried like any call, on the
// next node, with the same idempotency key.
type writeMux struct {
	c    *Client
	node int

	mu          sync.Mutex
	cur         *writeStream
	opening     chan struct{} // closed when the open under way ends; nil when none is
	openErr     error         // why the last open failed
	unsupported bool          // the node answered UNIMPLEMENTED: use unary calls
}

type writeStream struct {
	stream factstrv1.EventStoreService_WritesClient
	cancel context.CancelFunc

	sendMu sync.Mutex // gRPC streams allow one sender at a time

	mu      sync.Mutex
	pending map[uint64]chan *factstrv1.WritesResponse
	nextID  uint64
	broken  error
}

// errUnsupported: the node has no Writes; the caller falls back to the
// unary call.
var errUnsupported = errors.New("node does not offer Writes")

// do sends req and waits for its answer or ctx. The returned error is a gRPC
// status error, as a unary call's would be.
func (m *writeMux) do(ctx context.Context, req *factstrv1.WritesRequest) (*factstrv1.WritesResponse, error) {
	ws, err := m.stream(ctx)
	if err != nil {
		return nil, err
	}
	ch := make(chan *factstrv1.WritesResponse, 1)
	ws.mu.Lock()
	if ws.broken != nil {
		err := ws.broken
		ws.mu.Unlock()
		return nil, err
	}
	ws.nextID++
	id := ws.nextID
	ws.pending[id] = ch
	ws.mu.Unlock()
	req.Id = id
	ws.sendMu.Lock()
	err = ws.stream.Send(req)
	ws.sendMu.Unlock()
	if err != nil {
		m.breakStream(ws, err)
	}
	select {
	case resp, ok := <-ch:
		if !ok {
			ws.mu.Lock()
			err := ws.broken
			ws.mu.Unlock()
			return nil, err
		}
		return resp, nil
	case <-ctx.Done():
		ws.mu.Lock()
		_, waiting := ws.pending[id]
		delete(ws.pending, id)
		ws.mu.Unlock()
		if waiting {
			// Tell the node, as the end of a unary call would, so that a
			// request it has not proposed yet is dropped.
			go func() {
				ws.sendMu.Lock()
				defer ws.sendMu.Unlock()
				_ = ws.stream.Send(&factstrv1.WritesRequest{Id: id, Call: &factstrv1.WritesRequest_Cancel{Cancel: true}})
			}()
		}
		return nil, status.FromContextError(ctx.Err()).Err()
	}
}

// stream returns the open stream, or opens one. Opening waits for the
// node's connection, which for a node that accepts connections and never
// answers lasts until gRPC's connect timeout: so the open runs on its own,
// and each caller waits for it only as long as its ctx allows (the attempt
// timeout then moves the call on to the next node).
func (m *writeMux) stream(ctx context.Context) (*writeStream, error) {
	m.mu.Lock()
	if m.unsupported {
		m.mu.Unlock()
		return nil, errUnsupported
	}
	if ws := m.cur; ws != nil && ws.healthy() {
		m.mu.Unlock()
		return ws, nil
	}
	if m.opening == nil {
		m.opening = make(chan struct{})
		go m.open(m.opening)
	}
	opening := m.opening
	m.mu.Unlock()
	select {
	case <-opening:
	case <-ctx.Done():
		return nil, status.FromContextError(ctx.Err()).Err()
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if ws := m.cur; ws != nil && ws.healthy() {
		return ws, nil
	}
	if m.unsupported {
		return nil, errUnsupported
	}
	if m.openErr != nil {
		return nil, m.openErr
	}
	return nil, status.Errorf(codes.Unavailable, "client: write stream to %s broke as it opened", m.c.targets[m.node])
}

func (m *writeMux) open(done chan struct{}) {
	ctx, cancel := context.WithCancel(m.c.ctx)
	st, err := m.c.es(m.node).Writes(ctx)
	m.mu.Lock()
	if err != nil {
		cancel()
		m.openErr = err
	} else {
		ws := &writeStream{stream: st, cancel: cancel, pending: make(map[uint64]chan *factstrv1.WritesResponse)}
		m.cur, m.openErr = ws, nil
		go m.receive(ws)
	}
	m.opening = nil
	m.mu.Unlock()
	close(done)
}

func (ws *writeStream) healthy() bool {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	return ws.broken == nil
}

func (m *writeMux) receive(ws *writeStream) {
	for {
		resp, err := ws.stream.Recv()
		if err != nil {
			if status.Code(err) == codes.Unimplemented {
				m.mu.Lock()
				m.unsupported = true
				m.mu.Unlock()
				err = errUnsupported
			}
			m.breakStream(ws, err)
			return
		}
		ws.mu.Lock()
		ch := ws.pending[resp.GetId()]
		delete(ws.pending, resp.GetId())
		ws.mu.Unlock()
		if ch != nil {
			ch <- resp
		}
	}
}

// breakStream fails every call waiting on ws: with the node's own answer
// when it refused the stream (a token, a role, a limit: the unary call
// would have got the same), else UNAVAILABLE (retried on the next node),
// or errUnsupported.
func (m *writeMux) breakStream(ws *writeStream, err error) {
	switch status.Code(err) {
	case codes.Unauthenticated, codes.PermissionDenied, codes.ResourceExhausted, codes.InvalidArgument, codes.FailedPrecondition:
	default:
		if !errors.Is(err, errUnsupported) {
			err = status.Errorf(codes.Unavailable, "client: write stream to %s broke: %v", m.c.targets[m.node], err)
		}
	}
	ws.mu.Lock()
	if ws.broken == nil {
		ws.broken = err
	}
	pending := ws.pending
	ws.pending = map[uint64]chan *factstrv1.WritesResponse{}
	ws.mu.Unlock()
	ws.cancel()
	for _, ch := range pending {
		close(ch)
	}
}

func (m *writeMux) close() {
	m.mu.Lock()
	ws := m.cur
	m.cur = nil
	m.mu.Unlock()
	if ws != nil {
		m.breakStream(ws, errors.New("client closed"))
	}
}

// statusOf turns a Writes answer's status into the error the unary call
// would have returned.
func statusOf(b []byte) error {
	var st spb.Status
	if err := proto.Unmarshal(b, &st); err != nil {
		return status.Errorf(codes.Internal, "client: undecodable status in a Writes answer: %v", err)
	}
	if st.GetCode() == int32(codes.OK) {
		return status.Error(codes.Internal, "client: a Writes answer with status OK and no result")
	}
	return status.ErrorProto(&st)
}

// writeAt runs one Append or AppendIf on node, over its Writes stream when
// the node offers one, else as a unary call.
func (c *Client) writeAt(ctx context.Context, node int, req *factstrv1.WritesRequest) (*factstrv1.WritesResponse, error) {
	resp, err := c.writes[node].do(ctx, req)
	if !errors.Is(err, errUnsupported) {
		if err == nil {
			if b, ok := resp.GetResult().(*factstrv1.WritesResponse_Status); ok {
				return nil, statusOf(b.Status)
			}
		}
		return resp, err
	}
	switch call := req.GetCall().(type) {
	case *factstrv1.WritesRequest_Append:
		r, err := c.es(node).Append(ctx, call.Append)
		if err != nil {
			return nil, err
		}
		return &factstrv1.WritesResponse{Result: &factstrv1.WritesResponse_Append{Append: r}}, nil
	case *factstrv1.WritesRequest_AppendIf:
		r, err := c.es(node).AppendIf(ctx, call.AppendIf)
		if err != nil {
			return nil, err
		}
		return &factstrv1.WritesResponse{Result: &factstrv1.WritesResponse_AppendIf{AppendIf: r}}, nil
	}
	return nil, fmt.Errorf("client: unknown write %T", req.GetCall())
}
