// Package fsm owns the Raft state machine of a FACTSTR node: the
// raft.BatchingFSM that decodes a whole batch of committed entries (the
// command set and its encoding are in fsm/command) and applies them to the
// bbolt store (boltstore.Store.Apply) in one transaction, its snapshots,
// and the backups restored through it.
//
// Apply is deterministic: every clock value (OccurredAt) is chosen by the
// leader before proposing and carried in the entry, and the AppendIf check
// is decided inside Apply, in log order. The last applied Raft index is
// stored in the same bbolt transaction as the data, so entries at or below
// it are skipped when Raft replays its log after a restart.
package fsm
