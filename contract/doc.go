// Package contract is the public contract of FACTSTR: the types, errors and
// semantics that every event store (in-memory, embedded bbolt, and the Raft
// cluster through its gRPC client) shows identically.
//
// Consistency is defined by the facts relevant to a command, not by
// aggregates: a command queries its context (an EventQuery), reads the
// context's current version (the highest matching sequence number) and
// appends with AppendIf only if that version is unchanged.
//
// The package also owns the matching rules (Matches, MatchesPayload), which
// every store uses and tests treat as the oracle.
package contract
