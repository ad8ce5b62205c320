package client

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc/metadata"

	factstrv1 "github.com/factstr/factstr-go/api/gen/factstr/v1"
	"github.com/factstr/factstr-go/internal/wire"
)

// writeMux carries the client's appends to one node over its Writes
// stream. A call whose stream breaks is retried like any call, on the next
// node, with the same idempotency key.
type writeMux = mux[*factstrv1.WritesRequest, *factstrv1.WritesResponse]

// writesBatchHeader is internal/server.WritesBatchHeader: the client does
// not import the server.
const writesBatchHeader = "factstr-writes-batch"

// writesKind is the Writes stream for mux. Nodes before batches existed
// offer Writes without them: they say nothing in the batch header.
var writesKind = &muxKind[*factstrv1.WritesRequest, *factstrv1.WritesResponse]{
	name: "write",
	open: func(ctx context.Context, c *Client, node int) (bidiStream[*factstrv1.WritesRequest, *factstrv1.WritesResponse], error) {
		return c.es(node).Writes(metadata.AppendToOutgoingContext(ctx, writesBatchHeader, "1"))
	},
	batchHeader: writesBatchHeader,
	request: func(req *factstrv1.WritesRequest, id uint64) *factstrv1.WritesRequest {
		return &factstrv1.WritesRequest{Id: id, Call: req.GetCall()}
	},
	cancel: func(id uint64) *factstrv1.WritesRequest {
		return &factstrv1.WritesRequest{Id: id, Call: &factstrv1.WritesRequest_Cancel{Cancel: true}}
	},
	batch: func(reqs []*factstrv1.WritesRequest) *factstrv1.WritesRequest {
		return &factstrv1.WritesRequest{Batch: reqs}
	},
	answers: func(resp *factstrv1.WritesResponse) []*factstrv1.WritesResponse {
		if b := resp.GetBatch(); len(b) > 0 {
			return b
		}
		return []*factstrv1.WritesResponse{resp}
	},
	id: func(resp *factstrv1.WritesResponse) uint64 { return resp.GetId() },
}

// writeAt runs one Append or AppendIf on node, over its Writes stream when
// the node offers one, else as a unary call.
func (c *Client) writeAt(ctx context.Context, node int, req *factstrv1.WritesRequest) (*factstrv1.WritesResponse, error) {
	resp, err := c.writes[node].do(ctx, req)
	if !errors.Is(err, errUnsupported) {
		if err == nil {
			c.wroteAt(node, resp.GetForwarded())
			if b, ok := resp.GetResult().(*factstrv1.WritesResponse_Status); ok {
				return nil, wire.StatusFromBytes(b.Status)
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
