package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	peerv1 "github.com/factstr/factstr-go/api/gen/factstr/peer/v1"
	"github.com/factstr/factstr-go/internal/sendq"
	"github.com/factstr/factstr-go/internal/wire"
	"github.com/factstr/factstr-go/membership"
)

// peerPool keeps one gRPC connection per peer address.
type peerPool struct {
	opts []grpc.DialOption

	mu    sync.Mutex
	conns map[string]*grpc.ClientConn
	// lastLeader is the leader leaderClient last found: proposals may
	// still be forwarded to it while this node knows of none (see
	// forwardClient).
	lastLeader raft.ServerID
}

func newPeerPool(opts []grpc.DialOption) *peerPool {
	if len(opts) == 0 {
		opts = []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	}
	return &peerPool{opts: opts, conns: make(map[string]*grpc.ClientConn)}
}

func (p *peerPool) get(addr string) (*grpc.ClientConn, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c, ok := p.conns[addr]; ok {
		return c, nil
	}
	c, err := grpc.NewClient(addr, p.opts...)
	if err != nil {
		return nil, fmt.Errorf("dial peer %s: %w", addr, err)
	}
	p.conns[addr] = c
	return c, nil
}

func (p *peerPool) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for a, c := range p.conns {
		_ = c.Close()
		delete(p.conns, a)
	}
}

// leaderClient returns the current leader's id and a PeerService client for
// it.
func (p *peerPool) leaderClient(r *raft.Raft, ml *membership.Membership, self string) (string, peerv1.PeerServiceClient, error) {
	_, id := r.LeaderWithID()
	return p.clientFor(id, ml, self)
}

// forwardClient is leaderClient for forwarded proposals: while this node
// knows of no leader it tries the last one it knew. A node cut off from the
// Raft traffic alone (its Raft port blocked, gRPC still reachable) loses
// its leader after a heartbeat timeout, yet can still hand its durable
// cursors and leases to the cluster this way, so a client can move a
// stream off it. The leader checks its leadership before it takes a
// forwarded batch, so a former leader only refuses (ErrNotLeader).
func (p *peerPool) forwardClient(r *raft.Raft, ml *membership.Membership, self string) (string, peerv1.PeerServiceClient, error) {
	_, id := r.LeaderWithID()
	if id == "" {
		p.mu.Lock()
		id = p.lastLeader
		p.mu.Unlock()
	}
	return p.clientFor(id, ml, self)
}

func (p *peerPool) clientFor(id raft.ServerID, ml *membership.Membership, self string) (string, peerv1.PeerServiceClient, error) {
	if id == "" {
		return "", nil, fmt.Errorf("%w: this node knows of no leader (election in progress or partitioned)", ErrNoLeader)
	}
	if string(id) == self {
		return "", nil, fmt.Errorf("%w: leadership is changing on this node", ErrNotLeader)
	}
	if ml == nil {
		return "", nil, fmt.Errorf("%w: gossip is not running yet", ErrNoLeader)
	}
	m, ok := ml.Lookup(string(id))
	if !ok || m.Meta.GRPCAddr == "" {
		return "", nil, fmt.Errorf("%w: leader %s is not known to gossip yet", ErrNoLeader, id)
	}
	c, err := p.get(m.Meta.GRPCAddr)
	if err != nil {
		return "", nil, err
	}
	p.mu.Lock()
	p.lastLeader = id
	p.mu.Unlock()
	return string(id), peerv1.NewPeerServiceClient(c), nil
}

// RegisterPeerService registers the node-to-node service on s. The node's
// gRPC server must serve it on Config.GRPCAddr.
func RegisterPeerService(s grpc.ServiceRegistrar, n *Node) {
	peerv1.RegisterPeerServiceServer(s, &peerServer{n: n})
}

type peerServer struct {
	peerv1.UnimplementedPeerServiceServer
	n *Node
}

// Forward serves nodes of earlier versions, which forward one call at a
// time; ForwardStream is what this version uses.
func (p *peerServer) Forward(ctx context.Context, req *peerv1.ForwardRequest) (*peerv1.ForwardResponse, error) {
	ch := make(chan *peerv1.ForwardStreamResponse, 1)
	p.n.proposer.acceptForwarded(&peerv1.ForwardStreamRequest{Commands: req.GetCommands(), FromNodeId: req.GetFromNodeId()}, func(r *peerv1.ForwardStreamResponse) { ch <- r }, p.n.closed.Load())
	select {
	case r := <-ch:
		if c := codes.Code(r.GetCode()); c != codes.OK {
			return nil, status.Error(c, r.GetMessage())
		}
		return &peerv1.ForwardResponse{Results: r.GetResults(), Index: r.GetIndex()}, nil
	case <-ctx.Done():
		return nil, status.FromContextError(ctx.Err()).Err()
	}
}

// ForwardStream answers a follower's batches as their entries apply. Answers
// go out through one sender goroutine from a queue, so the proposer, which
// produces them, never waits for the network.
func (p *peerServer) ForwardStream(stream peerv1.PeerService_ForwardStreamServer) error {
	ctx := stream.Context()
	out := sendq.New[*peerv1.ForwardStreamResponse]()
	sendErr := make(chan error, 1)
	go func() { sendErr <- out.Drain(ctx, stream.Send) }()
	for {
		req, err := stream.Recv()
		if err != nil {
			out.Close()
			if serr := <-sendErr; serr != nil {
				return serr
			}
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		p.n.proposer.acceptForwarded(req, out.Push, p.n.closed.Load())
	}
}

func (p *peerServer) ReadIndex(ctx context.Context, _ *peerv1.ReadIndexRequest) (*peerv1.ReadIndexResponse, error) {
	n := p.n
	if n.raft.State() != raft.Leader {
		return nil, status.Errorf(codes.FailedPrecondition, "%s is not the leader", n.cfg.NodeID)
	}
	idx, err := n.reads.leader.do(ctx)
	if err != nil {
		return nil, wire.ToPeerStatus(err)
	}
	return &peerv1.ReadIndexResponse{Index: idx, Term: n.raft.CurrentTerm()}, nil
}

// NodeStatus reports this node's progress.
func (p *peerServer) NodeStatus(_ context.Context, _ *peerv1.NodeStatusRequest) (*peerv1.NodeStatusResponse, error) {
	n := p.n
	return &peerv1.NodeStatusResponse{
		NodeId:             n.cfg.NodeID,
		State:              n.raft.State().String(),
		Term:               n.raft.CurrentTerm(),
		CommitIndex:        n.raft.CommitIndex(),
		AppliedIndex:       n.fsm.AppliedIndex(),
		HeadSequenceNumber: n.store.Replica().Head(),
		LeaderId:           n.LeaderID(),
		Incarnation:        n.ident.incarnation,
		ClusterId:          n.ident.ClusterID(),
	}, nil
}

// nodeStatus asks the node at addr for its progress over the peer service.
func (p *peerPool) nodeStatus(ctx context.Context, addr string) (*peerv1.NodeStatusResponse, error) {
	c, err := p.get(addr)
	if err != nil {
		return nil, err
	}
	rctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	return peerv1.NewPeerServiceClient(c).NodeStatus(rctx, &peerv1.NodeStatusRequest{})
}
