// Package wire converts between the contract's Go types and the factstr.v1
// protobuf messages, and between Go errors and gRPC statuses, in both
// directions, so the server and the client agree on every mapping.
package wire
