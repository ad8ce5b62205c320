package client

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/status"

	factstrv1 "github.com/factstr/factstr-go/api/gen/factstr/v1"
	"github.com/factstr/factstr-go/internal/wire"
)

// Admin returns an AdminService client that fails over across the targets
// like the data calls, starting at the next target in turn:
//
//   - Status, Members, ListDurableStreams and GetDurableStream (reads) are retried on the next target after
//     UNAVAILABLE or an attempt timeout (WithAttemptTimeout), as Query is.
//     They report the cluster as the node that answered sees it.
//   - Join, Remove, TransferLeadership, SnapshotSave, SnapshotRestore,
//     ResetDurableStream and DeleteDurableStream are sent at most once: the client moves on only while it cannot
//     connect to a target (nothing was sent) and, for unary calls, when
//     the node refused with UNAVAILABLE and reason NO_LEADER, which the
//     server returns only before the operation did anything (it knows no
//     leader, or the node it forwarded to is not the leader). Every other
//     error, including UNAVAILABLE from a connection lost mid-call and
//     OUTCOME_UNKNOWN, is returned: the operation may have run. Operations
//     that must run on the leader are forwarded by the node, except
//     SnapshotRestore, which a follower refuses.
//   - Leave makes the node that receives it leave, so it always goes to the
//     first target, without fail-over; use AdminAt(i) to choose the node.
//
// A ctx without a deadline is bounded by WithRetryTimeout.
func (c *Client) Admin() factstrv1.AdminServiceClient {
	return factstrv1.NewAdminServiceClient(adminConn{c})
}

// AdminAt returns the AdminService of target i, without fail-over.
func (c *Client) AdminAt(i int) factstrv1.AdminServiceClient {
	return factstrv1.NewAdminServiceClient(c.conns[i%len(c.conns)])
}

// adminConn picks the connection per call, by the rules of Client.Admin.
type adminConn struct{ c *Client }

var _ grpc.ClientConnInterface = adminConn{}

func (a adminConn) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	c := a.c
	switch method {
	case factstrv1.AdminService_Status_FullMethodName, factstrv1.AdminService_Members_FullMethodName,
		factstrv1.AdminService_ListDurableStreams_FullMethodName, factstrv1.AdminService_GetDurableStream_FullMethodName:
		return c.call(ctx, func(at *attempt, node int) error {
			return c.conns[node].Invoke(at.ctx, method, args, reply, opts...)
		})
	case factstrv1.AdminService_Leave_FullMethodName:
		return c.conns[0].Invoke(ctx, method, args, reply, opts...)
	}
	return c.retry(ctx, func(ctx context.Context, node int) (bool, error) {
		if err := c.waitReady(ctx, node); err != nil {
			return true, err // never sent
		}
		err := c.conns[node].Invoke(ctx, method, args, reply, opts...)
		return status.Code(err) == codes.Unavailable && wire.Reason(err) == wire.ReasonNoLeader, err
	})
}

// NewStream opens the stream on the first target the client can connect
// to. The stream is never opened twice: its messages may have been sent.
func (a adminConn) NewStream(ctx context.Context, desc *grpc.StreamDesc, method string, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	c := a.c
	var cs grpc.ClientStream
	err := c.retry(ctx, func(rctx context.Context, node int) (bool, error) {
		if err := c.waitReady(rctx, node); err != nil {
			return true, err
		}
		var err error
		cs, err = c.conns[node].NewStream(ctx, desc, method, opts...)
		return false, err
	})
	return cs, err
}

// waitReady waits, up to the attempt timeout, until the connection to node
// is ready. Its UNAVAILABLE error means no request was sent to the node.
func (c *Client) waitReady(ctx context.Context, node int) error {
	conn := c.conns[node]
	a := c.newAttempt(ctx)
	defer a.end()
	conn.Connect()
	for {
		s := conn.GetState()
		switch s {
		case connectivity.Ready:
			return nil
		case connectivity.TransientFailure, connectivity.Shutdown:
			return status.Errorf(codes.Unavailable, "client: cannot connect to %s (%v)", c.targets[node], s)
		}
		if !conn.WaitForStateChange(a.ctx, s) {
			if a.timedOut() {
				return c.timeoutErr(node, a.ctx.Err())
			}
			return status.Errorf(codes.Unavailable, "client: no connection to %s: %v", c.targets[node], ctx.Err())
		}
	}
}
