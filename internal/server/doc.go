// Package server serves the factstr.v1 gRPC API over a contract.EventStore
// (in production a cluster.Node): it maps requests to the contract, errors to
// gRPC statuses, and streams to server-streaming and bidirectional RPCs with
// flow control, so a slow client slows only its own subscription (a live
// one that takes no delivery within the store's stall timeout ends with
// ResourceExhausted and resumes by position). It also owns who may call
// what: tokens, roles and the one access table for every client-facing
// method (the AdminService included, which internal/adminsvc serves over
// a cluster node), and the server's guards (recovery, stream caps).
//
// It does not import the cluster: a store that reports duplicate appends
// implements contract.IdempotentAppender, one that manages durable names
// contract.DurableAdmin (served by Durables).
package server
