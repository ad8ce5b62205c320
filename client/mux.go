package client

import (
	"context"
	"errors"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// mux carries one kind of call (the writes, the reads) of the client to one
// node over one long-lived bidirectional stream (opened on first use,
// reopened after it breaks), so concurrent callers share a stream instead
// of paying for a gRPC call each. Requests are answered by id, in any
// order; requests queued while one message is being sent go out together
// in the next when the node takes batches. A call whose stream breaks
// fails UNAVAILABLE and is retried like any call, on the next node.
type mux[Req, Resp proto.Message] struct {
	c    *Client
	node int
	kind *muxKind[Req, Resp]

	mu          sync.Mutex
	cur         *muxStream[Req, Resp]
	opening     chan struct{} // closed when the open under way ends; nil when none is
	openErr     error         // why the last open failed
	unsupported bool          // the node answered UNIMPLEMENTED: use the unary call
}

// muxKind is what differs between the streams a mux carries.
type muxKind[Req, Resp proto.Message] struct {
	name string // of the RPC, for errors
	// open opens the stream to node; md asks for batches.
	open func(ctx context.Context, c *Client, node int) (bidiStream[Req, Resp], error)
	// batchHeader is the response header by which a node says it takes
	// batches; "" when every node offering the stream does.
	batchHeader string
	// request returns a copy of req with id; cancel the message that
	// tells the node the caller of id stopped waiting.
	request func(req Req, id uint64) Req
	cancel  func(id uint64) Req
	// batch packs requests into one message; answers unpacks one.
	batch   func(reqs []Req) Req
	answers func(resp Resp) []Resp
	id      func(resp Resp) uint64
}

// bidiStream is the client side of a Writes or Reads stream.
type bidiStream[Req, Resp any] interface {
	Send(Req) error
	Recv() (Resp, error)
	Header() (metadata.MD, error)
}

type muxStream[Req, Resp proto.Message] struct {
	kind   *muxKind[Req, Resp]
	stream bidiStream[Req, Resp]
	cancel context.CancelFunc
	// batching: the node takes several requests in one message.
	batching atomic.Bool

	// outMu guards out and sending: callers queue their request, and the
	// one that finds nobody sending sends, until the queue is empty, what
	// the others queued meanwhile (gRPC streams allow one sender at a time).
	outMu   sync.Mutex
	out     []Req
	sending bool

	mu      sync.Mutex
	pending map[uint64]chan Resp
	nextID  uint64
	broken  error
}

// errUnsupported: the node does not offer the stream; the caller falls
// back to the unary call.
var errUnsupported = errors.New("node does not offer the stream")

// do sends req and waits for its answer or ctx. The returned error is a
// gRPC status error, as a unary call's would be.
func (m *mux[Req, Resp]) do(ctx context.Context, req Req) (Resp, error) {
	var zero Resp
	ms, err := m.stream(ctx)
	if err != nil {
		return zero, err
	}
	ch := make(chan Resp, 1)
	ms.mu.Lock()
	if ms.broken != nil {
		err := ms.broken
		ms.mu.Unlock()
		return zero, err
	}
	ms.nextID++
	id := ms.nextID
	ms.pending[id] = ch
	ms.mu.Unlock()
	// A copy with this stream's id: req is the caller's for every attempt,
	// and this one may still be queued for sending after the caller gave
	// up on it and tried another node.
	if err := ms.send(m.kind.request(req, id)); err != nil {
		m.breakStream(ms, err)
	}
	select {
	case resp, ok := <-ch:
		if !ok {
			ms.mu.Lock()
			err := ms.broken
			ms.mu.Unlock()
			return zero, err
		}
		return resp, nil
	case <-ctx.Done():
		ms.mu.Lock()
		_, waiting := ms.pending[id]
		delete(ms.pending, id)
		ms.mu.Unlock()
		if waiting {
			// Tell the node, as the end of a unary call would, so that a
			// request it has not started yet is dropped.
			go func() {
				if err := ms.send(m.kind.cancel(id)); err != nil {
					m.breakStream(ms, err)
				}
			}()
		}
		return zero, status.FromContextError(ctx.Err()).Err()
	}
}

// stream returns the open stream, or opens one. Opening waits for the
// node's connection, which for a node that accepts connections and never
// answers lasts until gRPC's connect timeout: so the open runs on its own,
// and each caller waits for it only as long as its ctx allows (the attempt
// timeout then moves the call on to the next node).
func (m *mux[Req, Resp]) stream(ctx context.Context) (*muxStream[Req, Resp], error) {
	m.mu.Lock()
	if m.unsupported {
		m.mu.Unlock()
		return nil, errUnsupported
	}
	if ms := m.cur; ms != nil && ms.healthy() {
		m.mu.Unlock()
		return ms, nil
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
	if ms := m.cur; ms != nil && ms.healthy() {
		return ms, nil
	}
	if m.unsupported {
		return nil, errUnsupported
	}
	if m.openErr != nil {
		return nil, m.openErr
	}
	return nil, status.Errorf(codes.Unavailable, "client: %s stream to %s broke as it opened", m.kind.name, m.c.targets[m.node])
}

func (m *mux[Req, Resp]) open(done chan struct{}) {
	ctx, cancel := context.WithCancel(m.c.ctx)
	st, err := m.kind.open(ctx, m.c, m.node)
	m.mu.Lock()
	if err != nil {
		cancel()
		m.openErr = err
	} else {
		ms := &muxStream[Req, Resp]{kind: m.kind, stream: st, cancel: cancel, pending: make(map[uint64]chan Resp)}
		ms.batching.Store(m.kind.batchHeader == "")
		m.cur, m.openErr = ms, nil
		go m.receive(ms)
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
func (ms *muxStream[Req, Resp]) send(req Req) error {
	ms.outMu.Lock()
	ms.out = append(ms.out, req)
	if ms.sending {
		ms.outMu.Unlock()
		return nil
	}
	ms.sending = true
	// Let the callers that are about to queue do so first (the answers of
	// one Raft entry wake many at once), so that they share this message.
	ms.outMu.Unlock()
	runtime.Gosched()
	ms.outMu.Lock()
	for len(ms.out) > 0 {
		queued := ms.out
		ms.out = nil
		ms.outMu.Unlock()
		err := ms.sendQueued(queued)
		ms.outMu.Lock()
		if err != nil {
			ms.out = nil
			ms.sending = false
			ms.outMu.Unlock()
			return err
		}
	}
	ms.sending = false
	ms.outMu.Unlock()
	return nil
}

// sendQueued sends reqs, several to a message when the node takes batches.
func (ms *muxStream[Req, Resp]) sendQueued(reqs []Req) error {
	if len(reqs) == 1 || !ms.batching.Load() {
		for _, r := range reqs {
			if err := ms.stream.Send(r); err != nil {
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
			msg = ms.kind.batch(reqs[:n])
		}
		if err := ms.stream.Send(msg); err != nil {
			return err
		}
		reqs = reqs[n:]
	}
	return nil
}

func (ms *muxStream[Req, Resp]) healthy() bool {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	return ms.broken == nil
}

func (m *mux[Req, Resp]) receive(ms *muxStream[Req, Resp]) {
	if h := m.kind.batchHeader; h != "" {
		// A node that takes batches says so in its response header, which
		// it sends as the stream opens; an older node sends its header
		// with the first answer, so waiting for it here delays nothing.
		if md, err := ms.stream.Header(); err == nil && slices.Contains(md.Get(h), "1") {
			ms.batching.Store(true)
		}
	}
	for {
		resp, err := ms.stream.Recv()
		if err != nil {
			if status.Code(err) == codes.Unimplemented {
				m.mu.Lock()
				m.unsupported = true
				m.mu.Unlock()
				err = errUnsupported
			}
			m.breakStream(ms, err)
			return
		}
		answers := m.kind.answers(resp)
		ms.mu.Lock()
		for _, a := range answers {
			id := m.kind.id(a)
			if ch := ms.pending[id]; ch != nil {
				delete(ms.pending, id)
				ch <- a
			}
		}
		ms.mu.Unlock()
	}
}

// breakStream fails every call waiting on ms: with the node's own answer
// when it refused the stream (a token, a role, a limit: the unary call
// would have got the same), else UNAVAILABLE (retried on the next node),
// or errUnsupported.
func (m *mux[Req, Resp]) breakStream(ms *muxStream[Req, Resp], err error) {
	switch status.Code(err) {
	case codes.Unauthenticated, codes.PermissionDenied, codes.ResourceExhausted, codes.InvalidArgument, codes.FailedPrecondition:
	default:
		if !errors.Is(err, errUnsupported) {
			err = status.Errorf(codes.Unavailable, "client: %s stream to %s broke: %v", m.kind.name, m.c.targets[m.node], err)
		}
	}
	ms.mu.Lock()
	if ms.broken == nil {
		ms.broken = err
	}
	pending := ms.pending
	ms.pending = map[uint64]chan Resp{}
	ms.mu.Unlock()
	ms.cancel()
	for _, ch := range pending {
		close(ch)
	}
}

func (m *mux[Req, Resp]) close() {
	m.mu.Lock()
	ms := m.cur
	m.cur = nil
	m.mu.Unlock()
	if ms != nil {
		m.breakStream(ms, errors.New("client closed"))
	}
}
