package httpapi

import (
	"context"
	"net"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// PipeListener is a net.Listener whose connections are in-memory pipes
// made by its DialContext: the node serves its gRPC services on one so
// that the HTTP handlers reach them without a socket, TLS or a port.
type PipeListener struct {
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

// NewPipeListener returns an open PipeListener.
func NewPipeListener() *PipeListener {
	return &PipeListener{conns: make(chan net.Conn), done: make(chan struct{})}
}

// Accept waits for the next DialContext.
func (l *PipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close stops Accept and DialContext; connections already made stay open
// until their ends are closed.
func (l *PipeListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

// Addr is a placeholder address of network "pipe".
func (l *PipeListener) Addr() net.Addr { return pipeAddr{} }

// DialContext returns the client end of a new pipe whose server end Accept
// returns.
func (l *PipeListener) DialContext(ctx context.Context, _ string) (net.Conn, error) {
	c, s := net.Pipe()
	select {
	case l.conns <- s:
		return c, nil
	case <-l.done:
	case <-ctx.Done():
	}
	_ = c.Close()
	_ = s.Close()
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	return nil, net.ErrClosed
}

// Dial returns a gRPC client connection over l. Messages up to maxMsg
// bytes pass in both directions (the node's own receive limit is the
// bound that matters).
func (l *PipeListener) Dial(maxMsg int) (*grpc.ClientConn, error) {
	return grpc.NewClient("passthrough:///httpapi",
		grpc.WithContextDialer(l.DialContext),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMsg), grpc.MaxCallSendMsgSize(maxMsg)),
	)
}

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "httpapi-pipe" }
