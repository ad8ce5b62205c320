package boltstore

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"time"

	"go.etcd.io/bbolt"

	"github.com/factstr/factstr-go/contract"
)

// Member is what the cluster recorded about a node id (command.SetIncarnation).
type Member struct {
	// Incarnation identifies the node's data directory.
	Incarnation string
	// RemovedAt is set when an operator removed the node (the leader's
	// clock): it stays out until it restarts or comes back with another
	// data directory. Zero for a member.
	RemovedAt time.Time
}

// encodeMember is the record's value: the incarnation, then, for a
// removed node, a NUL and the removal time in Unix nanoseconds.
func encodeMember(incarnation string, removedAt time.Time) []byte {
	b := []byte(incarnation)
	if !removedAt.IsZero() {
		b = append(b, 0)
		b = binary.BigEndian.AppendUint64(b, uint64(removedAt.UnixNano()))
	}
	return b
}

func decodeMember(v []byte) Member {
	if i := bytes.IndexByte(v, 0); i >= 0 && len(v) == i+9 {
		return Member{Incarnation: string(v[:i]), RemovedAt: time.Unix(0, int64(binary.BigEndian.Uint64(v[i+1:]))).UTC()}
	}
	return Member{Incarnation: string(v)}
}

// Members returns what the cluster recorded per node id (command.SetIncarnation).
func (s *Replica) Members() (map[string]Member, error) {
	if s.closing.Load() {
		return nil, contract.ErrClosed
	}
	out := map[string]Member{}
	err := s.be.view(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketMembers)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			out[string(k)] = decodeMember(v)
			return nil
		})
	})
	return out, err
}

// Incarnations returns the data-directory incarnation recorded for each
// node id (command.SetIncarnation).
func (s *Replica) Incarnations() (map[string]string, error) {
	ms, err := s.Members()
	if err != nil {
		return nil, err
	}
	out := make(map[string]string, len(ms))
	for id, m := range ms {
		out[id] = m.Incarnation
	}
	return out, nil
}

// ForgetIncarnations empties the incarnation records. A backup restored
// into another cluster carries the source cluster's records, which would
// make that cluster's leader take same-named nodes for wiped ones.
func (s *Replica) ForgetIncarnations() error {
	err := s.be.adminUpdate(func(tx *bbolt.Tx) error {
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
