// Package raftlog owns the Raft plumbing of a FACTSTR node: the log store,
// the stable store, the snapshot store, the TCP transport and the validated
// raft.Config. It does not own the state machine; the FSM, bootstrapping and
// membership live elsewhere and receive these pieces from Open.
//
// On disk, Raft state lives under DataDir/raft, in one of two log stores
// (Config.LogStore picks it for a new directory; an existing one keeps
// what it holds):
//
//	DataDir/raft/raft.db     raft-boltdb log store and stable store (one file; "bolt", the default)
//	DataDir/raft/wal/        hashicorp/raft-wal segment files and meta database ("wal")
//	DataDir/raft/snapshots/  file snapshot store, two snapshots retained
//
// Either log store is wrapped in raft.NewLogCache so the leader replicates
// recent entries from memory. The transport is a raft.NetworkTransport over
// a PartitionableStreamLayer: TCP, or mutual TLS with Config.TLS, whose
// connections a test can cut to simulate a partition. GuardVotes wraps the
// transport so that a node withholds its votes until the caller allows it
// (a node whose data directory was wiped forgot the votes it cast).
//
// Every tunable is in Config, and Config.Validate is the only place that
// checks it, so a bad setting fails at Open with a message that names the
// field and says how to fix it, instead of surfacing later as an election
// that never settles.
//
// Lifecycle: Open, build the *raft.Raft from the pieces and RaftConfig,
// and on the way down call (*raft.Raft).Shutdown before Stores.Close, since
// raft keeps writing to the stores until Shutdown returns.
package raftlog
