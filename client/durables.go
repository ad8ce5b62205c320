package client

import (
	"context"

	factstrv1 "github.com/factstr/factstr-go/api/gen/factstr/v1"
	"github.com/factstr/factstr-go/contract"
	"github.com/factstr/factstr-go/internal/wire"
)

var _ contract.DurableAdmin = (*Client)(nil)

// ListDurable returns every durable stream name (AdminService, reader
// role), as the node that answers sees it after a linearizable read.
func (c *Client) ListDurable(ctx context.Context) ([]contract.DurableInfo, error) {
	resp, err := c.Admin().ListDurableStreams(ctx, &factstrv1.ListDurableStreamsRequest{})
	if err != nil {
		return nil, mapErr(err)
	}
	out := make([]contract.DurableInfo, len(resp.GetStreams()))
	for i, m := range resp.GetStreams() {
		out[i] = wire.DurableInfoFromProto(m)
	}
	return out, nil
}

// GetDurable returns one durable stream name (reader role);
// contract.ErrDurableNotFound when it does not exist.
func (c *Client) GetDurable(ctx context.Context, name string) (contract.DurableInfo, error) {
	if err := contract.ValidateDurableName(name); err != nil {
		return contract.DurableInfo{}, err
	}
	resp, err := c.Admin().GetDurableStream(ctx, &factstrv1.GetDurableStreamRequest{Name: name})
	if err != nil {
		return contract.DurableInfo{}, mapErr(err)
	}
	return wire.DurableInfoFromProto(resp.GetStream()), nil
}

// ResetDurable moves a durable name's cursor (admin role). It is sent at
// most once (see Admin).
func (c *Client) ResetDurable(ctx context.Context, name string, to contract.StartPosition, force bool) (contract.DurableInfo, error) {
	if err := contract.ValidateDurableName(name); err != nil {
		return contract.DurableInfo{}, err
	}
	if err := to.Validate(); err != nil {
		return contract.DurableInfo{}, err
	}
	target := wire.StartToProto(to)
	if target == nil {
		target = &factstrv1.DurableStart{Kind: factstrv1.DurableStartKind_DURABLE_START_KIND_BEGINNING}
	}
	resp, err := c.Admin().ResetDurableStream(ctx, &factstrv1.ResetDurableStreamRequest{Name: name, To: target, Force: force})
	if err != nil {
		return contract.DurableInfo{}, mapErr(err)
	}
	return wire.DurableInfoFromProto(resp.GetStream()), nil
}

// DeleteDurable forgets a durable name and its cursor (admin role). It is
// sent at most once (see Admin).
func (c *Client) DeleteDurable(ctx context.Context, name string, force bool) error {
	if err := contract.ValidateDurableName(name); err != nil {
		return err
	}
	_, err := c.Admin().DeleteDurableStream(ctx, &factstrv1.DeleteDurableStreamRequest{Name: name, Force: force})
	return mapErr(err)
}

// ListParked returns a page of a durable name's parked events (reader
// role): at most limit (0: 100, at most 1000) after sequence number after.
func (c *Client) ListParked(ctx context.Context, name string, after uint64, limit int) ([]contract.ParkedEvent, error) {
	if err := contract.ValidateDurableName(name); err != nil {
		return nil, err
	}
	resp, err := c.Admin().ParkedList(ctx, &factstrv1.ParkedListRequest{Name: name, After: after, Limit: uint32(min(max(limit, 0), contract.MaxParkedPage))})
	if err != nil {
		return nil, mapErr(err)
	}
	return wire.ParkedFromProto(resp.GetEvents()), nil
}

// RedeliverParked asks for a durable name's parked events up to upTo (0:
// all) to be delivered again to its subscriber (admin role). Asking twice
// is harmless.
func (c *Client) RedeliverParked(ctx context.Context, name string, upTo uint64) (int, error) {
	if err := contract.ValidateDurableName(name); err != nil {
		return 0, err
	}
	resp, err := c.Admin().ParkedRedeliver(ctx, &factstrv1.ParkedRedeliverRequest{Name: name, UpTo: upTo})
	if err != nil {
		return 0, mapErr(err)
	}
	return int(resp.GetCount()), nil
}

// DropParked forgets a durable name's parked events up to upTo (0: all)
// (admin role).
func (c *Client) DropParked(ctx context.Context, name string, upTo uint64) (int, error) {
	if err := contract.ValidateDurableName(name); err != nil {
		return 0, err
	}
	resp, err := c.Admin().ParkedDrop(ctx, &factstrv1.ParkedDropRequest{Name: name, UpTo: upTo})
	if err != nil {
		return 0, mapErr(err)
	}
	return int(resp.GetCount()), nil
}
