package boltstore

import (
	"fmt"

	"go.etcd.io/bbolt"

	"github.com/factstr/factstr-go/contract"
)

// ResetAppliedIndex overwrites the stored applied index. A backup restored
// into another cluster carries the applied index of the cluster it came
// from, which means nothing in the new Raft log: left as is, it would make
// the state machine skip (or re-apply) the new log's entries. The Raft FSM
// resets it to the index at which the backup was installed.
func (s *Store) ResetAppliedIndex(index uint64) error {
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	s.dbMu.RLock()
	defer s.dbMu.RUnlock()
	if s.db == nil {
		return contract.ErrClosed
	}
	err := s.db.Update(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketMeta).Put(metaApplied, seqKey(index))
	})
	if err != nil {
		return fmt.Errorf("reset applied index: %w", err)
	}
	s.applied.Store(index)
	return nil
}

// Incarnations returns the data-directory incarnation recorded for each
// node id (OpSetIncarnation).
func (s *Store) Incarnations() (map[string]string, error) {
	if s.closing.Load() {
		return nil, contract.ErrClosed
	}
	out := map[string]string{}
	err := s.view(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketMembers)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			out[string(k)] = string(v)
			return nil
		})
	})
	return out, err
}

// ForgetIncarnations empties the incarnation records. A backup restored
// into another cluster carries the source cluster's records, which would
// make that cluster's leader take same-named nodes for wiped ones.
func (s *Store) ForgetIncarnations() error {
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	s.dbMu.RLock()
	defer s.dbMu.RUnlock()
	if s.db == nil {
		return contract.ErrClosed
	}
	err := s.db.Update(func(tx *bbolt.Tx) error {
		if tx.Bucket(bucketMembers) == nil {
			return nil
		}
		if err := tx.DeleteBucket(bucketMembers); err != nil {
			return err
		}
		_, err := tx.CreateBucket(bucketMembers)
		return err
	})
	if err != nil {
		return fmt.Errorf("forget incarnations: %w", err)
	}
	return nil
}
