// Package server serves the factstr.v1 gRPC API over a contract.EventStore
// (in production a cluster.Node): it maps requests to the contract, errors to
// gRPC statuses, and streams to server-streaming and bidirectional RPCs with
// flow control, so a slow client slows only its own subscription (a live
// one that takes no delivery within the store's stall timeout ends with
// ResourceExhausted and resumes by position).
package server
