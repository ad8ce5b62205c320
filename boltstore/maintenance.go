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
func (s *Replica) ResetAppliedIndex(index uint64) error {
	err := s.be.adminUpdate(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketMeta).Put(metaApplied, seqKey(index))
	})
	if err != nil {
		return fmt.Errorf("reset applied index: %w", err)
	}
	s.be.applied.Store(index)
	return nil
}

// adminUpdate runs fn in a write transaction outside Apply, excluding
// Apply and a concurrent Restore or Close.
func (b *backend) adminUpdate(fn func(*bbolt.Tx) error) error {
	b.applyMu.Lock()
	defer b.applyMu.Unlock()
	b.dbMu.RLock()
	defer b.dbMu.RUnlock()
	if b.db == nil {
		return contract.ErrClosed
	}
	if err := b.commitOpenLocked(); err != nil {
		return err
	}
	return b.db.Update(fn)
}

// HasIdempotencyKeysBefore reports whether any idempotency key was recorded
// before cutoff: the leader proposes a prune only then, so an idle cluster
// writes no Raft entries.
func (s *Replica) HasIdempotencyKeysBefore(cutoff time.Time) (bool, error) {
	if s.closing.Load() {
		return false, contract.ErrClosed
	}
	var found bool
	err := s.be.view(func(tx *bbolt.Tx) error {
		k, _ := tx.Bucket(bucketIdemTime).Cursor().First()
		found = k != nil && idemTimeOf(k) < unixNanos(cutoff)
		return nil
	})
	return found, err
}
