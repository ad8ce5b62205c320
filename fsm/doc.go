// Package fsm owns the Raft state machine of a FACTSTR node: the encoding of
// commands in Raft log entries and the raft.BatchingFSM that applies a whole
// batch of committed entries to the bbolt store in one transaction.
//
// Apply is deterministic: every clock value (OccurredAt) is chosen by the
// leader before proposing and carried in the entry, and the AppendIf check
// is decided inside Apply, in log order. The last applied Raft index is
// stored in the same bbolt transaction as the data, so entries at or below
// it are skipped when Raft replays its log after a restart.
package fsm
