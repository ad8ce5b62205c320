// Package httpapi serves the HTTP/JSON API of a node: append, append-if,
// query, live and durable streams as Server-Sent Events, status and the
// admin calls, the OpenAPI document that describes them, and (optionally)
// a user interface mounted at "/".
//
// It owns the mapping between JSON and the factstr.v1 protos and between
// gRPC status codes and HTTP statuses, and nothing else. The HTTP layer is
// a gateway over the node's own gRPC services, in the manner of
// grpc-gateway: every route calls one gRPC method through a client
// connection to the node itself (an in-memory pipe, see PipeListener), with
// the caller's Authorization header forwarded as gRPC metadata. Tokens,
// roles, validation, limits, metrics, logging and error codes are therefore
// exactly those of the gRPC API, decided by the same interceptors and the
// same access table.
//
// The JSON mapping is written by hand rather than generated (grpc-gateway,
// protojson) because the protos carry payloads and payload predicates as
// bytes holding JSON: a generated mapping shows them as base64, and
// google.protobuf.Value would round every number through float64. An event
// store must return a payload byte for byte as it was appended, so payloads
// and predicates travel as raw JSON (json.RawMessage in, spliced verbatim
// out), and 64-bit integers are JSON numbers, never strings.
package httpapi
