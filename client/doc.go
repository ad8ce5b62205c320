// Package client is the Go client of a FACTSTR cluster. A *Client
// implements contract.EventStore over gRPC, so code written against an
// embedded store runs unchanged against a cluster.
//
// It spreads calls over the given nodes and retries UNAVAILABLE on the next
// one. Retrying writes is safe because every append carries an idempotency
// key (the caller's, from contract.WithIdempotencyKey, or one it generates),
// the same on every attempt of one call. An attempt on a node that does not
// answer in time (WithAttemptTimeout, 5s by default) counts as UNAVAILABLE.
// Live streams that lose their node resume on another from the last
// delivered position, without gap or duplicate; durable streams resume from
// their server-stored cursor.
//
// Dial is lazy: it succeeds before the nodes are up, and calls retry until
// they are. Ping tells at once whether any node answers.
package client
