package server

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	factstrv1 "github.com/factstr/factstr-go/api/gen/factstr/v1"
	"github.com/factstr/factstr-go/contract"
	"github.com/factstr/factstr-go/internal/wire"
)

// Durables serves the durable stream methods of AdminService over any
// store that manages durable names. Admin serves them for a cluster node;
// registered alone, Durables answers every other AdminService method with
// UNIMPLEMENTED (a node over an embedded store, tests).
type Durables struct {
	factstrv1.UnimplementedAdminServiceServer
	store contract.DurableAdmin
}

// NewDurables returns the durable stream methods over store.
func NewDurables(store contract.DurableAdmin) *Durables {
	return &Durables{store: store}
}

// Register registers d as the AdminService on r.
func (d *Durables) Register(r grpc.ServiceRegistrar) { factstrv1.RegisterAdminServiceServer(r, d) }

func (d *Durables) status(err error) error { return wire.ToStatus(err) }

func (d *Durables) ListDurableStreams(ctx context.Context, _ *factstrv1.ListDurableStreamsRequest) (*factstrv1.ListDurableStreamsResponse, error) {
	infos, err := d.store.ListDurable(ctx)
	if err != nil {
		return nil, d.status(err)
	}
	resp := &factstrv1.ListDurableStreamsResponse{Streams: make([]*factstrv1.DurableStream, len(infos))}
	for i, info := range infos {
		resp.Streams[i] = wire.DurableInfoToProto(info)
	}
	return resp, nil
}

func (d *Durables) GetDurableStream(ctx context.Context, req *factstrv1.GetDurableStreamRequest) (*factstrv1.GetDurableStreamResponse, error) {
	info, err := d.store.GetDurable(ctx, req.GetName())
	if err != nil {
		return nil, d.status(err)
	}
	return &factstrv1.GetDurableStreamResponse{Stream: wire.DurableInfoToProto(info)}, nil
}

func (d *Durables) ResetDurableStream(ctx context.Context, req *factstrv1.ResetDurableStreamRequest) (*factstrv1.ResetDurableStreamResponse, error) {
	// A reset without a target would rewind to the beginning: make the
	// caller say so.
	if req.GetTo() == nil {
		return nil, status.Error(codes.InvalidArgument, "reset needs a target position (to): the beginning, the end or after a sequence number")
	}
	to, err := wire.StartFromProto(req.GetTo())
	if err != nil {
		return nil, d.status(err)
	}
	info, err := d.store.ResetDurable(ctx, req.GetName(), to, req.GetForce())
	if err != nil {
		return nil, d.status(err)
	}
	return &factstrv1.ResetDurableStreamResponse{Stream: wire.DurableInfoToProto(info)}, nil
}

func (d *Durables) DeleteDurableStream(ctx context.Context, req *factstrv1.DeleteDurableStreamRequest) (*factstrv1.DeleteDurableStreamResponse, error) {
	if err := d.store.DeleteDurable(ctx, req.GetName(), req.GetForce()); err != nil {
		return nil, d.status(err)
	}
	return &factstrv1.DeleteDurableStreamResponse{}, nil
}
