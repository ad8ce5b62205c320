package client

import (
	factstrv1 "github.com/factstr/factstr-go/api/gen/factstr/v1"
)

// Admin returns the AdminService of the first target node; operations that
// must run on the leader are forwarded by the node.
func (c *Client) Admin() factstrv1.AdminServiceClient {
	return factstrv1.NewAdminServiceClient(c.conns[0])
}

// AdminAt returns the AdminService of target i.
func (c *Client) AdminAt(i int) factstrv1.AdminServiceClient {
	return factstrv1.NewAdminServiceClient(c.conns[i%len(c.conns)])
}
