package server

import (
	"context"

	factstrv1 "github.com/factstr/factstr-go/api/gen/factstr/v1"
	"github.com/factstr/factstr-go/internal/wire"
)

// ParkedList returns a page of a durable name's parked events.
func (d *Durables) ParkedList(ctx context.Context, req *factstrv1.ParkedListRequest) (*factstrv1.ParkedListResponse, error) {
	ps, err := d.store.ListParked(ctx, req.GetName(), req.GetAfter(), int(min(req.GetLimit(), 1<<20)))
	if err != nil {
		return nil, d.status(err)
	}
	return &factstrv1.ParkedListResponse{Events: wire.ParkedToProto(ps)}, nil
}

// ParkedRedeliver asks for a durable name's parked events to be delivered
// again to its subscriber.
func (d *Durables) ParkedRedeliver(ctx context.Context, req *factstrv1.ParkedRedeliverRequest) (*factstrv1.ParkedRedeliverResponse, error) {
	n, err := d.store.RedeliverParked(ctx, req.GetName(), req.GetUpTo())
	if err != nil {
		return nil, d.status(err)
	}
	return &factstrv1.ParkedRedeliverResponse{Count: uint64(n)}, nil
}

// ParkedDrop forgets a durable name's parked events.
func (d *Durables) ParkedDrop(ctx context.Context, req *factstrv1.ParkedDropRequest) (*factstrv1.ParkedDropResponse, error) {
	n, err := d.store.DropParked(ctx, req.GetName(), req.GetUpTo())
	if err != nil {
		return nil, d.status(err)
	}
	return &factstrv1.ParkedDropResponse{Count: uint64(n)}, nil
}
