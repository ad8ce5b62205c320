package boltstore

import (
	"fmt"
	"time"

	"go.etcd.io/bbolt"

	"github.com/factstr/factstr-go/contract"
)

// Writes and reads outside Apply: the Raft FSM's reset after restoring a
// backup (every replica installs the same bytes and resets alike), and the
// check the leader makes before it proposes an idempotency-key prune.

// ResetAppliedIndex overwrites the stored applied index. A backup restored
// into another cluster carries the applied index of the cluster it came
// from, which means nothing in the new Raft log: left as is, it would make
// the state machine skip (or re-apply) the new log's entries. The Raft FSM
// resets it to the index at which the backup was installed.
func (s *Store) ResetAppliedIndex(index uint64) error {
	err := s.adminUpdate(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketMeta).Put(metaApplied, seqKey(index))
	})
	if err != nil {
		return fmt.Errorf("reset applied index: %w", err)
	}
	s.applied.Store(index)
	return nil
}

// adminUpdate runs fn in a write transaction outside Apply, excluding
// Apply and a concurrent Restore or Close.
func (s *Store) adminUpdate(fn func(*bbolt.Tx) error) error {
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	s.dbMu.RLock()
	defer s.dbMu.RUnlock()
	if s.db == nil {
		return contract.ErrClosed
	}
	if err := s.commitOpenLocked(); err != nil {
		return err
	}
	return s.db.Update(fn)
}

// HasIdempotencyKeysBefore reports whether any idempotency key was recorded
// before cutoff: the leader proposes a prune only then, so an idle cluster
// writes no Raft entries.
func (s *Store) HasIdempotencyKeysBefore(cutoff time.Time) (bool, error) {
	if s.closing.Load() {
		return false, contract.ErrClosed
	}
	var found bool
	err := s.view(func(tx *bbolt.Tx) error {
		k, _ := tx.Bucket(bucketIdemTime).Cursor().First()
		found = k != nil && idemTimeOf(k) < unixNanos(cutoff)
		return nil
	})
	return found, err
}
