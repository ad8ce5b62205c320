package client

import (
	"context"

	factstrv1 "github.com/factstr/factstr-go/api/gen/factstr/v1"
)

// readMux carries the client's queries to one node over its Reads stream,
// as writeMux carries the writes: a query whose result fits in one answer
// costs one message each way instead of a gRPC call. A larger result is
// answered with use_query, and the Query call pages it; a node of an
// earlier version has no Reads, and every query uses the Query call.
type readMux = mux[*factstrv1.ReadsRequest, *factstrv1.ReadsResponse]

// readsKind is the Reads stream for mux. Every node that offers Reads
// takes batches.
var readsKind = &muxKind[*factstrv1.ReadsRequest, *factstrv1.ReadsResponse]{
	name: "read",
	open: func(ctx context.Context, c *Client, node int) (bidiStream[*factstrv1.ReadsRequest, *factstrv1.ReadsResponse], error) {
		return c.es(node).Reads(ctx)
	},
	request: func(req *factstrv1.ReadsRequest, id uint64) *factstrv1.ReadsRequest {
		return &factstrv1.ReadsRequest{Id: id, Query: req.GetQuery()}
	},
	cancel: func(id uint64) *factstrv1.ReadsRequest { return &factstrv1.ReadsRequest{Id: id, Cancel: true} },
	batch: func(reqs []*factstrv1.ReadsRequest) *factstrv1.ReadsRequest {
		return &factstrv1.ReadsRequest{Batch: reqs}
	},
	answers: func(resp *factstrv1.ReadsResponse) []*factstrv1.ReadsResponse {
		if b := resp.GetBatch(); len(b) > 0 {
			return b
		}
		return []*factstrv1.ReadsResponse{resp}
	},
	id: func(resp *factstrv1.ReadsResponse) uint64 { return resp.GetId() },
}
