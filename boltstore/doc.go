// Package boltstore is the embedded, persistent FACTSTR event store on bbolt,
// and the state machine store that the Raft FSM applies committed log
// entries to.
//
// The package owns one bbolt file: the event log, its committed-batch
// boundaries, the type and payload indexes that make a query's cost follow
// the matching events rather than the log size, the durable stream cursors
// and leases, the idempotency records, and the store's meta data (applied
// index, head, clean-shutdown marker, schema version).
//
// Every change goes through one deterministic path, Apply: a list of
// command.Entry (a log index and its commands; the command set, one type
// per kind, is package fsm/command) applied in order in a single
// read-write transaction. A type switch hands each command to its applier
// (apply.go; groups.go and parked.go for the consumer-group and parked-list
// commands). The Raft FSM calls Apply with committed log entries; the
// embedded contract.EventStore methods validate, stamp the time and call
// the same path with the next local index, so the embedded store and a
// replica running the same entries hold the same state. Reads (Query,
// ReadBatches, Snapshot) run in bbolt read transactions alongside Apply.
//
// Stream delivery is not implemented here: the store is a streams.Source
// and, in embedded mode, a streams.Durables whose cursors persist through
// Apply; internal/streams delivers.
//
// In embedded mode appends are fsynced (unless WithNoSync) and concurrent
// appends share one transaction (group commit). In replicated mode
// (WithReplicated) the Raft log is the source of truth: the embedded write
// methods are refused and Open leaves durable leases as the log left them.
package boltstore
