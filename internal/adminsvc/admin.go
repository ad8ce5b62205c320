package adminsvc

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	factstrv1 "github.com/factstr/factstr-go/api/gen/factstr/v1"
	"github.com/factstr/factstr-go/cluster"
	"github.com/factstr/factstr-go/internal/server"
	"github.com/factstr/factstr-go/internal/wire"
)

// Admin serves factstr.v1.AdminService over a cluster node.
type Admin struct {
	factstrv1.UnimplementedAdminServiceServer
	node       *cluster.Node
	durables   *server.Durables
	log        *slog.Logger
	maxRestore int64 // SnapshotRestore upload cap in bytes; 0: DefaultMaxRestoreBytes
}

// NewAdmin returns the admin service.
func NewAdmin(node *cluster.Node, log *slog.Logger) *Admin {
	if log == nil {
		log = slog.Default()
	}
	return &Admin{node: node, durables: server.NewDurables(node.DurableAdmin()), log: log}
}

// The durable stream methods are the node's DurableAdmin, served by
// server.Durables.

func (a *Admin) ListDurableStreams(ctx context.Context, req *factstrv1.ListDurableStreamsRequest) (*factstrv1.ListDurableStreamsResponse, error) {
	return a.durables.ListDurableStreams(ctx, req)
}

func (a *Admin) GetDurableStream(ctx context.Context, req *factstrv1.GetDurableStreamRequest) (*factstrv1.GetDurableStreamResponse, error) {
	return a.durables.GetDurableStream(ctx, req)
}

func (a *Admin) ResetDurableStream(ctx context.Context, req *factstrv1.ResetDurableStreamRequest) (*factstrv1.ResetDurableStreamResponse, error) {
	return a.durables.ResetDurableStream(ctx, req)
}

func (a *Admin) DeleteDurableStream(ctx context.Context, req *factstrv1.DeleteDurableStreamRequest) (*factstrv1.DeleteDurableStreamResponse, error) {
	return a.durables.DeleteDurableStream(ctx, req)
}

func (a *Admin) ParkedList(ctx context.Context, req *factstrv1.ParkedListRequest) (*factstrv1.ParkedListResponse, error) {
	return a.durables.ParkedList(ctx, req)
}

func (a *Admin) ParkedRedeliver(ctx context.Context, req *factstrv1.ParkedRedeliverRequest) (*factstrv1.ParkedRedeliverResponse, error) {
	return a.durables.ParkedRedeliver(ctx, req)
}

func (a *Admin) ParkedDrop(ctx context.Context, req *factstrv1.ParkedDropRequest) (*factstrv1.ParkedDropResponse, error) {
	return a.durables.ParkedDrop(ctx, req)
}

// DefaultMaxRestoreBytes caps a SnapshotRestore upload unless
// WithMaxRestoreBytes says otherwise: the upload is spooled to the data
// disk before it is restored.
const DefaultMaxRestoreBytes = 4 << 30

// WithMaxRestoreBytes caps SnapshotRestore uploads at n bytes (0: the
// default); a larger one fails with ResourceExhausted and restores nothing.
func (a *Admin) WithMaxRestoreBytes(n int64) *Admin {
	a.maxRestore = n
	return a
}

// Register registers the service on r.
func (a *Admin) Register(r grpc.ServiceRegistrar) { factstrv1.RegisterAdminServiceServer(r, a) }

func (a *Admin) status(err error) error { return wire.ToStatus(err) }

func membersToProto(ms []cluster.MemberStatus) []*factstrv1.Member {
	out := make([]*factstrv1.Member, len(ms))
	for i, m := range ms {
		out[i] = &factstrv1.Member{
			Id: m.ID, RaftAddr: m.RaftAddr, GrpcAddr: m.GRPCAddr, Suffrage: m.Suffrage, State: m.State,
			AppliedIndex: m.AppliedIndex, CommitIndex: m.CommitIndex, Term: m.Term, Lag: m.Lag, Healthy: m.Healthy,
			GossipState: m.GossipState,
		}
	}
	return out
}

func (a *Admin) Status(ctx context.Context, _ *factstrv1.StatusRequest) (*factstrv1.StatusResponse, error) {
	st, err := a.node.Admin().Status(ctx)
	if err != nil {
		return nil, a.status(err)
	}
	return &factstrv1.StatusResponse{
		ClusterId: st.ClusterID, NodeId: st.NodeID, LeaderId: st.LeaderID, Term: st.Term, CommitIndex: st.CommitIndex,
		AppliedIndex: st.Applied, HeadSequenceNumber: st.Head, Members: membersToProto(st.Members), Warnings: st.Warnings,
	}, nil
}

func (a *Admin) Members(ctx context.Context, _ *factstrv1.MembersRequest) (*factstrv1.MembersResponse, error) {
	st, err := a.node.Admin().Status(ctx)
	if err != nil {
		return nil, a.status(err)
	}
	return &factstrv1.MembersResponse{Members: membersToProto(st.Members)}, nil
}

func (a *Admin) Join(ctx context.Context, req *factstrv1.JoinRequest) (*factstrv1.JoinResponse, error) {
	n, err := a.node.Admin().Join(ctx, []string{req.GetAddr()})
	if err != nil {
		return nil, a.status(err)
	}
	return &factstrv1.JoinResponse{Contacted: uint32(n)}, nil
}

func (a *Admin) Leave(ctx context.Context, _ *factstrv1.LeaveRequest) (*factstrv1.LeaveResponse, error) {
	if err := a.node.Admin().Leave(ctx); err != nil {
		return nil, a.status(err)
	}
	return &factstrv1.LeaveResponse{}, nil
}

func (a *Admin) Remove(ctx context.Context, req *factstrv1.RemoveRequest) (*factstrv1.RemoveResponse, error) {
	if err := a.node.Admin().Remove(ctx, req.GetNodeId()); err != nil {
		return nil, a.status(err)
	}
	return &factstrv1.RemoveResponse{}, nil
}

func (a *Admin) TransferLeadership(ctx context.Context, req *factstrv1.TransferLeadershipRequest) (*factstrv1.TransferLeadershipResponse, error) {
	id, err := a.node.Admin().TransferLeadership(ctx, req.GetNodeId())
	if err != nil {
		return nil, a.status(err)
	}
	return &factstrv1.TransferLeadershipResponse{NewLeaderId: id}, nil
}

type chunkWriter struct {
	send func([]byte) error
}

func (w chunkWriter) Write(p []byte) (int, error) {
	for off := 0; off < len(p); off += 1 << 20 {
		end := min(off+1<<20, len(p))
		if err := w.send(append([]byte(nil), p[off:end]...)); err != nil {
			return off, err
		}
	}
	return len(p), nil
}

func (a *Admin) SnapshotSave(_ *factstrv1.SnapshotSaveRequest, stream grpc.ServerStreamingServer[factstrv1.SnapshotSaveResponse]) error {
	w := chunkWriter{send: func(b []byte) error { return stream.Send(&factstrv1.SnapshotSaveResponse{Chunk: b}) }}
	if err := a.node.Admin().SnapshotSave(stream.Context(), w); err != nil {
		return a.status(err)
	}
	return nil
}

type chunkReader struct {
	recv  func() ([]byte, error)
	buf   []byte
	limit int64 // most bytes accepted
	read  int64
}

// errRestoreTooLarge: the upload passed the restore size cap.
var errRestoreTooLarge = errors.New("backup larger than the restore size cap")

func (r *chunkReader) Read(p []byte) (int, error) {
	for len(r.buf) == 0 {
		b, err := r.recv()
		if err != nil {
			return 0, err
		}
		r.buf = b
		if r.read += int64(len(b)); r.read > r.limit {
			return 0, errRestoreTooLarge
		}
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

func (a *Admin) SnapshotRestore(stream grpc.ClientStreamingServer[factstrv1.SnapshotRestoreRequest, factstrv1.SnapshotRestoreResponse]) error {
	limit := a.maxRestore
	if limit <= 0 {
		limit = DefaultMaxRestoreBytes
	}
	r := &chunkReader{limit: limit, recv: func() ([]byte, error) {
		m, err := stream.Recv()
		if err != nil {
			return nil, err
		}
		return m.GetChunk(), nil
	}}
	if err := a.node.Admin().SnapshotRestore(stream.Context(), r); err != nil {
		if errors.Is(err, errRestoreTooLarge) {
			// The upload was only spooled: nothing was restored.
			return status.Errorf(codes.ResourceExhausted, "the backup is larger than %d bytes (--max-restore-bytes); nothing was restored", limit)
		}
		return a.status(err)
	}
	info := a.node.Info()
	return stream.SendAndClose(&factstrv1.SnapshotRestoreResponse{AppliedIndex: info.AppliedIndex, HeadSequenceNumber: info.Head})
}

var _ io.Reader = (*chunkReader)(nil)

// LivenessService is the health service name that reports the process is
// alive, whatever the cluster's state (a Kubernetes liveness probe must not
// depend on the leader). The empty service name is readiness.
const LivenessService = "liveness"

// WatchHealth keeps the health service up to date: the overall status (""),
// used for readiness, is SERVING only while the node knows a leader and has
// caught up with the commit index it knows of.
func WatchHealth(ctx context.Context, node *cluster.Node, hs *health.Server) {
	hs.SetServingStatus(LivenessService, healthpb.HealthCheckResponse_SERVING)
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		st := healthpb.HealthCheckResponse_NOT_SERVING
		if node.Ready() {
			st = healthpb.HealthCheckResponse_SERVING
		}
		hs.SetServingStatus("", st)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
