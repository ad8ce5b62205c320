package boltstore

// Replica is the side of a Store that only a Raft replica uses: the reads
// and maintenance the cluster and its FSM need (members, incarnations,
// durable and parked state as the replicated log left it, the applied
// index and the commit count, the hub the cluster's stream engine follows)
// and that are no part of the embedded contract.EventStore. It is the same
// store, seen through a separate method set, so that Store's own methods
// are the public contract (contract.EventStore, DurableAdmin, the stream
// source, Apply, Snapshot, Restore, Close) and nothing else.
type Replica Store

// Replica returns the replica-only view of s. It holds no state of its own.
func (s *Store) Replica() *Replica { return (*Replica)(s) }

// Commits is the number of bbolt transactions Apply has committed (in
// deferred mode; each Apply commits its own otherwise, and is not counted).
func (s *Replica) Commits() uint64 { return s.be.Commits() }
