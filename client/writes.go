package client

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"

	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
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
	// batching: the node said it takes several requests in one message
	// (its response header), so requests that queue up while a message is
	// being sent go out together in the next.
	batching atomic.Bool

	// outMu guards out and sending: callers queue their request, and the
	// one that finds nobody sending sends, until the queue is empty, what
	// the others queued meanwhile (gRPC streams allow one sender at a time).
	outMu   sync.Mutex
	out     []*factstrv1.WritesRequest
	sending bool

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
	// A copy with this stream's id: req is the caller's for every attempt,
	// and this one may still be queued for sending after the caller gave
	// up on it and tried another node.
	if err := ws.send(&factstrv1.WritesRequest{Id: id, Call: req.GetCall()}); err != nil {
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
				if err := ws.send(&factstrv1.WritesRequest{Id: id, Call: &factstrv1.WritesRequest_Cancel{Cancel: true}}); err != nil {
					m.breakStream(ws, err)
				}
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
	st, err := m.c.es(m.node).Writes(metadata.AppendToOutgoingContext(ctx, writesBatchHeader, "1"))
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

// maxBatchBytes bounds the encoded requests one batched message carries,
// well below the 4 MiB a gRPC server receives by default; a larger request
// goes alone, as it would without batches.
const maxBatchBytes = 1 << 20

// send queues req and, unless another caller is sending, sends everything
// queued. A caller that finds a send under way returns at once: the
// sender takes its request along in its next message. An error breaks the
// stream, failing every request on it.
func (ws *writeStream) send(req *factstrv1.WritesRequest) error {
	ws.outMu.Lock()
	ws.out = append(ws.out, req)
	if ws.sending {
		ws.outMu.Unlock()
		return nil
	}
	ws.sending = true
	// Let the callers that are about to queue do so first (the answers of
	// one Raft entry wake many at once), so that they share this message.
	ws.outMu.Unlock()
	runtime.Gosched()
	ws.outMu.Lock()
	for len(ws.out) > 0 {
		queued := ws.out
		ws.out = nil
		ws.outMu.Unlock()
		err := ws.sendQueued(queued)
		ws.outMu.Lock()
		if err != nil {
			ws.out = nil
			ws.sending = false
			ws.outMu.Unlock()
			return err
		}
	}
	ws.sending = false
	ws.outMu.Unlock()
	return nil
}

// sendQueued sends reqs, several to a message when the node takes batches.
func (ws *writeStream) sendQueued(reqs []*factstrv1.WritesRequest) error {
	if len(reqs) == 1 || !ws.batching.Load() {
		for _, r := range reqs {
			if err := ws.stream.Send(r); err != nil {
				return err
			}
		}
		return nil
	}
	for len(reqs) > 0 {
		n, size := 0, 0
		for n < len(reqs) {
			sz := proto.Size(reqs[n])
			if n > 0 && size+sz > maxBatchBytes {
				break
			}
			n, size = n+1, size+sz
		}
		msg := reqs[0]
		if n > 1 {
			msg = &factstrv1.WritesRequest{Batch: reqs[:n]}
		}
		if err := ws.stream.Send(msg); err != nil {
			return err
		}
		reqs = reqs[n:]
	}
	return nil
}

func (ws *writeStream) healthy() bool {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	return ws.broken == nil
}

// writesBatchHeader is internal/server.WritesBatchHeader: the client does
// not import the server.
const writesBatchHeader = "factstr-writes-batch"

func (m *writeMux) receive(ws *writeStream) {
	// A node that takes batches says so in its response header, which it
	// sends as the stream opens; an older node sends its header with the
	// first answer, so waiting for it here delays nothing.
	if md, err := ws.stream.Header(); err == nil && slices.Contains(md.Get(writesBatchHeader), "1") {
		ws.batching.Store(true)
	}
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
		answers := []*factstrv1.WritesResponse{resp}
		if batch := resp.GetBatch(); len(batch) > 0 {
			answers = batch
		}
		ws.mu.Lock()
		for _, a := range answers {
			if ch := ws.pending[a.GetId()]; ch != nil {
				delete(ws.pending, a.GetId())
				ch <- a
			}
		}
		ws.mu.Unlock()
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
			c.wroteAt(node, resp.GetForwarded())
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
